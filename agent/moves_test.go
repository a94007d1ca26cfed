package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// movePool starts n real agents on loopback (real gossip, free ports), n2.. joined
// to n1, each with its own data dir; tweak adjusts each config. It waits until every
// agent sees all n alive.
func movePool(t *testing.T, n int, tweak func(i int, c *Config)) ([]*Agent, []Config) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	var agents []*Agent
	var cfgs []Config
	for i := range n {
		cfg := Config{NodeName: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(), BindAddr: "127.0.0.1",
			GossipProfile: "local", HTTPAddr: "127.0.0.1:0", MaintenanceInterval: 50 * time.Millisecond}
		if i > 0 {
			cfg.Join = []string{agents[0].GossipAddr().String()}
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		cfgs = append(cfgs, cfg)
		agents = append(agents, startAgent(t, cfg))
	}
	for _, a := range agents {
		testkit.Eventually(t, 10*time.Second, a.NodeName()+" to see every member alive", func() bool {
			alive := 0
			for _, m := range a.Members() {
				if m.State == catalog.LivenessAlive {
					alive++
				}
			}
			return alive == n
		})
		// Members alive is memberlist's view; a move's target must be in the catalog.
		testkit.Eventually(t, 10*time.Second, a.NodeName()+" to hold every node record", func() bool {
			for i := range n {
				if _, _, err := a.Catalog().NodeServices(fmt.Sprintf("n%d", i+1)); err != nil {
					return false
				}
			}
			return true
		})
	}
	return agents, cfgs
}

// awaitPointer waits until every agent holds from's pointer for id, to toNode.
func awaitPointer(t *testing.T, agents []*Agent, from, id, toNode string) {
	t.Helper()
	for _, a := range agents {
		testkit.Poll(t, 10*time.Second, testkit.PollInterval, fmt.Sprintf("%s to see %s/%s → %s", a.NodeName(), from, id, toNode), func() error {
			e, ok := a.Catalog().MoveFrom(from, id)
			if !ok || e.Move.ToNode != toNode {
				return fmt.Errorf("pointer %+v, %v", e, ok)
			}
			return nil
		})
	}
}

func apiSvc(id string, port int) definition.Service {
	return definition.Service{ID: id, Name: "api", Port: port}
}

// TestMoveDetectedBySameID: an instance deregistered on n1 that shows up with the
// same service ID and name on n2 within the window leaves a pointer on n1, seen by
// every agent; an instance that was already elsewhere when it left is not a move.
func TestMoveDetectedBySameID(t *testing.T) {
	agents, _ := movePool(t, 2, nil)
	n1, n2 := agents[0], agents[1]
	ctx := t.Context()
	if err := n1.RegisterService(ctx, apiSvc("api-1", 9001)); err != nil {
		t.Fatal(err)
	}
	if err := n1.DeregisterService(ctx, "api-1"); err != nil {
		t.Fatal(err)
	}
	if err := n2.RegisterService(ctx, apiSvc("api-1", 9002)); err != nil {
		t.Fatal(err)
	}
	awaitPointer(t, agents, "n1", "api-1", "n2")
	// Counted once the change returns (after its fsync): the pointer is applied, and
	// so seen, before that.
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "the detected move counted", func() error {
		if got := testutil.ToFloat64(n1.moves.recorded.WithLabelValues("detected")); got != 1 {
			return fmt.Errorf("rumor_agent_moves_total{how=detected} = %v, want 1", got)
		}
		return nil
	})
	e, _ := n2.Catalog().MoveFrom("n1", "api-1")
	if e.Move.Explicit || e.Move.Service != "api" || e.Move.ToServiceID != "api-1" {
		t.Errorf("pointer %+v, want a detected move of api to n2/api-1", e.Move)
	}
	if got := e.Move.Until.Sub(e.Move.At); got != DefaultMoveRetention {
		t.Errorf("retention %s, want the default %s", got, DefaultMoveRetention)
	}

	// Scale-down: api-2 runs on both; removing it from n1 is no move to n2.
	for _, a := range agents {
		if err := a.RegisterService(ctx, apiSvc("api-2", 9003)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 10*time.Second, "n1 to see api-2 on n2", func() bool {
		return len(n1.Catalog().ServiceInstances("api", catalog.Filter{})) == 3
	})
	if err := n1.DeregisterService(ctx, "api-2"); err != nil {
		t.Fatal(err)
	}
	n1.detectMoves() // what the moves loop runs at every change: n2 held api-2 already
	if _, ok := n1.moves.get("api-2"); !ok {
		t.Errorf("api-2 is not pending on n1 after its deregistration")
	}
	// The registration of api-1 on n1 again deletes its pointer: the instance is back.
	if err := n1.RegisterService(ctx, apiSvc("api-1", 9001)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "n2 to see n1's pointer gone", func() bool {
		_, ok := n2.Catalog().MoveFrom("n1", "api-1")
		return !ok
	})
	if _, ok := n1.Catalog().MoveFrom("n1", "api-2"); ok {
		t.Errorf("a scale-down was recorded as a move")
	}
}

// TestMoveExplicitChainAndRestart: `rumor service move` (MoveService) deregisters
// and points at once; a second move n2 → n3 collapses n1's pointer to n3 (one hop);
// n1's pointer survives n1's restart; bad targets are refused with a reason.
func TestMoveExplicitChainAndRestart(t *testing.T) {
	agents, cfgs := movePool(t, 3, nil)
	n1, n2 := agents[0], agents[1]
	ctx := t.Context()
	if err := n1.RegisterService(ctx, apiSvc("api-1", 9001)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ to, want string }{
		{"", "to: missing"}, {"n1", "is this node"}, {"nope", `no node named "nope"`},
	} {
		if _, err := n1.MoveService(ctx, "api-1", tc.to, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("MoveService(to %q) = %v, want an error containing %q", tc.to, err, tc.want)
		}
	}
	if _, err := n1.MoveService(ctx, "nothing", "n2", ""); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("MoveService of an unknown ID = %v, want not found", err)
	}
	m, err := n1.MoveService(ctx, "api-1", "n2", "")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Explicit || m.ToServiceID != "api-1" {
		t.Errorf("MoveService = %+v", m)
	}
	if len(n1.LocalServices()) != 0 {
		t.Errorf("the moved service is still registered on n1: %+v", n1.LocalServices())
	}
	awaitPointer(t, agents, "n1", "api-1", "n2")
	if err := n2.RegisterService(ctx, apiSvc("api-1", 9002)); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.MoveService(ctx, "api-1", "n3", "api-x"); err != nil {
		t.Fatal(err)
	}
	awaitPointer(t, agents, "n2", "api-1", "n3")
	awaitPointer(t, agents, "n1", "api-1", "n3") // collapsed by n1
	e, _ := agents[2].Catalog().MoveFrom("n1", "api-1")
	if e.Move.ToServiceID != "api-x" {
		t.Errorf("collapsed pointer %+v, want n3/api-x", e.Move)
	}

	// Restart n1 on its data dir: the pointer is published again from moves.json.
	if err := n1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg := cfgs[0]
	cfg.Join = []string{agents[2].GossipAddr().String()}
	again := startAgent(t, cfg)
	if e, ok := again.Catalog().MoveFrom("n1", "api-1"); !ok || e.Move.ToNode != "n3" || e.Version.Gen != again.Generation() {
		t.Fatalf("after restart n1 holds %+v, %v; want its pointer to n3 at generation %d", e, ok, again.Generation())
	}
	awaitPointer(t, []*Agent{agents[2]}, "n1", "api-1", "n3")
}

// TestMoveEndToEnd is issue 17's test of moves, in-process on loopback (three real
// agents, real gossip, real sockets; no network namespaces): a move of api-1 from
// n1 to n2 shows on n3 as a "moved" watch event, in GET /v1/rumor/moves, as a DNS
// CNAME (read with the real dig), and n3's local proxy follows it.
func TestMoveEndToEnd(t *testing.T) {
	bin := needDig(t)
	agents, _ := movePool(t, 3, func(i int, c *Config) {
		if i == 2 {
			c.DNS = DNSConfig{Addr: "127.0.0.1:0", UDPReaders: 1, Workers: 1}
			c.Proxy.Upstreams = []definition.Upstream{{Service: "api", LocalBindPort: 0}}
		}
	})
	n1, n2, n3 := agents[0], agents[1], agents[2]
	ctx := t.Context()
	portA, portB := greeter(t, "on-n1"), greeter(t, "on-n2")
	if err := n1.RegisterService(ctx, apiSvc("api-1", portA)); err != nil {
		t.Fatal(err)
	}
	proxyAddr := listenOf(n3, "api")
	testkit.Eventually(t, 10*time.Second, "n3's proxy to reach api-1 on n1", func() bool {
		got, err := greeting(proxyAddr)
		return err == nil && got == "on-n1"
	})

	// The watch stream of n3, opened before the move.
	base := "http://" + n3.HTTPAddr().String()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/rumor/watch?service=api", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			l := sc.Text()
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				event = v
			}
			if v, ok := strings.CutPrefix(l, "data: "); ok && event == "moved" {
				events <- v
			}
		}
	}()

	// The move: the instance starts on n2, then n1 is told it moved.
	if err := n2.RegisterService(ctx, apiSvc("api-1", portB)); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.MoveService(ctx, "api-1", "n2", ""); err != nil {
		t.Fatal(err)
	}

	select {
	case data := <-events:
		var ev struct {
			Index                                 uint64
			Service, From, ServiceID, To, Version string
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Service != "api" || ev.From != "n1" || ev.ServiceID != "api-1" || ev.To != "n2" || ev.Index == 0 {
			t.Errorf("moved event %s", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no moved event on n3's watch stream within 10s")
	}

	var list []struct{ From, ServiceID, To, ToServiceID string }
	getJSON(t, base+"/v1/rumor/moves?service=api", &list)
	if len(list) != 1 || list[0].From != "n1" || list[0].To != "n2" || list[0].ToServiceID != "api-1" {
		t.Errorf("GET /v1/rumor/moves = %+v", list)
	}

	want := []string{
		"api-1-n1._api._tcp.consul. CNAME api-1-n2._api._tcp.consul.",
		"api-1-n2._api._tcp.consul. SRV 1 1 " + fmt.Sprint(portB) + " n2.node.dc1.consul.",
	}
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "n3's DNS to answer the old name with a CNAME", func() error {
		got, status := dig(t, bin, n3.DNSAddr(), "api-1-n1._api._tcp.consul", "SRV")
		if !slices.Equal(got, want) {
			return fmt.Errorf("dig: %s %q, want %q", status, got, want)
		}
		return nil
	})

	testkit.Eventually(t, 10*time.Second, "n3's proxy to follow the move", func() bool {
		got, err := greeting(proxyAddr)
		return err == nil && got == "on-n2"
	})
	for i := range 10 {
		if got, err := greeting(proxyAddr); err != nil || got != "on-n2" {
			t.Fatalf("connection %d after the move: %q, %v; want on-n2", i, got, err)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestMoveExpires: after the move retention (on the agents' injected clock, one for
// both: Until is absolute, read by each agent's own clock) the old node deletes its
// pointer, and every agent stops showing it.
func TestMoveExpires(t *testing.T) {
	clk := catalogtest.NewClock()
	agents, _ := movePool(t, 2, func(i int, c *Config) {
		c.Clock, c.MoveRetention = clk, time.Hour
	})
	n1 := agents[0]
	if err := n1.RegisterService(t.Context(), apiSvc("api-1", 9001)); err != nil {
		t.Fatal(err)
	}
	m, err := n1.MoveService(t.Context(), "api-1", "n2", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Until.Sub(m.At); got != time.Hour {
		t.Errorf("retention %s, want the configured 1h", got)
	}
	awaitPointer(t, agents, "n1", "api-1", "n2")
	clk.Advance(time.Hour)
	testkit.Eventually(t, 10*time.Second, "n1 to delete its expired pointer", func() bool {
		for _, r := range n1.Catalog().Records("n1") {
			if r.Key == (catalog.Key{Kind: catalog.KindMove, ID: "api-1"}) {
				return r.Deleted
			}
		}
		return false
	})
	testkit.Eventually(t, 10*time.Second, "n2 to see the tombstone", func() bool {
		for _, r := range agents[1].Catalog().Records("n1") {
			if r.Key == (catalog.Key{Kind: catalog.KindMove, ID: "api-1"}) {
				return r.Deleted
			}
		}
		return false
	})
}
