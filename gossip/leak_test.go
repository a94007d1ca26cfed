package gossip

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestNoGoroutineLeak runs three nodes on real loopback sockets (gossip, anti-entropy,
// a large record on the reliable path, reconnects to a crashed node), then has one
// leave, one force the crashed one out and shut down: no goroutine may outlive them.
// memberlist's Shutdown does not wait for its in-flight probes: each ends by itself
// within one probe interval, which Lifeguard stretches up to 8× (8 s with the local
// profile) after failed probes, so the check retries (testkit.NoLeaks).
func TestNoGoroutineLeak(t *testing.T) {
	testkit.NoLeaks(t)
	nodes := startLoopbackNodes(t, "lk", 3, func(cfg *Config) {
		cfg.MemberlistHook = func(mc *memberlist.Config) { mc.BindPort = 0; mc.AdvertisePort = 0 }
	})
	defer func() { // on failure too
		for _, nd := range nodes {
			_ = nd.g.Shutdown()
		}
	}()
	poll := func(what string, cond func() bool) { t.Helper(); testkit.Eventually(t, 20*time.Second, what, cond) }
	big := catalogtest.Service("big-1", "big", 80)
	big.Meta = map[string]string{}
	for i := range 10 {
		big.Meta[fmt.Sprintf("k%d", i)] = strings.Repeat("v", 400)
	}
	nodes[1].publish(nodes[1].w.PutService(big))
	poll("the large record on all", allSee(nodes, "big", "lk1/big-1=passing"))

	// lk2 crashes; lk0 sees it fail and starts reconnect attempts, then forces it out.
	if err := nodes[2].g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	poll("lk2 failed on lk0", func() bool {
		st, _ := nodes[0].cat.Liveness("lk2")
		return st == catalog.LivenessFailed
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodes[0].g.ForceLeave(ctx, "lk2", false); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].g.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].g.Shutdown(); err != nil {
		t.Fatal(err)
	}
}
