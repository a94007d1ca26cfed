package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// TestLoopbackSockets runs three nodes on real UDP/TCP sockets on 127.0.0.1 (ports
// picked by the kernel) with the "local" profile, and checks that a registration and a
// graceful leave spread. It runs in real time, so every wait polls with a deadline.
func TestLoopbackSockets(t *testing.T) {
	var nodes []*node
	for i := range 3 {
		name := fmt.Sprintf("lo%d", i)
		cat, _ := catalogtest.New(t, catalog.Config{})
		g, err := New(Config{NodeName: name, BindAddr: "127.0.0.1", Store: cat, Profile: "local",
			Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
			MemberlistHook: func(mc *memberlist.Config) { mc.BindPort = 0; mc.AdvertisePort = 0 }})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = g.Shutdown() })
		nd := &node{name: name, cat: cat, g: g, w: catalog.NewWriter(name, 1)}
		nd.publish(nd.w.PutNode(catalogtest.Node(name, "127.0.0.1")))
		if i > 0 {
			if _, err := g.Join(context.Background(), []string{nodes[0].g.LocalAddr().String()}); err != nil {
				t.Fatalf("join %s: %v", name, err)
			}
		}
		nodes = append(nodes, nd)
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			<-time.After(20 * time.Millisecond) // the polling interval; the deadline bounds the wait
		}
	}
	nodes[2].publish(nodes[2].w.PutService(catalogtest.Service("web-1", "web", 80)))
	poll("registration on all", allSee(nodes, "web", "lo2/web-1=passing"))
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
