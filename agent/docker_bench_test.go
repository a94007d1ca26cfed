package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/docker"
	"github.com/rumor-sd/rumor/docker/dockertest"
)

// The Docker watcher's targets (README, "Docker watcher"), measured with a real
// agent (data dir, state saved on every change, health checks running; gossip
// replaced by a fake that timestamps what the agent publishes) and the fake engine,
// which emits its events with the wall clock of this process:
//
//	go test -run '^$' -bench Docker -benchtime 1x ./agent/
//
// BenchmarkDockerLatency takes b.N samples (-benchtime 200x).

// timingCluster is a fake cluster that notes when each service record is first
// published after a mark: "registered locally" is the moment the agent applied the
// record to its catalog and handed it to gossip.
type timingCluster struct {
	*fakeCluster
	mu   sync.Mutex
	seen map[string]time.Time // "put:<id>" or "del:<id>" → first publish
	recs []catalog.Record     // every record published, in order
}

func (c *timingCluster) Publish(recs []catalog.Record) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		c.recs = append(c.recs, r)
		if r.Key.Kind != catalog.KindService {
			continue
		}
		k := "put:" + r.Key.ID
		if r.Deleted {
			k = "del:" + r.Key.ID
		}
		if _, ok := c.seen[k]; !ok {
			c.seen[k] = now
		}
	}
}

func (c *timingCluster) at(k string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[k]
	return t, ok
}

func (c *timingCluster) published() []catalog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// benchAgent starts an agent with the watcher on e (nil: the real engine), its
// state in dir, and a timing cluster.
func benchAgent(b *testing.B, e *dockertest.Engine, dir string) (*Agent, *timingCluster) {
	b.Helper()
	tc := &timingCluster{seen: map[string]time.Time{}}
	host := ""
	if e != nil {
		host = e.Host()
	}
	cfg := Config{NodeName: "n1", DataDir: dir, Dev: dir == "", HTTPAddr: "127.0.0.1:0",
		Docker: DockerConfig{Enabled: true, Host: host},
		newCluster: func(cc clusterConfig) (cluster, error) {
			tc.fakeCluster = &fakeCluster{name: cc.NodeName, addr: netip.MustParseAddrPort("127.0.0.1:7946")}
			return tc, nil
		}}
	a, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Shutdown() })
	return a, tc
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Microsecond) // polling interval, not synchronisation
	}
	return true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the nearest-rank p-th percentile of ds, as sim.Percentile (which
// this package's tests cannot import: sim imports agent).
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s) == 0 {
		return 0
	}
	return s[max(0, min(len(s)-1, (len(s)*p+99)/100-1))]
}

// BenchmarkDockerLatency: start → registered locally and die → deregistered,
// from the engine's event to the record published, one container at a time, with
// 100 other containers registered (so each change saves a state of 100+ services).
// Targets: p99 ≤ 100 ms each.
func BenchmarkDockerLatency(b *testing.B) {
	b.ReportAllocs()
	e := dockertest.NewEngine(b)
	for i := range 100 {
		e.Run(webContainer(fmt.Sprintf("bg%03d", i), uint16(20000+i)))
	}
	a, tc := benchAgent(b, e, b.TempDir())
	if !waitFor(30*time.Second, func() bool { return len(localIDs(a, "n1:bg")) == 100 }) {
		b.Fatal("the 100 background containers were not registered")
	}
	var start, die []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("s%05d", i)
		id := e.Run(webContainer(name, uint16(30000+i%30000)))
		ev := time.Unix(0, e.LastEvent())
		key := "n1:" + name + ":8080"
		if !waitFor(10*time.Second, func() bool { _, ok := tc.at("put:" + key); return ok }) {
			b.Fatalf("%s not registered", name)
		}
		t, _ := tc.at("put:" + key)
		start = append(start, t.Sub(ev))
		e.Die(id, 0)
		ev = time.Unix(0, e.LastEvent())
		if !waitFor(10*time.Second, func() bool { _, ok := tc.at("del:" + key); return ok }) {
			b.Fatalf("%s not deregistered", name)
		}
		t, _ = tc.at("del:" + key)
		die = append(die, t.Sub(ev))
		e.Remove(id)
	}
	b.ReportMetric(ms(percentile(start, 50)), "start-p50-ms")
	b.ReportMetric(ms(percentile(start, 99)), "start-p99-ms")
	b.ReportMetric(ms(percentile(die, 50)), "die-p50-ms")
	b.ReportMetric(ms(percentile(die, 99)), "die-p99-ms")
}

// BenchmarkDockerGap: the engine goes away for 10 s (its event stream cut, its
// socket refusing) while 20 containers start and 20 stop; counted from the
// watcher's reconnect (its first ping once the engine is back), how long until
// nothing is stale and nothing missing, and how many are stale or missing 2 s
// after it. Target: 0 stale and 0 missing within 2 s of the reconnect.
func BenchmarkDockerGap(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		e := dockertest.NewEngine(b)
		var stop []string
		for i := range 40 {
			id := e.Run(webContainer(fmt.Sprintf("old%02d", i), uint16(20000+i)))
			if i < 20 {
				stop = append(stop, id)
			}
		}
		a, _ := benchAgent(b, e, b.TempDir())
		if !waitFor(30*time.Second, func() bool { return len(localIDs(a, "n1:")) == 40 }) {
			b.Fatal("the 40 containers were not registered")
		}
		e.SetDown(true)
		down := time.Now()
		want := []string{}
		for i := range 20 {
			// Spread over the 10 s, as a host's containers come and go.
			time.Sleep(time.Until(down.Add(time.Duration(i) * 500 * time.Millisecond)))
			e.Stop(stop[i], 0)
			e.Run(webContainer(fmt.Sprintf("new%02d", i), uint16(21000+i)))
		}
		time.Sleep(time.Until(down.Add(10 * time.Second)))
		for i := range 20 {
			want = append(want, fmt.Sprintf("n1:new%02d:8080", i), fmt.Sprintf("n1:old%02d:8080", 20+i))
		}
		slices.Sort(want)
		pings := len(e.Pings())
		e.SetDown(false)
		back := time.Now()
		if !waitFor(60*time.Second, func() bool { return len(e.Pings()) > pings }) {
			b.Fatal("the watcher did not reconnect")
		}
		reconnect := e.Pings()[pings]
		var at2s []string
		ok := waitFor(60*time.Second, func() bool {
			ids := localIDs(a, "n1:")
			if at2s == nil && time.Since(reconnect) >= 2*time.Second {
				at2s = ids
			}
			return slices.Equal(ids, want)
		})
		done := time.Now()
		if !ok {
			b.Fatalf("not reconciled: %v", localIDs(a, "n1:"))
		}
		if at2s == nil {
			at2s = want
		}
		stale, missing := 0, 0
		for _, id := range at2s {
			if !slices.Contains(want, id) {
				stale++
			}
		}
		for _, id := range want {
			if !slices.Contains(at2s, id) {
				missing++
			}
		}
		b.ReportMetric(ms(done.Sub(reconnect)), "reconnect-to-reconciled-ms")
		b.ReportMetric(float64(stale), "stale-at-2s")
		b.ReportMetric(float64(missing), "missing-at-2s")
		b.ReportMetric(ms(reconnect.Sub(back)), "engine-back-to-reconnect-ms")
	}
}

// BenchmarkDockerBurst: 1,000 containers started at once; from the last start
// event until all 1,000 are registered. Target: within 5 s.
func BenchmarkDockerBurst(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		e := dockertest.NewEngine(b)
		a, _ := benchAgent(b, e, b.TempDir())
		if !waitFor(10*time.Second, func() bool { return a.docker.Stats().Connected }) {
			b.Fatal("not connected")
		}
		first := time.Now()
		for i := range 1000 {
			e.Run(webContainer(fmt.Sprintf("c%04d", i), uint16(20000+i)))
		}
		last := time.Unix(0, e.LastEvent())
		if !waitFor(60*time.Second, func() bool { return len(localIDs(a, "n1:c")) == 1000 }) {
			b.Fatalf("only %d of 1,000 registered", len(localIDs(a, "n1:c")))
		}
		b.ReportMetric(ms(time.Since(last)), "after-last-start-ms")
		b.ReportMetric(ms(last.Sub(first)), "starting-1000-ms")
	}
}

// BenchmarkDockerRestart: an agent restarted with 200 containers running: what it
// publishes after its start (which republishes everything at the new generation,
// as any restart does) until the watcher has reconciled and handled one more
// event. Target: no deregistration or registration of a container's service (0
// flaps), and in fact no record at all.
func BenchmarkDockerRestart(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		e := dockertest.NewEngine(b)
		for i := range 200 {
			e.Run(webContainer(fmt.Sprintf("c%03d", i), uint16(20000+i)))
		}
		dir := b.TempDir()
		a1, _ := benchAgent(b, e, dir)
		if !waitFor(30*time.Second, func() bool {
			c, _ := localCheck(a1, docker.StatusCheckID)
			return len(localIDs(a1, "n1:c")) == 200 && c.Status == catalog.StatusPassing
		}) {
			b.Fatal("the 200 containers were not registered")
		}
		if err := a1.Shutdown(); err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		a2, tc := benchAgent(b, e, dir)
		initial := len(tc.published())
		if !waitFor(30*time.Second, func() bool { return a2.docker.Stats().Connects >= 1 }) {
			b.Fatal("the watcher did not connect")
		}
		reconciled := time.Since(began)
		e.Run(webContainer("probe", 30000))
		if !waitFor(10*time.Second, func() bool { _, ok := tc.at("put:n1:probe:8080"); return ok }) {
			b.Fatal("the probe was not registered")
		}
		flaps, others := 0, 0
		for _, r := range tc.published()[initial:] {
			switch {
			case r.Key.ID == "n1:probe:8080" || r.Key.ID == "service:n1:probe:8080:docker":
			case r.Key.Kind == catalog.KindService:
				flaps++
			default:
				others++
				b.Logf("published after the restart: %s", r.String())
			}
		}
		b.ReportMetric(float64(flaps), "service-flaps")
		b.ReportMetric(float64(others), "other-records")
		b.ReportMetric(ms(reconciled), "start-to-reconciled-ms")
	}
}

// BenchmarkDockerEngineLatency is BenchmarkDockerLatency against the real engine,
// with real containers (an image of the static test server built first), one at a
// time: from the engine's start event to the service published, and from its die
// event (after `docker kill`) to the deregistration. The benchmark reads the
// events' times from its own subscription. Skipped without an engine.
func BenchmarkDockerEngineLatency(b *testing.B) {
	b.ReportAllocs()
	cli := dockertest.RequireEngine(b)
	image := dockertest.BuildImage(b, cli)
	_, tc := benchAgent(b, nil, b.TempDir())
	var mu sync.Mutex
	events := map[string]time.Time{} // "<action> <container ID>" → the event's time
	ev := cli.Events(b.Context(), client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").Add("event", "start", "die")})
	go func() { // ends with the benchmark's context
		for m := range ev.Messages {
			mu.Lock()
			events[string(m.Action)+" "+m.Actor.ID] = time.Unix(0, m.TimeNano)
			mu.Unlock()
		}
	}()
	eventAt := func(what string) time.Time {
		var t time.Time
		if !waitFor(30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); t = events[what]; return !t.IsZero() }) {
			b.Fatalf("no event %s", what)
		}
		return t
	}
	var start, die []time.Duration
	for b.Loop() {
		name := dockertest.Name("lat")
		id := dockertest.Run(b, cli, dockertest.Spec{Name: name, Image: image, Publish: []string{"8080/tcp"}, Env: []string{"SERVICE_NAME=lat"}})
		key := "n1:" + name + ":8080"
		if !waitFor(30*time.Second, func() bool { _, ok := tc.at("put:" + key); return ok }) {
			b.Fatalf("%s not registered", name)
		}
		t, _ := tc.at("put:" + key)
		start = append(start, t.Sub(eventAt("start "+id)))
		if _, err := cli.ContainerKill(b.Context(), id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			b.Fatal(err)
		}
		if !waitFor(30*time.Second, func() bool { _, ok := tc.at("del:" + key); return ok }) {
			b.Fatalf("%s not deregistered", name)
		}
		t, _ = tc.at("del:" + key)
		die = append(die, t.Sub(eventAt("die "+id)))
	}
	b.ReportMetric(ms(percentile(start, 50)), "start-p50-ms")
	b.ReportMetric(ms(percentile(start, 99)), "start-p99-ms")
	b.ReportMetric(ms(percentile(die, 50)), "die-p50-ms")
	b.ReportMetric(ms(percentile(die, 99)), "die-p99-ms")
}
