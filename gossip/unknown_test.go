package gossip

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// holdGhost puts records of a node memberlist never knew into nd's catalog, as if nd
// had kept them from before that node crashed: a node record and one service "ghostly".
func holdGhost(t *testing.T, nd *node, name string) {
	t.Helper()
	w := catalog.NewWriter(name, 1)
	if _, err := nd.cat.Apply(w.PutNode(catalogtest.Node(name, "10.9.9.9")),
		w.PutService(catalogtest.Service(name+"-svc", "ghostly", 80))); err != nil {
		t.Fatal(err)
	}
}

func liveness(nd *node, name string) catalog.Liveness {
	l, _ := nd.cat.Liveness(name)
	return l
}

// TestUnknownOriginDroppedAfterGrace: a new replica that receives, by anti-entropy,
// the records of a node no member ever reported sees that node alive only for the
// grace period, then drops its records (no lasting state: issue 11 item 3); an
// external origin's records are left alone.
func TestUnknownOriginDroppedAfterGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, nil)
		defer c.shutdown()
		holdGhost(t, c.nodes[0], "ghost")
		ext := catalog.NewWriter("mdns:eth0", 1)
		if _, err := c.nodes[0].cat.Apply(ext.PutService(catalogtest.Service("printer-1", "printer", 631))); err != nil {
			t.Fatal(err)
		}
		late := c.start("late", nil)
		c.nodes = append(c.nodes, late)
		if _, err := late.g.Join(context.Background(), []string{c.nodes[0].tr.Addr()}); err != nil {
			t.Fatal(err)
		}
		within(t, 3*time.Second, "ghost's records reach the new replica", func() bool {
			return instances(late.cat, "ghostly") == "ghost/ghost-svc=passing"
		})
		grace := late.g.unknownGrace
		if grace != 30*time.Second {
			t.Errorf("default grace %s, want 30s (three LAN push-pull intervals)", grace)
		}
		took := within(t, grace+grace/unknownSweepsPerGrace+time.Second, "ghost dropped on the new replica",
			func() bool { return liveness(late, "ghost") == catalog.LivenessLeft })
		if took < grace-time.Second {
			t.Errorf("ghost dropped after %s, before the %s grace", took, grace)
		}
		if got := instances(late.cat, "ghostly"); got != "" {
			t.Errorf("ghost's instance on the new replica after the grace: %q, want none", got)
		}
		// Anti-entropy does not bring it back: every replica dropped it.
		pass(grace)
		for _, nd := range c.nodes {
			if got := instances(nd.cat, "ghostly"); got != "" {
				t.Errorf("%s holds ghost's instance %q after two grace periods", nd.name, got)
			}
		}
		for _, nd := range c.nodes {
			if l := liveness(nd, "mdns:eth0"); l != catalog.LivenessAlive {
				t.Errorf("%s: external origin is %s, want alive (no failure detector speaks for it)", nd.name, l)
			}
			for _, peer := range c.nodes {
				if l := liveness(nd, peer.name); l != catalog.LivenessAlive {
					t.Errorf("%s sees member %s %s", nd.name, peer.name, l)
				}
			}
		}
	})
}

// TestUnknownOriginAliveOnceReported: a node whose records arrived before memberlist
// reported it, and which was therefore dropped, is alive as soon as it joins.
func TestUnknownOriginAliveOnceReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, nil)
		defer c.shutdown()
		holdGhost(t, c.nodes[0], "later")
		within(t, time.Minute, "unreported node dropped", func() bool {
			return liveness(c.nodes[0], "later") == catalog.LivenessLeft
		})
		later := c.start("later", nil)
		c.nodes = append(c.nodes, later)
		if _, err := later.g.Join(context.Background(), []string{c.nodes[0].tr.Addr()}); err != nil {
			t.Fatal(err)
		}
		within(t, 5*time.Second, "the node is alive everywhere once it joined", func() bool {
			for _, nd := range c.nodes {
				if liveness(nd, "later") != catalog.LivenessAlive {
					return false
				}
			}
			return true
		})
		// And it stays alive: the sweep leaves reported members alone.
		pass(2 * later.g.unknownGrace)
		for _, nd := range c.nodes {
			if l := liveness(nd, "later"); l != catalog.LivenessAlive {
				t.Errorf("%s sees the joined node %s after two grace periods", nd.name, l)
			}
		}
	})
}

// TestUnknownOriginGraceConfig: the grace is configurable.
func TestUnknownOriginGraceConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, func(cfg *Config) { cfg.UnknownOriginGrace = 5 * time.Second })
		defer c.shutdown()
		holdGhost(t, c.nodes[0], "ghost")
		took := within(t, 10*time.Second, "ghost dropped", func() bool {
			return liveness(c.nodes[0], "ghost") == catalog.LivenessLeft
		})
		if took < 4*time.Second {
			t.Errorf("dropped after %s, before the 5s grace", took)
		}
	})
}
