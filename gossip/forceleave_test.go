package gossip

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// TestForceLeaveDropsFailedNodeEverywhere crashes a node, then forces it out from one
// member: every live member sees it left and drops its records at once, long before
// the reap timeout, and prune forgets it on the forcing node.
func TestForceLeaveDropsFailedNodeEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 4, nil)
		defer c.shutdown()
		victim := c.nodes[3]
		victim.publish(victim.w.PutService(catalogtest.Service("db-1", "db", 5432)))
		within(t, 10*time.Second, "registration visible", allSee(c.nodes, "db", "n03/db-1=passing"))

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Alive nodes, this one included, and unknown names are refused.
		for _, name := range []string{victim.name, c.nodes[0].name} {
			if err := c.nodes[0].g.ForceLeave(ctx, name, false); !errors.Is(err, ErrNotFailed) {
				t.Errorf("ForceLeave(%s) of a live node: %v, want ErrNotFailed", name, err)
			}
		}
		if err := c.nodes[0].g.ForceLeave(ctx, "nobody", false); !errors.Is(err, ErrUnknownNode) {
			t.Errorf("ForceLeave(nobody): %v, want ErrUnknownNode", err)
		}
		if got := instances(c.nodes[1].cat, "db"); got != "n03/db-1=passing" {
			t.Fatalf("a refused force-leave changed the catalog: %s", got)
		}

		c.net.SetDown(victim.name, true)
		victim.dead = true
		within(t, 20*time.Second, "crash seen by all", allSee(c.live(), "db", "n03/db-1=critical"))
		within(t, 20*time.Second, "crash seen as failed by all", func() bool {
			for _, nd := range c.live() {
				if st, _ := nd.cat.Liveness(victim.name); st != catalog.LivenessFailed {
					return false
				}
			}
			return true
		})

		if err := c.nodes[0].g.ForceLeave(ctx, victim.name, false); err != nil {
			t.Fatalf("ForceLeave: %v", err)
		}
		// Reaping is 30 s away in these tests and Expire is never called: only the
		// forced leave can drop the records this fast.
		within(t, 2*time.Second, "records dropped everywhere", allSee(c.live(), "db", ""))
		for _, nd := range c.live() {
			if st, _ := nd.cat.Liveness(victim.name); st != catalog.LivenessLeft {
				t.Errorf("%s sees %s as %s, want left", nd.name, victim.name, st)
			}
			if i := slices.IndexFunc(nd.g.Members(), func(m Member) bool { return m.Name == victim.name }); i < 0 || nd.g.Members()[i].State != catalog.LivenessLeft {
				t.Errorf("%s: members lack %s as left", nd.name, victim.name)
			}
		}
		// Forcing out a node that already left is fine; prune forgets it here.
		if err := c.nodes[1].g.ForceLeave(ctx, victim.name, true); err != nil {
			t.Fatalf("ForceLeave with prune: %v", err)
		}
		if slices.ContainsFunc(c.nodes[1].g.Members(), func(m Member) bool { return m.Name == victim.name }) {
			t.Errorf("prune left %s in the members of %s", victim.name, c.nodes[1].name)
		}
		c.nodes[1].g.mu.Lock()
		_, retrying := c.nodes[1].g.reconnect[victim.name]
		c.nodes[1].g.mu.Unlock()
		if retrying {
			t.Errorf("%s still tries to reconnect to a node forced out", c.nodes[1].name)
		}
	})
}
