package agent

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/gossip/gossiptest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// loopbackPool starts n real agents on 127.0.0.1 (real gossip, free ports) joined to
// the first, and waits until each sees all alive.
func loopbackPool(t *testing.T, n int) []*Agent {
	t.Helper()
	var agents []*Agent
	for i := range n {
		cfg := Config{
			NodeName: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(),
			BindAddr: "127.0.0.1", BindPort: 0, GossipProfile: "local",
			HTTPAddr: "127.0.0.1:0", MaintenanceInterval: 100 * time.Millisecond,
		}
		if i > 0 {
			cfg.Join = []string{agents[0].GossipAddr().String()}
		}
		agents = append(agents, startAgent(t, cfg))
	}
	for _, a := range agents {
		testkit.Eventually(t, 10*time.Second, a.NodeName()+" to see all members alive", func() bool {
			alive := 0
			for _, m := range a.Members() {
				if m.State == catalog.LivenessAlive {
					alive++
				}
			}
			return alive == n
		})
	}
	return agents
}

// webPort returns the port of n1's instance of web on a, or -1.
func webPort(a *Agent, node string) int {
	for _, in := range a.Catalog().ServiceInstances("web", catalog.Filter{}) {
		if in.Node.Node.Name == node {
			return in.Service.Port
		}
	}
	return -1
}

// TestForgedOwnRecordsRepaired (issue 11 items 1 and 2): forged gossip packets sent
// to a peer of n1, carrying n1's service with a fake port at 2^64-1, at n1's own
// generation with counter 2^64-2, and at a plausible future generation: within
// seconds every catalog shows n1's real port again, n1's own catalog and local state
// agree, and n1's later registrations spread. On the old code the generation 2^64-1
// erased n1 for good and the counter pinned the fake port pool-wide.
func TestForgedOwnRecordsRepaired(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	agents := loopbackPool(t, 3)
	owner := agents[0]
	if err := owner.RegisterService(t.Context(), web("web", 80)); err != nil {
		t.Fatal(err)
	}
	all := func(what string, port int) {
		t.Helper()
		for _, a := range agents {
			testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s: n1's web on port %d on %s", what, port, a.NodeName()),
				func() bool { return webPort(a, "n1") == port })
		}
	}
	all("registered", 80)
	atk, err := gossiptest.NewSender("mallory", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = atk.Close() }()
	forge := func(v catalog.Version) []byte {
		return gossiptest.Records(catalog.Record{Origin: "n1", Key: catalog.Key{Kind: catalog.KindService, ID: "web"},
			Version: v, Service: catalogtest.Service("web", "web", 6666)})
	}
	for i, v := range []catalog.Version{
		{Gen: math.MaxUint64, Counter: 1},                                // item 1: the wrapping generation
		{Gen: owner.Generation(), Counter: math.MaxUint64 - 1},           // item 2: the pinning counter
		{Gen: uint64(time.Now().Add(time.Hour).UnixMilli()), Counter: 1}, // plausible, but not n1's
	} {
		gen := owner.Generation()
		if err := atk.SendPacket(agents[1+i%2].GossipAddr(), forge(v)); err != nil {
			t.Fatal(err)
		}
		if v.Gen != math.MaxUint64 {
			testkit.Eventually(t, 10*time.Second, fmt.Sprintf("n1 to supersede %s", v), func() bool { return owner.Generation() > max(gen, v.Gen) })
		}
		all(fmt.Sprintf("after the forged %s", v), 80)
	}
	for _, a := range agents {
		if v := a.Catalog().OriginVersion("n1"); v.Gen != owner.Generation() {
			t.Errorf("%s holds n1 at %s, want generation %d", a.NodeName(), v, owner.Generation())
		}
	}
	if got := owner.LocalServices(); len(got) != 1 || got[0].Port != 80 {
		t.Errorf("n1's local services: %+v", got)
	}
	if err := owner.RegisterService(t.Context(), web("web", 81)); err != nil {
		t.Fatal(err)
	}
	all("re-registered", 81)
}

// TestGossipStartErrors (issue 11 item 6): a taken gossip port and a bind address
// that is not this host's give an error saying what to do, not a panic.
func TestGossipStartErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		bind string
		port int
		want string
	}{
		{"127.0.0.1", port, "gossip port in use: is another agent running? choose another with --bind"},
		{"192.0.2.1", 0, "not an address of this host"},
	} {
		a, err := New(Config{NodeName: "n1", DataDir: t.TempDir(), BindAddr: tc.bind, BindPort: tc.port, HTTPAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Start(t.Context())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bind %s:%d: Start = %v, want %q", tc.bind, tc.port, err, tc.want)
		}
		_ = a.Shutdown()
	}
}

// TestRetryJoinNameConflictFails (issue 11 item 10): an agent whose retry-join finds
// its name taken by a live node fails (Failed, Err) rather than retrying forever.
func TestRetryJoinNameConflictFails(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	peer := loopbackPool(t, 1)[0]
	a := startAgent(t, Config{NodeName: "n1", DataDir: t.TempDir(), BindAddr: "127.0.0.1", GossipProfile: "local",
		HTTPAddr: "127.0.0.1:0", RetryJoin: []string{peer.GossipAddr().String()}})
	select {
	case <-a.Failed():
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not fail within 20s")
	}
	if err := a.Err(); !errors.Is(err, gossip.ErrNameConflict) {
		t.Errorf("Err() = %v, want ErrNameConflict", err)
	}
	if a2 := peer.Members(); len(a2) != 1 {
		t.Errorf("the pool's members: %+v", a2)
	}
}
