package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// fakeCluster stands in for gossip: it records what is published and joined.
type fakeCluster struct {
	mu        sync.Mutex
	name      string
	addr      netip.AddrPort
	published []catalog.Record
	members   []gossip.Member
	joinFails int // Join fails this many times, then succeeds
	joins     int
	joined    []string // the addresses of the last Join
	left      bool
	shut      bool

	selfCoord *coordinate.Coordinate // this node's coordinate in Members; nil: none
}

func (f *fakeCluster) Join(ctx context.Context, addrs []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joins++
	f.joined = addrs
	if f.joins <= f.joinFails {
		return 0, fmt.Errorf("no answer from %v", addrs)
	}
	return len(addrs), nil
}

func (f *fakeCluster) Publish(recs []catalog.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, recs...)
}

func (f *fakeCluster) Members() []gossip.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gossip.Member{{Name: f.name, Addr: f.addr, Coordinate: f.selfCoord}}, f.members...)
}

func (f *fakeCluster) Liveness(name string) (catalog.Liveness, bool) {
	for _, m := range f.Members() {
		if m.Name == name {
			return m.State, true
		}
	}
	return 0, false
}

func (f *fakeCluster) LocalAddr() netip.AddrPort { return f.addr }

func (f *fakeCluster) Leave(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left, f.shut = true, true
	return nil
}

func (f *fakeCluster) ForceLeave(_ context.Context, node string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.members {
		if m.Name != node {
			continue
		}
		if m.State != catalog.LivenessFailed && m.State != catalog.LivenessLeft {
			return gossip.ErrNotFailed
		}
		f.members[i].State = catalog.LivenessLeft
		return nil
	}
	return gossip.ErrUnknownNode
}

func (f *fakeCluster) Shutdown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shut = true
	return nil
}

func (f *fakeCluster) joinCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joins
}

// testConfig returns a config for one agent named name on a fake cluster, with its
// data dir in dir ("" = in-memory dev agent) and the fake in *fc.
func testConfig(t *testing.T, name, dir string, fc **fakeCluster) Config {
	t.Helper()
	return Config{
		NodeName: name, DataDir: dir, Dev: dir == "", HTTPAddr: "127.0.0.1:0",
		MaintenanceInterval: 10 * time.Millisecond,
		RetryJoinInterval:   time.Millisecond, RetryJoinMaxInterval: 5 * time.Millisecond,
		newCluster: func(cc clusterConfig) (cluster, error) {
			f := &fakeCluster{name: cc.NodeName, addr: netip.MustParseAddrPort("127.0.0.1:7946")}
			if fc != nil {
				if *fc != nil {
					f.joinFails = (*fc).joinFails
				}
				*fc = f
			}
			return f, nil
		},
	}
}

// startAgent creates and starts an agent, shutting it down when the test ends.
func startAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg)
	return testkit.Running(t, a, err)
}

func web(id string, port int, tags ...string) definition.Service {
	return definition.Service{ID: id, Name: "web", Port: port, Tags: tags}
}

// with returns s with checks.
func with(s definition.Service, checks ...definition.Check) definition.Service {
	s.Checks = checks
	return s
}

func ttlCheck(id string) definition.Check {
	return definition.Check{ID: id, TTL: 30 * time.Second}
}

func TestDefaults(t *testing.T) {
	cfg, err := Config{DataDir: "/x"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, c := range []struct{ name, got, want string }{
		{"NodeName", cfg.NodeName, host},
		{"Datacenter", cfg.Datacenter, "dc1"},
		{"BindAddr", cfg.BindAddr, "0.0.0.0"},
		{"HTTPAddr", cfg.HTTPAddr, "127.0.0.1:8500"},
		{"GossipProfile", cfg.GossipProfile, "lan"},
		{"Version", cfg.Version, "dev"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	dev, err := Config{Dev: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if dev.DataDir != "" || dev.BindAddr != "127.0.0.1" || dev.GossipProfile != "local" {
		t.Errorf("dev defaults: data dir %q, bind %q, profile %q; want in-memory, 127.0.0.1, local", dev.DataDir, dev.BindAddr, dev.GossipProfile)
	}
	if DefaultConfig().BindPort != 7946 {
		t.Errorf("DefaultConfig().BindPort = %d, want 7946", DefaultConfig().BindPort)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad node name", Config{NodeName: "a b"}, "node.name"},
		{"bad datacenter", Config{Datacenter: "dc 1"}, "node.datacenter"},
		{"bind not IP", Config{BindAddr: "localhost"}, "bind address"},
		{"bind port", Config{BindPort: 70000}, "bind port"},
		{"advertise", Config{AdvertiseAddr: "x y"}, "advertise address"},
		{"profile", Config{GossipProfile: "fast"}, "gossip profile"},
		{"http", Config{HTTPAddr: "8500"}, "HTTP address"},
		{"key not base64", Config{EncryptKey: "!!"}, "not base64"},
		{"key length", Config{EncryptKey: "AAAA"}, "want 16, 24 or 32"},
		{"empty join", Config{Join: []string{""}}, "join address is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Dev = true
			_, err := New(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestStartPublishesNodeRecord(t *testing.T) {
	var fc *fakeCluster
	cfg := testConfig(t, "n1", "", &fc)
	cfg.NodeMeta = map[string]string{"rack": "r1"}
	a := startAgent(t, cfg)
	entry, _, err := a.Catalog().NodeServices("n1")
	if err != nil {
		t.Fatalf("NodeServices: %v", err)
	}
	n := entry.Node
	if n.ID != a.NodeID() || n.Address != "127.0.0.1" || n.Datacenter != "dc1" || n.Meta["rack"] != "r1" || n.TaggedAddresses["lan_ipv4"] != "127.0.0.1" {
		t.Errorf("node record = %+v", n)
	}
	if len(fc.published) != 1 || fc.published[0].Key.Kind != catalog.KindNode {
		t.Errorf("published %v, want the node record", fc.published)
	}
}

func TestRegisterDeregister(t *testing.T) {
	var fc *fakeCluster
	a := startAgent(t, testConfig(t, "n1", t.TempDir(), &fc))
	ctx := t.Context()
	if err := a.RegisterService(ctx, definition.Service{Name: "web", Port: 80, Checks: []definition.Check{ttlCheck("")}}); err != nil {
		t.Fatalf("RegisterService: %v", err)
	}
	insts := a.Catalog().ServiceInstances("web", catalog.Filter{})
	if len(insts) != 1 || insts[0].Service.ID != "web" {
		t.Fatalf("instances = %+v, want one with ID web", insts)
	}
	// serfHealth, then the TTL check, critical until something passes it.
	if got := len(insts[0].Checks); got != 2 || insts[0].Checks[1].ID != "service:web" || insts[0].Status != catalog.StatusCritical {
		t.Errorf("checks = %+v, status %s; want serfHealth and service:web, critical", insts[0].Checks, insts[0].Status)
	}
	// Re-registering without the check removes it.
	if err := a.RegisterService(ctx, web("web", 8080)); err != nil {
		t.Fatal(err)
	}
	insts = a.Catalog().ServiceInstances("web", catalog.Filter{})
	if len(insts) != 1 || insts[0].Service.Port != 8080 || len(insts[0].Checks) != 1 {
		t.Errorf("after re-registration: %+v", insts)
	}
	if err := a.DeregisterService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Catalog().ServiceInstances("web", catalog.Filter{})); n != 0 {
		t.Errorf("%d instances after deregistration, want 0", n)
	}
	if err := a.DeregisterService(ctx, "web"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("second deregistration: %v, want ErrNotFound", err)
	}
	// Everything applied was also handed to gossip.
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.published) < 6 {
		t.Errorf("published %d records, want ≥ 6", len(fc.published))
	}
}

func TestRegisterInvalid(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	for _, c := range []struct {
		name   string
		svc    definition.Service
		checks []definition.Check
		want   string
	}{
		{"no name", definition.Service{Port: 80}, nil, "service.name"},
		{"bad port", definition.Service{Name: "web", Port: -1}, nil, "service.port"},
		{"check kind missing", definition.Service{Name: "web"}, []definition.Check{{}}, "says nothing to check"},
		{"two kinds", definition.Service{Name: "web"}, []definition.Check{{HTTP: "http://x", TCP: "x:1", Interval: time.Second}}, "2 kinds"},
		{"no interval", definition.Service{Name: "web"}, []definition.Check{{HTTP: "http://x"}}, "service.checks[0].interval: is required"},
		{"dup check", definition.Service{Name: "web"}, []definition.Check{ttlCheck("c"), ttlCheck("c")}, "used twice"},
		{"foreign service", definition.Service{Name: "web"}, []definition.Check{{ServiceID: "db", TTL: time.Second}}, "belongs to that service"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := a.RegisterService(t.Context(), with(c.svc, c.checks...))
			if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("RegisterService: %v, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
	if n := len(a.LocalServices()); n != 0 {
		t.Errorf("%d local services after invalid registrations, want 0", n)
	}
}

func TestNotRunning(t *testing.T) {
	a, err := New(testConfig(t, "n1", "", nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterService(t.Context(), web("web", 80)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("RegisterService before Start: %v, want ErrNotRunning", err)
	}
	if err := a.Shutdown(); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
	if err := a.Start(t.Context()); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

func TestPersistenceRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, testConfig(t, "n1", dir, nil))
	id, gen := a.NodeID(), a.Generation()
	svc := definition.Service{ID: "web-1", Name: "web", Port: 80, Tags: []string{"v1"},
		Meta: map[string]string{"team": "a"}, Weights: catalog.Weights{Passing: 3, Warning: 1}}
	checks := []definition.Check{
		{HTTP: "http://127.0.0.1/health", Interval: time.Hour, Timeout: time.Second, Header: map[string][]string{"X": {"y"}}},
		{TTL: time.Minute, Status: catalog.StatusPassing},
	}
	if err := a.RegisterService(t.Context(), with(svc, checks...)); err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterService(t.Context(), web("web-2", 81)); err != nil {
		t.Fatal(err)
	}
	if err := a.DeregisterService(t.Context(), "web-2"); err != nil {
		t.Fatal(err)
	}
	want := a.Catalog().ServiceInstances("web", catalog.Filter{})
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}

	b := startAgent(t, testConfig(t, "n1", dir, nil))
	if b.NodeID() != id {
		t.Errorf("node ID after restart = %s, want %s", b.NodeID(), id)
	}
	if b.Generation() <= gen {
		t.Errorf("generation after restart = %d, want > %d", b.Generation(), gen)
	}
	got := b.Catalog().ServiceInstances("web", catalog.Filter{})
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("instances after restart = %d, before = %d; want 1 each", len(got), len(want))
	}
	if fmt.Sprint(got[0].Service) != fmt.Sprint(want[0].Service) || fmt.Sprint(got[0].Checks) != fmt.Sprint(want[0].Checks) {
		t.Errorf("after restart:\n got %+v\nwant %+v", got[0], want[0])
	}
	if got[0].Checks[1].ID != "service:web-1:1" || got[0].Checks[2].Status != catalog.StatusPassing {
		t.Errorf("checks after restart = %+v", got[0].Checks)
	}
}

func TestGenerationGrows(t *testing.T) {
	dir := t.TempDir()
	// A persisted generation far in the future still grows by one.
	future := uint64(time.Now().Add(24 * time.Hour).UnixMilli())
	if err := os.WriteFile(filepath.Join(dir, generationFile), fmt.Appendf(nil, "%d\n", future), 0o600); err != nil {
		t.Fatal(err)
	}
	var prev uint64 = future
	for i := range 3 {
		a, err := New(testConfig(t, "n1", dir, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if g := a.Generation(); g != prev+1 {
			t.Errorf("start %d: generation %d, want %d", i, g, prev+1)
		}
		prev = a.Generation()
		if err := a.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	// A lost data dir still starts above any generation used in the past, thanks to
	// the clock: now in milliseconds.
	a := startAgent(t, testConfig(t, "n1", t.TempDir(), nil))
	if g, floor := a.Generation(), uint64(time.Now().Add(-time.Minute).UnixMilli()); g < floor {
		t.Errorf("fresh generation %d, want ≥ %d (Unix ms)", g, floor)
	}
}

func TestNodeIDFile(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, testConfig(t, "n1", dir, nil))
	b, err := os.ReadFile(filepath.Join(dir, nodeIDFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != a.NodeID() || !catalog.IsUUID(a.NodeID()) || a.NodeID()[14] != '4' {
		t.Errorf("node-id file %q, agent ID %q: want the same version-4 UUID", b, a.NodeID())
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(testConfig(t, "n1", dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "not a UUID") {
		t.Errorf("Start with a corrupt node-id: %v, want an error saying so", err)
	}
}

func TestStateSurvivesPartialWrite(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, testConfig(t, "n1", dir, nil))
	if err := a.RegisterService(t.Context(), web("web", 80)); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a compaction leaves a truncated temp file beside the
	// intact log.
	good, err := os.ReadFile(filepath.Join(dir, stateLogFile))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, stateLogFile+tmpSuffix+"123")
	if err := os.WriteFile(tmp, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	b := startAgent(t, testConfig(t, "n1", dir, nil))
	if got := b.LocalServices(); len(got) != 1 || got[0].ID != "web" {
		t.Errorf("local services after crash = %+v, want web", got)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temp file: %v, want it removed", err)
	}
}

func TestCorruptStateRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, servicesFile), []byte(`{"Version":1,"Services":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(testConfig(t, "n1", dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "local state") {
		t.Errorf("Start: %v, want an error about the local state", err)
	}
}

func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	startAgent(t, testConfig(t, "n1", dir, nil))
	b, err := New(testConfig(t, "n1", dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "in use by another agent") {
		t.Errorf("second agent on the same data dir: %v, want a lock error", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	for _, content := range []string{"one", "two"} {
		if err := writeFileAtomic(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Errorf("read %q, %v; want %q", got, err, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the file", len(entries))
	}
	if err := writeFileAtomic(filepath.Join(t.TempDir(), "missing", "f"), nil); err == nil {
		t.Error("write into a missing dir succeeded")
	}
}

func TestSupersede(t *testing.T) {
	var fc *fakeCluster
	clk := catalogtest.NewClock()
	cfg := testConfig(t, "n1", t.TempDir(), &fc)
	cfg.Clock = clk
	a := startAgent(t, cfg)
	if err := a.RegisterService(t.Context(), web("web", 80)); err != nil {
		t.Fatal(err)
	}
	gen := a.Generation()
	// An older incarnation of n1 whose generation is higher than ours arrives by
	// gossip, with a service we do not have.
	w := catalog.NewWriter("n1", gen+100)
	n := catalogtest.Node("n1", "10.0.0.9")
	if _, err := a.Catalog().Apply(w.PutNode(n), w.PutService(catalogtest.Service("ghost", "ghost", 1))); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the agent to supersede the old incarnation", func() bool { return a.Generation() > gen+100 })
	if v := a.Catalog().OriginVersion("n1"); v.Gen != a.Generation() {
		t.Errorf("catalog holds n1 at %s, want generation %d", v, a.Generation())
	}
	if got := a.Catalog().ServiceInstances("ghost", catalog.Filter{}); len(got) != 0 {
		t.Errorf("the old incarnation's service survived: %+v", got)
	}
	insts := a.Catalog().ServiceInstances("web", catalog.Filter{})
	if len(insts) != 1 || insts[0].Node.Node.ID != a.NodeID() {
		t.Errorf("web after supersede = %+v, want ours", insts)
	}
	// The new generation is persisted, so the next start goes beyond it.
	g, err := a.dir.readGeneration()
	if err != nil || g != a.Generation() {
		t.Errorf("persisted generation %d, %v; want %d", g, err, a.Generation())
	}
}

func TestJoin(t *testing.T) {
	t.Run("join fails start", func(t *testing.T) {
		fc := &fakeCluster{joinFails: 1}
		cfg := testConfig(t, "n1", t.TempDir(), &fc)
		cfg.Join = []string{"127.0.0.1:1"}
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "retry-join") {
			t.Errorf("Start: %v, want a join error suggesting retry-join", err)
		}
		if !fc.shut {
			t.Error("gossip still running after a failed Start")
		}
	})
	t.Run("retry join backs off until success", func(t *testing.T) {
		fc := &fakeCluster{joinFails: 3}
		cfg := testConfig(t, "n1", t.TempDir(), &fc)
		cfg.RetryJoin = []string{"127.0.0.1:1"}
		startAgent(t, cfg)
		testkit.Eventually(t, 10*time.Second, "4 join attempts", func() bool { return fc.joinCount() == 4 })
	})
	t.Run("known peers rejoined", func(t *testing.T) {
		dir := t.TempDir()
		var fc *fakeCluster
		a := startAgent(t, testConfig(t, "n1", dir, &fc))
		fc.mu.Lock()
		fc.members = []gossip.Member{
			{Name: "n2", Addr: netip.MustParseAddrPort("10.0.0.2:7946")},
			{Name: "n3", Addr: netip.MustParseAddrPort("10.0.0.3:7946"), State: catalog.LivenessLeft},
		}
		fc.mu.Unlock()
		testkit.Eventually(t, 10*time.Second, "peers.json", func() bool { return len(a.dir.loadPeers()) == 1 })
		if err := a.Shutdown(); err != nil {
			t.Fatal(err)
		}
		var fc2 *fakeCluster
		startAgent(t, testConfig(t, "n1", dir, &fc2))
		testkit.Eventually(t, 10*time.Second, "a rejoin of the known peer", func() bool { return fc2.joinCount() == 1 })
		if got := loadPeersFile(t, dir); !slices.Equal(got, []string{"10.0.0.2:7946"}) {
			t.Errorf("peers.json = %v", got)
		}
	})
}

func loadPeersFile(t *testing.T, dir string) []string {
	t.Helper()
	return (&dataDir{path: dir}).loadPeers()
}

func TestLeave(t *testing.T) {
	var fc *fakeCluster
	a := startAgent(t, testConfig(t, "n1", "", &fc))
	if err := a.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !fc.left {
		t.Error("gossip did not leave")
	}
	if err := a.RegisterService(t.Context(), web("web", 80)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("register after leave: %v, want ErrNotRunning", err)
	}
}

// TestShutdownStopsEverything checks that no goroutine outlives the agent, with an
// HTTP request in flight on a blocking query.
func TestShutdownStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t, "n1", t.TempDir(), nil)
	cfg.RetryJoin = []string{"127.0.0.1:1"}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	base := "http://" + a.HTTPAddr().String()
	resp, err := client.Get(base + "/v1/catalog/services")
	if err != nil {
		t.Fatal(err)
	}
	idx := resp.Header.Get("X-Consul-Index")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	blocked := make(chan error, 1)
	wrote := make(chan struct{})
	go func() {
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			http.MethodGet, base+"/v1/catalog/services?wait=10m&index="+idx, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		blocked <- err
	}()
	<-wrote
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query still open after Shutdown")
	}
	tr.CloseIdleConnections()
	testkit.Eventually(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if err := a.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestGossipHookReachesGossip: Config.GossipHook sees real gossip's config before
// gossip starts, and what it sets is what gossip runs with (here, a transport
// wrapper: how internal/netemagent delays an agent's gossip).
func TestGossipHookReachesGossip(t *testing.T) {
	cfg := testConfig(t, "n1", "", nil)
	cfg.newCluster, cfg.BindPort = nil, 0 // real gossip on loopback
	var seen string
	var wrapped atomic.Bool
	cfg.GossipHook = func(gc *gossip.Config) {
		seen = gc.NodeName
		gc.WrapTransport = func(tr memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
			wrapped.Store(true)
			return tr, nil
		}
	}
	a := startAgent(t, cfg)
	if seen != "n1" || !wrapped.Load() || !a.GossipAddr().IsValid() {
		t.Errorf("hook saw node %q, wrapper called %v, gossip at %v; want n1, true and an address", seen, wrapped.Load(), a.GossipAddr())
	}
}
