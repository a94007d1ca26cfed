package proxy_test

import (
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/proxy"
)

// TestProxyFollowsMove: once the catalog holds the old node's forward pointer
// (catalog.Move) and the instance on its new node, new connections go to the new
// location only — even when the pointer arrives before the old node's deletion of
// the instance (the two records of a move seen apart), since the catalog leaves a
// moved instance out of Endpoints.
func TestProxyFollowsMove(t *testing.T) {
	forEngines(t, func(t *testing.T, eng proxy.Engine) {
		for _, apart := range []bool{false, true} {
			name := "together"
			if apart {
				name = "pointer before the deletion"
			}
			t.Run(name, func(t *testing.T) {
				c := newCluster(t)
				a, b := newBackend(t, "a"), newBackend(t, "b")
				c.add("n1", "web-1", a.port(), 1)
				_, addr := newProxy(t, eng, c, proxy.Config{})
				if got := helloClose(t, addr); got != "a" {
					t.Fatalf("before the move: %q, want a", got)
				}
				c.add("n2", "web-1", b.port(), 1) // the instance on its new node
				w := c.writer("n1")
				now := time.Now()
				recs := []catalog.Record{w.PutMove("web-1", &catalog.Move{Service: "web", ToNode: "n2", ToServiceID: "web-1",
					At: now, Until: now.Add(time.Hour), Explicit: true})}
				if !apart {
					recs = append(recs, w.Delete(catalog.Key{Kind: catalog.KindService, ID: "web-1"}))
				}
				c.apply(recs...)
				testkit.Eventually(t, 5*time.Second, "the proxy to follow the move", func() bool {
					return helloClose(t, addr) == "b"
				})
				for i := range 20 {
					if got := helloClose(t, addr); got != "b" {
						t.Fatalf("connection %d after the move went to %q, want b", i, got)
					}
				}
			})
		}
	})
}
