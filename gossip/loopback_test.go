package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	dto "github.com/prometheus/client_model/go"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/gossip/netem"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestLoopbackSockets runs three nodes on real UDP/TCP sockets on 127.0.0.1 (ports
// picked by the kernel) with the "local" profile, and checks that a registration and a
// graceful leave spread. It runs in real time, so every wait polls with a deadline.
func TestLoopbackSockets(t *testing.T) {
	nodes := startLoopbackNodes(t, "lo", 3, func(cfg *Config) {
		cfg.MemberlistHook = func(mc *memberlist.Config) { mc.BindPort = 0; mc.AdvertisePort = 0 }
	})
	poll := func(what string, cond func() bool) { t.Helper(); testkit.Eventually(t, 10*time.Second, what, cond) }
	// On memberlist's own transport, unencrypted, the eager path sends in batches
	// from its own socket (batchsend.go); receivers take those packets.
	if nodes[2].g.batch == nil {
		t.Fatal("no batch sender on a plain pool over real sockets")
	}
	poll("lo2 sees every member alive", func() bool { return len(nodes[2].g.livePeers()) == 2 })
	eagerReceived := func(nd *node) float64 {
		var d dto.Metric
		if err := nd.g.metrics.received.WithLabelValues("eager").Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	var before [2]float64
	for i, nd := range nodes[:2] {
		before[i] = eagerReceived(nd)
	}
	nodes[2].publish(nodes[2].w.PutService(catalogtest.Service("web-1", "web", 80)))
	poll("registration on all", allSee(nodes, "web", "lo2/web-1=passing"))
	// The eager packets arrive even where the piggyback won the race (under load a
	// gossip tick can deliver the record first, and the eager packet then carries
	// nothing new, so the "last received" gauge, which counts only news, stays).
	poll("eager packets received", func() bool {
		for i, nd := range nodes[:2] {
			if eagerReceived(nd) <= before[i] {
				return false
			}
		}
		return true
	})
	if got := len(nodes[0].g.Members()); got != 3 {
		t.Errorf("members = %d, want 3", got)
	}
	// Probes carry network coordinates: every peer gets one and an RTT estimate.
	poll("coordinates learned", func() bool {
		for _, m := range nodes[0].g.Members() {
			if m.Name != "lo0" && (m.Coordinate == nil || m.RTT <= 0) {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodes[2].g.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	poll("leave seen", allSee(nodes[:2], "web", ""))
}

// TestLoopbackNetem runs two nodes on real sockets with their transports wrapped
// (WrapTransport) by netem's fixed 100 ms delay, the gossip port picked by the
// kernel: they join, and a registration reaches the other node, but never sooner
// than the one hop's 100 ms.
func TestLoopbackNetem(t *testing.T) {
	const hop = 100 * time.Millisecond
	// No MemberlistHook: BindPort 0 in Config itself must get a kernel-picked port.
	nodes := startLoopbackNodes(t, "nm", 2, func(cfg *Config) { cfg.WrapTransport = netem.Wrapper(netem.Config{Latency: hop}) })
	start := time.Now()
	nodes[1].publish(nodes[1].w.PutService(catalogtest.Service("web-1", "web", 80)))
	testkit.Eventually(t, 10*time.Second, "registration on both nodes", allSee(nodes, "web", "nm1/web-1=passing"))
	if took := time.Since(start); took < hop {
		t.Errorf("registration crossed in %s, less than the %s delay: the delay is not applied", took, hop)
	}
}

// TestWrapTransportError: a wrapper's error stops New and names what was wrong.
func TestWrapTransportError(t *testing.T) {
	cat, _ := catalogtest.New(t, catalog.Config{})
	_, err := New(Config{NodeName: "x", BindAddr: "127.0.0.1", Store: cat, WrapTransport: netem.Wrapper(netem.Config{Jitter: -time.Second})})
	if err == nil || !strings.Contains(err.Error(), "jitter -1s is negative") {
		t.Errorf("New with negative jitter: %v, want an error naming the jitter", err)
	}
}

// startLoopbackNodes starts n nodes named prefix0, prefix1, … on real sockets on
// 127.0.0.1, with the "local" profile and the gossip port left to the kernel (BindPort
// 0), each publishing its node record and joining the first. tweak adjusts each node's
// config. Every node is shut down at cleanup (Shutdown is idempotent, so a test may
// shut nodes down itself first).
func startLoopbackNodes(t *testing.T, prefix string, n int, tweak func(*Config)) []*node {
	t.Helper()
	var nodes []*node
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		cat, _ := catalogtest.New(t, catalog.Config{})
		cfg := Config{NodeName: name, BindAddr: "127.0.0.1", Store: cat, Profile: "local",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		tweak(&cfg)
		g, err := New(cfg)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = g.Shutdown() })
		if g.LocalAddr().Port() == 0 {
			t.Fatalf("%s advertises port 0: the dynamic port was not resolved", name)
		}
		nd := &node{name: name, cat: cat, g: g, w: catalog.NewWriter(name, 1)}
		nd.publish(nd.w.PutNode(catalogtest.Node(name, "127.0.0.1")))
		if i > 0 {
			if _, err := g.Join(context.Background(), []string{nodes[0].g.LocalAddr().String()}); err != nil {
				t.Fatalf("join %s: %v", name, err)
			}
		}
		nodes = append(nodes, nd)
	}
	return nodes
}
