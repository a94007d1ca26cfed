package dockertest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
)

// Engine is a fake Docker engine: an HTTP server on a unix socket that answers the
// calls the watcher makes (ping, list, inspect, events) from containers the test
// scripts, and can end its event streams or go down (its socket refuses
// connections) on cue. It speaks API version 1.41, as the engine of this project's
// CI machine does, so the client negotiates down to it.
type Engine struct {
	t    testing.TB
	dir  string
	path string

	mu         sync.Mutex
	srv        *http.Server // nil while down
	containers map[string]*Container
	log        []events.Message
	changed    chan struct{} // closed and replaced when log grows or streams must end
	cut        chan struct{} // closed and replaced by CutStreams
	lastNano   int64
	requests   map[string]int
	since      []int64     // the since of each event subscription, in nanoseconds (0: none)
	pings      []time.Time // when each ping came
	streams    sync.WaitGroup
}

// Container is a container of the fake engine, as a test describes it.
type Container struct {
	ID    string // default: random
	Name  string // without the leading "/"
	Image string
	Env   []string
	// Labels of the container.
	Labels map[string]string
	// Published maps a container port ("80/tcp") to its host port; host ports are
	// bound to 127.0.0.1.
	Published map[string]uint16
	// Exposed lists container ports that are exposed but not published.
	Exposed []string
	// Networks maps network names to the container's addresses there; default:
	// "bridge" at 172.17.0.x.
	Networks map[string]Endpoint
	// NetworkMode is the container's network mode; default "bridge".
	NetworkMode string
	// Health is the Docker HEALTHCHECK status: "" (none), starting, healthy or
	// unhealthy.
	Health string

	state    container.ContainerState
	exitCode int
}

// Endpoint is a container's addresses on a network.
type Endpoint struct{ IPv4, IPv6 netip.Addr }

// NewEngine starts a fake engine on a unix socket in a fresh short directory (unix
// socket paths are limited to about 100 bytes), stopped when the test ends.
func NewEngine(t testing.TB) *Engine {
	t.Helper()
	dir, err := os.MkdirTemp("", "rumor-docker")
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{t: t, dir: dir, path: filepath.Join(dir, "docker.sock"),
		containers: map[string]*Container{}, changed: make(chan struct{}), cut: make(chan struct{}),
		requests: map[string]int{}}
	e.up()
	t.Cleanup(func() {
		e.SetDown(true)
		_ = os.RemoveAll(dir)
	})
	return e
}

// Host is the engine's address for the watcher's Config.Host.
func (e *Engine) Host() string { return "unix://" + e.path }

// Path is the engine's socket path.
func (e *Engine) Path() string { return e.path }

func (e *Engine) up() {
	_ = os.Remove(e.path)
	ln, err := net.Listen("unix", e.path)
	if err != nil {
		e.t.Fatalf("fake engine: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 10 * time.Second}
	e.srv = srv
	go func() { _ = srv.Serve(ln) }() // ends with srv.Close (SetDown or cleanup)
}

// SetDown takes the engine down (its socket refuses connections; open event
// streams end) or brings it back up on the same socket, with the same containers.
func (e *Engine) SetDown(down bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case down && e.srv != nil:
		_ = e.srv.Close()
		e.srv = nil
		e.endStreamsLocked()
		e.mu.Unlock()
		e.streams.Wait()
		e.mu.Lock()
	case !down && e.srv == nil:
		e.up()
	}
}

// CutStreams ends every open event stream at once, as an engine restart or a proxy
// in between would; the engine itself stays up.
func (e *Engine) CutStreams() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.endStreamsLocked()
}

func (e *Engine) endStreamsLocked() {
	close(e.cut)
	e.cut = make(chan struct{})
}

// Requests says how many requests of a kind ("ping", "list", "inspect", "events")
// the engine has answered.
func (e *Engine) Requests(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests[kind]
}

// Since returns the since of every event subscription so far, in nanoseconds since
// the epoch (0: none, from now on).
func (e *Engine) Since() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.since)
}

// Pings returns when each ping came: a watcher pings first when it connects.
func (e *Engine) Pings() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.pings)
}

// LastEvent returns the time of the newest event, in nanoseconds since the epoch.
func (e *Engine) LastEvent() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastNano
}

// Run creates and starts a container (events create and start) and returns its ID.
func (e *Engine) Run(c Container) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.ID == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		c.ID = hex.EncodeToString(b)
	}
	if c.Name == "" {
		c.Name = "c-" + c.ID[:8]
	}
	if c.Image == "" {
		c.Image = "example/app:latest"
	}
	if c.Networks == nil {
		ip := netip.AddrFrom4([4]byte{172, 17, byte(len(e.containers) / 250), byte(2 + len(e.containers)%250)})
		c.Networks = map[string]Endpoint{"bridge": {IPv4: ip}}
	}
	c.state = container.StateRunning
	cc := c
	e.containers[c.ID] = &cc
	e.emitLocked(&cc, events.ActionCreate, nil)
	e.emitLocked(&cc, events.ActionStart, nil)
	return c.ID
}

// Stop stops a running container as `docker stop` does: it exits with exitCode
// (events kill, die, stop).
func (e *Engine) Stop(id string, exitCode int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.get(id)
	e.emitLocked(c, events.ActionKill, nil)
	e.exitLocked(c, exitCode)
	e.emitLocked(c, events.ActionStop, nil)
}

// Die makes a running container exit with exitCode (event die).
func (e *Engine) Die(id string, exitCode int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exitLocked(e.get(id), exitCode)
}

func (e *Engine) exitLocked(c *Container, code int) {
	c.state, c.exitCode = container.StateExited, code
	e.emitLocked(c, events.ActionDie, map[string]string{"exitCode": strconv.Itoa(code)})
}

// Start starts a stopped container again (event start).
func (e *Engine) Start(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.get(id)
	c.state = container.StateRunning
	e.emitLocked(c, events.ActionStart, nil)
}

// Remove removes a container (event destroy).
func (e *Engine) Remove(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.get(id)
	delete(e.containers, id)
	e.emitLocked(c, events.ActionDestroy, nil)
}

// Pause and Unpause pause and resume a running container.
func (e *Engine) Pause(id string) { e.setState(id, container.StatePaused, events.ActionPause) }

// Unpause resumes a paused container.
func (e *Engine) Unpause(id string) { e.setState(id, container.StateRunning, events.ActionUnPause) }

func (e *Engine) setState(id string, st container.ContainerState, a events.Action) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.get(id)
	c.state = st
	e.emitLocked(c, a, nil)
}

// SetHealth sets a container's HEALTHCHECK status (event "health_status: <status>").
func (e *Engine) SetHealth(id, status string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.get(id)
	c.Health = status
	e.emitLocked(c, events.Action("health_status: "+status), nil)
}

// Rename renames a container (event rename, with oldName).
func (e *Engine) Rename(id, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.get(id)
	old := c.Name
	c.Name = name
	e.emitLocked(c, events.ActionRename, map[string]string{"oldName": "/" + old})
}

// Quiet runs f on the engine's containers without any event, as changes made while
// nobody listened (or events the engine dropped) look to a watcher.
func (e *Engine) Quiet(f func(map[string]*Container)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e.containers)
}

// Running returns the IDs of the running (or paused) containers, sorted.
func (e *Engine) Running() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id, c := range e.containers {
		if c.state == container.StateRunning || c.state == container.StatePaused {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (e *Engine) get(id string) *Container {
	c := e.containers[id]
	if c == nil {
		e.t.Fatalf("fake engine: no container %s", id)
	}
	return c
}

// emitLocked appends an event of c to the log and wakes the streams.
func (e *Engine) emitLocked(c *Container, a events.Action, attrs map[string]string) {
	now := time.Now().UnixNano()
	if now <= e.lastNano {
		now = e.lastNano + 1
	}
	e.lastNano = now
	at := map[string]string{"name": c.Name, "image": c.Image}
	maps.Copy(at, c.Labels)
	maps.Copy(at, attrs)
	e.log = append(e.log, events.Message{Type: events.ContainerEventType, Action: a, Scope: "local",
		Actor: events.Actor{ID: c.ID, Attributes: at}, Time: now / 1e9, TimeNano: now})
	close(e.changed)
	e.changed = make(chan struct{})
}

var versioned = regexp.MustCompile(`^/v1\.[0-9]+`)

func (e *Engine) serve(w http.ResponseWriter, r *http.Request) {
	p := versioned.ReplaceAllString(r.URL.Path, "")
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Ostype", "linux")
	switch {
	case p == "/_ping":
		e.count("ping")
		e.mu.Lock()
		e.pings = append(e.pings, time.Now())
		e.mu.Unlock()
		_, _ = w.Write([]byte("OK"))
	case p == "/containers/json":
		e.count("list")
		e.list(w, r)
	case strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/json"):
		e.count("inspect")
		e.inspect(w, strings.TrimSuffix(strings.TrimPrefix(p, "/containers/"), "/json"))
	case p == "/events":
		e.count("events")
		e.events(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "fake engine: page not found: " + p})
	}
}

func (e *Engine) count(kind string) {
	e.mu.Lock()
	e.requests[kind]++
	e.mu.Unlock()
}

func (e *Engine) list(w http.ResponseWriter, r *http.Request) {
	all := r.URL.Query().Get("all") == "1"
	e.mu.Lock()
	var out []container.Summary
	for _, id := range slices.Sorted(maps.Keys(e.containers)) {
		c := e.containers[id]
		if !all && c.state != container.StateRunning && c.state != container.StatePaused {
			continue
		}
		s := container.Summary{ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Image, State: c.state,
			Status: string(c.state), Labels: maps.Clone(c.Labels)}
		for p, hp := range c.Published {
			pp := network.MustParsePort(p)
			s.Ports = append(s.Ports, container.PortSummary{IP: netip.MustParseAddr("127.0.0.1"),
				PrivatePort: pp.Num(), PublicPort: hp, Type: string(pp.Proto())})
		}
		out = append(out, s)
	}
	e.mu.Unlock()
	writeJSON(w, out)
}

func (e *Engine) inspect(w http.ResponseWriter, ref string) {
	e.mu.Lock()
	c := e.find(ref)
	var res container.InspectResponse
	if c != nil {
		res = c.inspect()
	}
	e.mu.Unlock()
	if c == nil {
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]string{"message": "No such container: " + ref})
		return
	}
	writeJSON(w, res)
}

// find resolves a container by ID, name or ID prefix, as the engine does.
func (e *Engine) find(ref string) *Container {
	if c := e.containers[ref]; c != nil {
		return c
	}
	for id, c := range e.containers {
		if c.Name == strings.TrimPrefix(ref, "/") || strings.HasPrefix(id, ref) {
			return c
		}
	}
	return nil
}

// inspect renders c as the engine's inspect answer.
func (c *Container) inspect() container.InspectResponse {
	running := c.state == container.StateRunning || c.state == container.StatePaused
	st := &container.State{Status: c.state, Running: running, Paused: c.state == container.StatePaused, ExitCode: c.exitCode}
	if c.Health != "" {
		st.Health = &container.Health{Status: container.HealthStatus(c.Health)}
	}
	mode := c.NetworkMode
	if mode == "" {
		mode = "bridge"
	}
	cfg := &container.Config{Image: c.Image, Env: slices.Clone(c.Env), Labels: maps.Clone(c.Labels),
		ExposedPorts: network.PortSet{}}
	ns := &container.NetworkSettings{Ports: network.PortMap{}, Networks: map[string]*network.EndpointSettings{}}
	for _, p := range c.Exposed {
		cfg.ExposedPorts[network.MustParsePort(p)] = struct{}{}
		if running {
			ns.Ports[network.MustParsePort(p)] = nil
		}
	}
	for p, hp := range c.Published {
		pp := network.MustParsePort(p)
		cfg.ExposedPorts[pp] = struct{}{}
		if running {
			ns.Ports[pp] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(int(hp))}}
		}
	}
	if running {
		for name, ep := range c.Networks {
			ns.Networks[name] = &network.EndpointSettings{NetworkID: name, IPAddress: ep.IPv4, GlobalIPv6Address: ep.IPv6}
		}
	}
	return container.InspectResponse{ID: c.ID, Name: "/" + c.Name, State: st, Image: "sha256:" + c.ID,
		Config: cfg, NetworkSettings: ns, HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)}}
}

// events streams the event log from `since` on, then new events as they come,
// until the client goes, the streams are cut or the engine goes down.
func (e *Engine) events(w http.ResponseWriter, r *http.Request) {
	since, err := parseSince(r.URL.Query().Get("since"))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"message": err.Error()})
		return
	}
	var filters map[string]map[string]bool
	if f := r.URL.Query().Get("filters"); f != "" {
		if err := json.Unmarshal([]byte(f), &filters); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			writeJSON(w, map[string]string{"message": "filters: " + err.Error()})
			return
		}
	}
	e.mu.Lock()
	e.since = append(e.since, since)
	cut := e.cut
	next := len(e.log)
	if since > 0 {
		next = 0
	}
	e.streams.Add(1)
	e.mu.Unlock()
	defer e.streams.Done()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		e.mu.Lock()
		batch := slices.Clone(e.log[next:])
		next = len(e.log)
		changed := e.changed
		e.mu.Unlock()
		for _, m := range batch {
			if m.TimeNano >= since && matches(filters, m) {
				if err := enc.Encode(m); err != nil {
					return
				}
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-changed:
		case <-cut:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// parseSince reads the engine's `since`: seconds, optionally with nanoseconds after
// a dot.
func parseSince(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("since %q: %v", s, err)
	}
	var nano int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if nano, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return 0, fmt.Errorf("since %q: %v", s, err)
		}
	}
	return sec*1e9 + nano, nil
}

// matches applies the type and event filters as the engine does (health_status
// matches "health_status: healthy").
func matches(f map[string]map[string]bool, m events.Message) bool {
	if t := f["type"]; len(t) > 0 && !t[string(m.Type)] {
		return false
	}
	if ev := f["event"]; len(ev) > 0 {
		a, _, _ := strings.Cut(string(m.Action), ":")
		if !ev[string(m.Action)] && !ev[a] {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
