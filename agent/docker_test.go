package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/docker"
	"github.com/rumor-sd/rumor/docker/dockertest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// dockerConfig is testConfig with the Docker watcher on, at host, retrying fast.
func dockerConfig(t *testing.T, name, dir, host string, fc **fakeCluster) Config {
	cfg := testConfig(t, name, dir, fc)
	cfg.Docker = DockerConfig{Enabled: true, Host: host, ReconcileInterval: time.Hour,
		retryMin: 5 * time.Millisecond, retryMax: 50 * time.Millisecond}
	return cfg
}

// localIDs returns the IDs of the agent's local services with prefix, sorted.
func localIDs(a *Agent, prefix string) []string {
	var ids []string
	for _, s := range a.LocalServices() {
		if strings.HasPrefix(s.ID, prefix) {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

func webContainer(name string, port uint16) dockertest.Container {
	return dockertest.Container{Name: name, Image: "example/web:1", Env: []string{"SERVICE_NAME=web"},
		Published: map[string]uint16{"8080/tcp": port}}
}

// localCheck returns the agent's local check with this ID.
func localCheck(a *Agent, id string) (catalog.Check, bool) {
	for _, c := range a.LocalChecks() {
		if c.Check.ID == id {
			return c.Check, true
		}
	}
	return catalog.Check{}, false
}

// TestDockerSource: the watcher's registrations are local services of their own
// source, persisted; the API cannot take their IDs; an API deregistration is undone
// by the next reconcile while the container runs; a service the API registered is
// never touched by the watcher.
func TestDockerSource(t *testing.T) {
	e := dockertest.NewEngine(t)
	dir := t.TempDir()
	cfg := dockerConfig(t, "n1", dir, e.Host(), nil)
	cfg.Docker.ReconcileInterval = 20 * time.Millisecond
	a := startAgent(t, cfg)
	if err := a.RegisterService(t.Context(), web("n1:api:8080", 80)); err != nil {
		t.Fatal(err)
	}
	e.Run(webContainer("web-1", 32768))
	testkit.Eventually(t, 10*time.Second, "web-1 registered", func() bool { return slices.Equal(localIDs(a, "n1:web"), []string{"n1:web-1:8080"}) })
	b, err := os.ReadFile(filepath.Join(dir, stateLogFile))
	if err != nil || !strings.Contains(string(b), `"Source":"docker"`) {
		t.Fatalf("%s does not hold a docker source: %v\n%s", stateLogFile, err, b)
	}
	err = a.RegisterService(t.Context(), web("n1:web-1:8080", 1))
	if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "registered by the docker watcher") {
		t.Errorf("API registration over a container's service: %v, want refused", err)
	}
	if err := a.DeregisterService(t.Context(), "n1:web-1:8080"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "web-1 registered again", func() bool { return slices.Equal(localIDs(a, "n1:web"), []string{"n1:web-1:8080"}) })
	// A container whose service ID the API holds: refused, the API's service kept.
	e.Run(dockertest.Container{Name: "api", Image: "x", Published: map[string]uint16{"8080/tcp": 1}})
	lists := e.Requests("list")
	testkit.Eventually(t, 10*time.Second, "a few reconciles", func() bool { return e.Requests("list") >= lists+3 })
	if ids := localIDs(a, "n1:api"); !slices.Equal(ids, []string{"n1:api:8080"}) {
		t.Fatalf("services %v", ids)
	}
	for _, s := range a.LocalServices() {
		if s.ID == "n1:api:8080" && (s.Port != 80 || s.Meta[docker.MetaContainer] != "") {
			t.Errorf("the API's service was replaced: %+v", s)
		}
	}
}

// TestDockerRestartNoFlaps: an agent restarted with the same 200 containers running
// republishes its records at the new generation, as any restart does, and then the
// watcher's reconcile publishes nothing: no deregistration, no registration, no
// status change. (Target: an agent restart with 200 running containers publishes no
// deregister/register flaps.)
func TestDockerRestartNoFlaps(t *testing.T) {
	e := dockertest.NewEngine(t)
	for i := range 200 {
		e.Run(webContainer(fmt.Sprintf("c%03d", i), uint16(20000+i)))
	}
	dir := t.TempDir()
	a1 := startAgent(t, dockerConfig(t, "n1", dir, e.Host(), nil)) // shut down halfway; Shutdown is idempotent
	testkit.Eventually(t, 10*time.Second, "200 registered, the watcher's check passing", func() bool {
		c, _ := localCheck(a1, docker.StatusCheckID)
		return len(localIDs(a1, "n1:c")) == 200 && c.Status == catalog.StatusPassing
	})
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var fc *fakeCluster
	a2 := startAgent(t, dockerConfig(t, "n1", dir, e.Host(), &fc))
	fc.mu.Lock()
	atStart := len(fc.published)
	fc.mu.Unlock()
	testkit.Eventually(t, 10*time.Second, "the watcher reconciled", func() bool { return a2.docker.Stats().Connects >= 1 })
	// One more event round trip, so that anything the reconcile did is published.
	e.Run(webContainer("probe", 30000))
	testkit.Eventually(t, 10*time.Second, "the probe registered", func() bool { return len(localIDs(a2, "n1:probe")) == 1 })
	fc.mu.Lock()
	after := slices.Clone(fc.published[atStart:])
	fc.mu.Unlock()
	for _, r := range after {
		if !strings.Contains(r.Key.ID, "n1:probe:") {
			t.Errorf("after the restart the agent published %s %+v", r.String(), r.Check)
		}
	}
	if n := len(localIDs(a2, "n1:c")); n != 200 {
		t.Errorf("%d services after the restart, want 200", n)
	}
}

// TestDockerRestartReconciles: containers that stop, start and go while the agent is
// down are reconciled at its next start, with nothing stale or missing.
func TestDockerRestartReconciles(t *testing.T) {
	e := dockertest.NewEngine(t)
	a := e.Run(webContainer("a", 1001))
	b := e.Run(webContainer("b", 1002))
	c := e.Run(webContainer("c", 1003))
	dir := t.TempDir()
	a1 := startAgent(t, dockerConfig(t, "n1", dir, e.Host(), nil)) // shut down halfway; Shutdown is idempotent
	testkit.Eventually(t, 10*time.Second, "a, b, c registered", func() bool { return len(localIDs(a1, "n1:")) == 3 })
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	e.Stop(a, 0)
	e.Remove(b)
	e.Die(c, 1)
	e.Start(c)
	e.Run(webContainer("d", 1004))
	a2 := startAgent(t, dockerConfig(t, "n1", dir, e.Host(), nil))
	testkit.Eventually(t, 10*time.Second, "reconciled", func() bool { return slices.Equal(localIDs(a2, "n1:"), []string{"n1:c:8080", "n1:d:8080"}) })
}

// TestDockerOff: a start without the watcher drops what an earlier run's watcher
// registered, and its check; the API's services stay.
func TestDockerOff(t *testing.T) {
	e := dockertest.NewEngine(t)
	e.Run(webContainer("a", 1001))
	dir := t.TempDir()
	a1 := startAgent(t, dockerConfig(t, "n1", dir, e.Host(), nil)) // shut down halfway; Shutdown is idempotent
	if err := a1.RegisterService(t.Context(), web("mine", 80)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "a registered", func() bool { return len(localIDs(a1, "n1:a")) == 1 })
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	a2 := startAgent(t, testConfig(t, "n1", dir, nil))
	if ids := localIDs(a2, ""); !slices.Equal(ids, []string{"mine"}) {
		t.Errorf("services %v, want only the API's", ids)
	}
	if _, ok := localCheck(a2, docker.StatusCheckID); ok {
		t.Error("the watcher's check survived with the watcher off")
	}
}

// TestDockerEngineDown: with the engine unreachable the agent starts and serves;
// the watcher's check is critical with the reason and rumor_docker_connected is 0;
// when the engine comes back, the containers are registered and both recover.
func TestDockerEngineDown(t *testing.T) {
	e := dockertest.NewEngine(t)
	e.Run(webContainer("a", 1001))
	e.SetDown(true)
	a := startAgent(t, dockerConfig(t, "n1", "", e.Host(), nil))
	metric := func() string {
		resp, err := http.Get("http://" + a.HTTPAddr().String() + "/metrics")
		if err != nil {
			t.Fatalf("the agent does not serve: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "rumor_docker_connected ") {
				return l
			}
		}
		return ""
	}
	testkit.Eventually(t, 10*time.Second, "the watcher's check critical", func() bool {
		c, ok := localCheck(a, docker.StatusCheckID)
		return ok && c.Status == catalog.StatusCritical && strings.Contains(c.Output, "cannot reach the Docker engine at "+e.Host())
	})
	if m := metric(); m != "rumor_docker_connected 0" {
		t.Errorf("metric %q, want rumor_docker_connected 0", m)
	}
	e.SetDown(false)
	testkit.Eventually(t, 10*time.Second, "a registered", func() bool { return len(localIDs(a, "n1:a")) == 1 })
	testkit.Eventually(t, 10*time.Second, "the watcher's check passing", func() bool {
		c, _ := localCheck(a, docker.StatusCheckID)
		return c.Status == catalog.StatusPassing
	})
	if m := metric(); m != "rumor_docker_connected 1" {
		t.Errorf("metric %q, want rumor_docker_connected 1", m)
	}
}

// TestDockerBadHost: an engine address the client cannot use fails Start, naming it.
func TestDockerBadHost(t *testing.T) {
	a, err := New(dockerConfig(t, "n1", "", "ftp://engine", nil))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), `engine address "ftp://engine"`) {
		t.Errorf("Start: %v, want an error naming the address", err)
	}
	_ = a.Shutdown()
}

// TestDockerApplyRefusals: a batch with an invalid service and one whose check ID
// another service holds registers the rest and names the refused.
func TestDockerApplyRefusals(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	if err := a.RegisterService(t.Context(), with(web("api-svc", 80), ttlCheck("taken"))); err != nil {
		t.Fatal(err)
	}
	err := dockerRegistry{a}.Register(t.Context(), []definition.Service{
		{ID: "ok", Name: "web", Port: 1},
		{ID: "bad", Name: "has space"},
		with(definition.Service{ID: "clash", Name: "web"}, ttlCheck("taken")),
	})
	if err == nil || !strings.Contains(err.Error(), `service "bad"`) || !strings.Contains(err.Error(), `service "clash": `) {
		t.Errorf("Register: %v, want bad and clash refused", err)
	}
	if ids := localIDs(a, ""); !slices.Equal(ids, []string{"api-svc", "ok"}) {
		t.Errorf("services %v, want api-svc and ok", ids)
	}
	if err := (dockerRegistry{a}).Deregister(t.Context(), []string{"api-svc"}); err == nil {
		t.Error("the watcher deregistered an API service")
	}
}

// TestDockerIdleReconcile: periodic reconciles of an unchanged host, renewing every
// check's TTL, publish nothing and write nothing to the state file.
func TestDockerIdleReconcile(t *testing.T) {
	e := dockertest.NewEngine(t)
	for i := range 3 {
		e.Run(webContainer(fmt.Sprintf("c%d", i), uint16(1000+i)))
	}
	var fc *fakeCluster
	dir := t.TempDir()
	cfg := dockerConfig(t, "n1", dir, e.Host(), &fc)
	cfg.Docker.ReconcileInterval = 10 * time.Millisecond
	a := startAgent(t, cfg)
	testkit.Eventually(t, 10*time.Second, "registered, watcher check passing", func() bool {
		c, _ := localCheck(a, docker.StatusCheckID)
		return len(localIDs(a, "n1:c")) == 3 && c.Status == catalog.StatusPassing
	})
	lists := e.Requests("list")
	testkit.Eventually(t, 10*time.Second, "a reconcile to start", func() bool { return e.Requests("list") > lists })
	state := filepath.Join(dir, stateLogFile)
	before, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	published := len(fc.published)
	fc.mu.Unlock()
	lists = e.Requests("list")
	testkit.Eventually(t, 10*time.Second, "five more reconciles", func() bool { return e.Requests("list") >= lists+5 })
	fc.mu.Lock()
	more := fc.published[published:]
	fc.mu.Unlock()
	if len(more) > 0 {
		t.Errorf("idle reconciles published %d records, first %s", len(more), more[0].String())
	}
	if after, err := os.Stat(state); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("idle reconciles rewrote %s (%v)", state, err)
	}
}
