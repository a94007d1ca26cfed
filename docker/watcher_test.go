package docker

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/docker/dockertest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a watcher on the fake engine e (or at host) with fast retries and no
// periodic reconcile unless mod sets one; it is closed when the test ends.
func start(t *testing.T, host string, reg Registry, mod func(*Config)) *Watcher {
	t.Helper()
	cfg := Config{Registry: reg, Node: "n1", Host: host, ReconcileInterval: time.Hour,
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// webC is a container publishing 8080 at host port hp with SERVICE_NAME=web.
func webC(name string, hp uint16, env ...string) dockertest.Container {
	return dockertest.Container{Name: name, Image: "example/web:1", Env: append([]string{"SERVICE_NAME=web"}, env...),
		Published: map[string]uint16{"8080/tcp": hp}}
}

func hasIDs(reg *dockertest.Registry, ids ...string) func() bool {
	return func() bool { return slices.Equal(reg.IDs(), ids) }
}

// TestStartStop: containers running at start and started later are registered,
// with the published port at its binding; docker stop and docker rm deregister.
func TestStartStop(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	a := e.Run(webC("web-a", 32768))
	w := start(t, e.Host(), reg, nil)
	testkit.Eventually(t, 10*time.Second, "web-a registered", hasIDs(reg, "n1:web-a:8080"))
	b := e.Run(webC("web-b", 32769))
	testkit.Eventually(t, 10*time.Second, "web-b registered", hasIDs(reg, "n1:web-a:8080", "n1:web-b:8080"))
	s, _ := reg.Service("n1:web-b:8080")
	if s.Name != "web" || s.Address != "127.0.0.1" || s.Port != 32769 || s.Meta[MetaContainer] != b[:12] {
		t.Errorf("web-b registered as %+v", s)
	}
	if st := reg.CheckStatus(ContainerCheckID(s.ID)); st.Status != catalog.StatusPassing {
		t.Errorf("container check %+v, want passing", st)
	}
	if st := reg.CheckStatus(StatusCheckID); st.Status != catalog.StatusPassing || !w.Stats().Connected {
		t.Errorf("watcher check %+v, connected %v: want passing", st, w.Stats().Connected)
	}
	e.Stop(a, 0)
	testkit.Eventually(t, 10*time.Second, "web-a deregistered", hasIDs(reg, "n1:web-b:8080"))
	e.Remove(b)
	testkit.Eventually(t, 10*time.Second, "web-b deregistered", hasIDs(reg))
	if n := w.Stats().Connects; n != 1 {
		t.Errorf("%d sessions, want 1: handling events must not end the session", n)
	}
}

// TestReconcileBothWays: at connect, owned services whose container is gone go,
// changed ones are replaced, missing ones are added, and a service ID another
// source holds is neither taken nor deregistered.
func TestReconcileBothWays(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	e.Run(webC("keep", 1001))
	e.Run(webC("changed", 1002, "SERVICE_TAGS=v2"))
	e.Run(webC("missing", 1003))
	e.Run(webC("clash", 1004))
	reg.Foreign("n1:clash:8080")
	old := definition.Service{ID: "n1:gone:8080", Name: "web", Port: 9, Meta: map[string]string{MetaContainer: "deadbeef0000"}}
	reg.Put(old)
	// What an earlier run registered for "changed", before its tags changed.
	reg.Put(definition.Service{ID: "n1:changed:8080", Name: "web", Port: 1002, Tags: []string{"v1"}})
	start(t, e.Host(), reg, nil)
	testkit.Eventually(t, 10*time.Second, "reconciled", hasIDs(reg, "n1:changed:8080", "n1:keep:8080", "n1:missing:8080"))
	if s, _ := reg.Service("n1:changed:8080"); !slices.Equal(s.Tags, []string{"v2"}) {
		t.Errorf("changed service has tags %v, want [v2]", s.Tags)
	}
	if d := reg.Deregistered(); !slices.Equal(d, []string{"n1:gone:8080"}) {
		t.Errorf("deregistered %v, want only the stale n1:gone:8080", d)
	}
}

// TestStreamEndsMidRun: the engine ends the event stream; the watcher reconnects
// from its checkpoint less the overlap (since) and misses nothing.
func TestStreamEndsMidRun(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	w := start(t, e.Host(), reg, func(c *Config) { c.Overlap = time.Second })
	e.Run(webC("a", 1001))
	testkit.Eventually(t, 10*time.Second, "a registered", hasIDs(reg, "n1:a:8080"))
	last := e.LastEvent()
	e.CutStreams()
	e.Run(webC("b", 1002))
	testkit.Eventually(t, 10*time.Second, "b registered after the cut", hasIDs(reg, "n1:a:8080", "n1:b:8080"))
	testkit.Eventually(t, 10*time.Second, "a second session", func() bool { return w.Stats().Connects >= 2 })
	since := e.Since()
	if len(since) < 2 || since[0] != 0 {
		t.Fatalf("subscriptions since %v: want none at first, then a checkpoint", since)
	}
	if got := since[1]; got > last-int64(900*time.Millisecond) || got < last-int64(2*time.Second) {
		t.Errorf("resubscribed since %d, want about the last event %d less the 1s overlap", got, last)
	}
}

// TestDieDuringReconnect: while the engine is down, a container dies, another is
// removed without any event the watcher could see, a third starts; once the
// engine is back, the reconnect reconciles all three.
func TestDieDuringReconnect(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	a := e.Run(webC("a", 1001))
	b := e.Run(webC("b", 1002))
	w := start(t, e.Host(), reg, nil)
	testkit.Eventually(t, 10*time.Second, "a and b registered", hasIDs(reg, "n1:a:8080", "n1:b:8080"))
	e.SetDown(true)
	testkit.Eventually(t, 10*time.Second, "the watcher to see the engine gone", func() bool { return !w.Stats().Connected })
	e.Die(a, 1)
	e.Quiet(func(cs map[string]*dockertest.Container) { delete(cs, b) })
	e.Run(webC("c", 1003))
	e.SetDown(false)
	testkit.Eventually(t, 10*time.Second, "reconciled after the reconnect", hasIDs(reg, "n1:c:8080"))
}

// TestBurst: 1,000 containers started at once are all registered, in batches.
func TestBurst(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	start(t, e.Host(), reg, nil)
	testkit.Eventually(t, 10*time.Second, "connected", func() bool { return reg.CheckStatus(StatusCheckID).Status == catalog.StatusPassing })
	for i := range 1000 {
		e.Run(webC(fmt.Sprintf("c%04d", i), uint16(10000+i)))
	}
	testkit.Eventually(t, 10*time.Second, "1,000 registered", func() bool { return len(reg.IDs()) == 1000 })
	_, _, calls := reg.Counts()
	t.Logf("1,000 containers registered in %d Register calls", calls)
	if calls > 500 {
		t.Errorf("%d Register calls for 1,000 containers: the events are not batched", calls)
	}
}

// TestPeriodicReconcile: a periodic reconcile of an unchanged host lists the
// containers and writes and inspects nothing; it repairs a service deregistered
// behind the watcher's back and notices a container that stopped without an event.
func TestPeriodicReconcile(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	for i := range 3 {
		e.Run(webC(fmt.Sprintf("c%d", i), uint16(1000+i)))
	}
	start(t, e.Host(), reg, func(c *Config) { c.ReconcileInterval = 10 * time.Millisecond })
	testkit.Eventually(t, 10*time.Second, "registered", hasIDs(reg, "n1:c0:8080", "n1:c1:8080", "n1:c2:8080"))
	lists := e.Requests("list")
	testkit.Eventually(t, 10*time.Second, "a reconcile to start", func() bool { return e.Requests("list") > lists })
	changes, writes, _ := reg.Counts()
	inspects := e.Requests("inspect")
	lists = e.Requests("list")
	testkit.Eventually(t, 10*time.Second, "five more reconciles", func() bool { return e.Requests("list") >= lists+5 })
	if c, w, _ := reg.Counts(); c != changes || w != writes || e.Requests("inspect") != inspects {
		t.Errorf("idle reconciles changed %d registrations, %d statuses, made %d inspects; want none",
			c-changes, w-writes, e.Requests("inspect")-inspects)
	}
	reg.Drop("n1:c1:8080")
	testkit.Eventually(t, 10*time.Second, "c1 registered again", hasIDs(reg, "n1:c0:8080", "n1:c1:8080", "n1:c2:8080"))
	e.Quiet(func(cs map[string]*dockertest.Container) {
		for _, c := range cs {
			if c.Name == "c2" {
				delete(cs, c.ID)
			}
		}
	})
	testkit.Eventually(t, 10*time.Second, "c2 gone", hasIDs(reg, "n1:c0:8080", "n1:c1:8080"))
}

// TestUnreachable: with the engine down (a dead socket) the watcher reports why,
// with a hint, retries with backoff, and connects once the engine is back.
func TestUnreachable(t *testing.T) {
	e := dockertest.NewEngine(t)
	e.Run(webC("a", 1001))
	e.SetDown(true)
	reg := dockertest.NewRegistry()
	w := start(t, e.Host(), reg, nil)
	testkit.Eventually(t, 10*time.Second, "several attempts", func() bool { return w.Stats().Failures >= 3 })
	st := reg.CheckStatus(StatusCheckID)
	if st.Status != catalog.StatusCritical || !strings.Contains(st.Output, "cannot reach the Docker engine at "+e.Host()) ||
		!strings.Contains(st.Output, "is the engine running? --docker-host or $DOCKER_HOST choose it") || w.Stats().Connected {
		t.Errorf("watcher check %+v, connected %v: want critical, naming the engine and a hint", st, w.Stats().Connected)
	}
	e.SetDown(false)
	testkit.Eventually(t, 10*time.Second, "registered once the engine is back", hasIDs(reg, "n1:a:8080"))
	testkit.Eventually(t, 10*time.Second, "watcher check passing", func() bool { return reg.CheckStatus(StatusCheckID).Status == catalog.StatusPassing })
}

// TestNoEngineAtAll: a socket path where nothing ever listened.
func TestNoEngineAtAll(t *testing.T) {
	reg := dockertest.NewRegistry()
	w := start(t, filepath.Join(t.TempDir(), "none.sock"), reg, nil)
	testkit.Eventually(t, 10*time.Second, "two attempts", func() bool { return w.Stats().Failures >= 2 })
	if st := reg.CheckStatus(StatusCheckID); st.Status != catalog.StatusCritical || !strings.Contains(st.Output, "none.sock") {
		t.Errorf("watcher check %+v", st)
	}
}

// TestStatesAndPolicies: pause and HEALTHCHECK set the container check; exits keep
// or drop services by the rumor.deregister label; removal always drops them; a
// rename moves the registration to the new name's ID.
func TestStatesAndPolicies(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	plain := e.Run(webC("plain", 1001))
	keep := dockertest.Container{Name: "keep", Image: "api", Published: map[string]uint16{"80/tcp": 1002},
		Labels: map[string]string{LabelDeregister: "on-success"}}
	k := e.Run(keep)
	w := start(t, e.Host(), reg, nil)
	plainCheck := ContainerCheckID("n1:plain:8080")
	testkit.Eventually(t, 10*time.Second, "registered", hasIDs(reg, "n1:keep:80", "n1:plain:8080"))
	status := func(id string, want catalog.Status, out string) func() bool {
		return func() bool { st := reg.CheckStatus(id); return st.Status == want && strings.Contains(st.Output, out) }
	}
	e.Pause(plain)
	testkit.Eventually(t, 10*time.Second, "paused: critical", status(plainCheck, catalog.StatusCritical, "container paused"))
	e.Unpause(plain)
	testkit.Eventually(t, 10*time.Second, "unpaused: passing", status(plainCheck, catalog.StatusPassing, ""))
	e.SetHealth(plain, "starting")
	testkit.Eventually(t, 10*time.Second, "starting: warning", status(plainCheck, catalog.StatusWarning, "HEALTHCHECK starting"))
	e.SetHealth(plain, "unhealthy")
	testkit.Eventually(t, 10*time.Second, "unhealthy: critical", status(plainCheck, catalog.StatusCritical, "HEALTHCHECK unhealthy"))
	e.SetHealth(plain, "healthy")
	testkit.Eventually(t, 10*time.Second, "healthy: passing", status(plainCheck, catalog.StatusPassing, ""))

	e.Die(k, 1)
	testkit.Eventually(t, 10*time.Second, "on-success, failed: kept, critical", status(ContainerCheckID("n1:keep:80"), catalog.StatusCritical, "exited with code 1"))
	if !slices.Contains(reg.IDs(), "n1:keep:80") {
		t.Fatal("on-success container that failed was deregistered")
	}
	e.Start(k)
	testkit.Eventually(t, 10*time.Second, "restarted: passing", status(ContainerCheckID("n1:keep:80"), catalog.StatusPassing, ""))
	e.Stop(k, 0)
	testkit.Eventually(t, 10*time.Second, "on-success, clean exit: deregistered", hasIDs(reg, "n1:plain:8080"))

	e.Rename(plain, "renamed")
	testkit.Eventually(t, 10*time.Second, "renamed", hasIDs(reg, "n1:renamed:8080"))
	if n := w.Stats().Connects; n != 1 {
		t.Errorf("%d sessions, want 1: handling events must not end the session", n)
	}
}

// TestNever: rumor.deregister=never keeps a stopped container's services, also
// across a new watcher (an agent restart), until the container is removed.
func TestNever(t *testing.T) {
	e := dockertest.NewEngine(t)
	reg := dockertest.NewRegistry()
	c := dockertest.Container{Name: "db", Image: "db", Published: map[string]uint16{"5432/tcp": 5432},
		Labels: map[string]string{LabelDeregister: "never"}}
	id := e.Run(c)
	w := start(t, e.Host(), reg, nil)
	testkit.Eventually(t, 10*time.Second, "registered", hasIDs(reg, "n1:db:5432"))
	e.Stop(id, 0)
	check := ContainerCheckID("n1:db:5432")
	testkit.Eventually(t, 10*time.Second, "kept, critical", func() bool { return reg.CheckStatus(check).Status == catalog.StatusCritical })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2 := start(t, e.Host(), reg, nil)
	testkit.Eventually(t, 10*time.Second, "the new watcher connected", func() bool { return w2.Stats().Connected })
	if !slices.Equal(reg.IDs(), []string{"n1:db:5432"}) {
		t.Fatalf("after a restart: %v, want the kept n1:db:5432", reg.IDs())
	}
	e.Remove(id)
	testkit.Eventually(t, 10*time.Second, "removed: deregistered", hasIDs(reg))
}

// TestConfig: a missing registry or node, and an address the client cannot parse,
// are errors naming them.
func TestConfig(t *testing.T) {
	reg := dockertest.NewRegistry()
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Node: "n"}, "Config.Registry is required"},
		{Config{Registry: reg}, "Config.Node is required"},
		{Config{Registry: reg, Node: "n", Host: "ftp://x"}, `engine address "ftp://x"`},
		{Config{Registry: reg, Node: "n", ReconcileInterval: time.Minute, CheckTTL: time.Second}, "CheckTTL 1s must be longer"},
	} {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
}
