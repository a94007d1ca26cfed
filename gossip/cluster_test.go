package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/memnet"
)

// These tests run real memberlist clusters over memnet's in-memory network inside
// testing/synctest bubbles: memberlist's timers run on the bubble's fake clock, so a
// minute of protocol time costs milliseconds. Letting fake time pass (pass) is how a
// bubble moves forward, not a way to synchronise; conditions are checked with
// deadlines in fake time (within).

// wallClock reads time.Now, which inside a bubble is the bubble's fake clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// pass lets d of fake time pass inside a bubble.
func pass(d time.Duration) { <-time.After(d) }

// node is one simulated agent: a catalog, its writer, and gossip.
type node struct {
	name string
	cat  *catalog.Catalog
	w    *catalog.Writer
	g    *Gossip
	tr   *memnet.Transport
	dead bool
}

type testCluster struct {
	t     *testing.T
	net   *memnet.Network
	nodes []*node
	cfg   func(*Config)
}

// newTestCluster starts n nodes and joins each to every earlier one (all joining one
// node at the same fake instant can leave holes until the next push-pull).
func newTestCluster(t *testing.T, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	return newKeyedCluster(t, n, 1, nil, tweak)
}

// newKeyedCluster is newTestCluster on a network seeded with seed, every node
// encrypting with keys (none: plain text).
func newKeyedCluster(t *testing.T, n int, seed uint64, keys [][]byte, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: memnet.NewNetwork(memnet.Config{Seed: seed}), cfg: tweak}
	for i := range n {
		nd := c.start(fmt.Sprintf("n%02d", i), keys)
		if i > 0 {
			var addrs []string
			for _, prev := range c.nodes[:i] {
				addrs = append(addrs, prev.tr.Addr())
			}
			if _, err := nd.g.Join(context.Background(), addrs); err != nil {
				t.Fatalf("join %s: %v", nd.name, err)
			}
		}
		c.nodes = append(c.nodes, nd)
	}
	return c
}

// start creates one node (or restarts one with a fresh catalog) and publishes its
// node record.
func (c *testCluster) start(name string, keys [][]byte) *node {
	c.t.Helper()
	cat, err := catalog.New(catalog.Config{Clock: wallClock{}, ReapAfter: 30 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	tr := c.net.NewTransport(name)
	cfg := Config{NodeName: name, BindAddr: tr.IP(), BindPort: tr.Port(), Transport: tr, Store: cat,
		Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if c.cfg != nil {
		c.cfg(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	nd := &node{name: name, cat: cat, w: catalog.NewWriter(name, uint64(time.Now().UnixMilli())), g: g, tr: tr}
	nd.publish(nd.w.PutNode(catalogtest.Node(name, tr.IP())))
	return nd
}

// publish applies this node's own records locally and broadcasts them, as the agent does.
func (nd *node) publish(recs ...catalog.Record) {
	if _, err := nd.cat.Apply(recs...); err != nil {
		panic(err)
	}
	nd.g.Publish(recs)
}

// shutdown stops every node and lets in-flight probes finish inside the bubble.
func (c *testCluster) shutdown() {
	for _, nd := range c.nodes {
		_ = nd.g.Shutdown()
	}
	c.net.Close()
	pass(time.Minute)
	synctest.Wait()
}

func (c *testCluster) live() []*node {
	var out []*node
	for _, nd := range c.nodes {
		if !nd.dead {
			out = append(out, nd)
		}
	}
	return out
}

// within checks cond every 100ms of fake time until it holds or d has passed, and
// returns how long it took.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		pass(100 * time.Millisecond)
	}
	return time.Since(start)
}

// instances lists "origin/id=status" of a service on one node's catalog.
func instances(cat *catalog.Catalog, svc string) string {
	var parts []string
	for _, in := range cat.ServiceInstances(svc, catalog.Filter{}) {
		parts = append(parts, in.Node.Node.Name+"/"+in.Service.ID+"="+in.Status.String())
	}
	return strings.Join(parts, ",")
}

func allSee(nodes []*node, svc, want string) func() bool {
	return func() bool {
		for _, nd := range nodes {
			if instances(nd.cat, svc) != want {
				return false
			}
		}
		return true
	}
}

func converged(nodes []*node) func() bool {
	return func() bool {
		s0 := nodes[0].cat.Summary()
		for _, nd := range nodes[1:] {
			if nd.cat.Summary() != s0 {
				return false
			}
		}
		return true
	}
}

func TestRegistrationSpreadsAndDeregistrationDisappears(t *testing.T) {
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, n, nil)
				defer c.shutdown()
				within(t, 30*time.Second, "all nodes know each other", converged(c.nodes))

				src := c.nodes[n-1]
				src.publish(src.w.PutService(catalogtest.Service("web-1", "web", 80, "v1")))
				took := within(t, 5*time.Second, "registration visible on all", allSee(c.nodes, "web", src.name+"/web-1=passing"))
				t.Logf("%d nodes: registration visible on all after %s", n, took)

				src.publish(src.w.Delete(catalog.Key{Kind: catalog.KindService, ID: "web-1"}))
				within(t, 5*time.Second, "deregistration visible on all", allSee(c.nodes, "web", ""))
			})
		})
	}
}

func TestCrashedNodeGoesCriticalThenIsReaped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, nil)
		defer c.shutdown()
		victim := c.nodes[4]
		victim.publish(victim.w.PutService(catalogtest.Service("db-1", "db", 5432)))
		within(t, 10*time.Second, "registration visible", allSee(c.nodes, "db", "n04/db-1=passing"))
		checkLiveness(t, c.nodes[0].g, victim.name, catalog.LivenessAlive)

		// kill -9: the node stops answering without a goodbye.
		c.net.SetDown(victim.name, true)
		victim.dead = true
		// memberlist's suspicion timeout at 5 nodes is about 5 s; allow 3×.
		took := within(t, 20*time.Second, "crash seen as critical by all", allSee(c.live(), "db", "n04/db-1=critical"))
		t.Logf("crash seen by all after %s", took)
		for _, nd := range c.live() {
			if st, _ := nd.cat.Liveness(victim.name); st != catalog.LivenessFailed {
				t.Errorf("%s sees %s as %s, want failed", nd.name, victim.name, st)
			}
			checkLiveness(t, nd.g, victim.name, catalog.LivenessFailed)
		}
		// ReapAfter is 30 s in these tests; the agent calls Expire periodically.
		within(t, 40*time.Second, "reaped everywhere", func() bool {
			for _, nd := range c.live() {
				nd.cat.Expire()
			}
			return allSee(c.live(), "db", "")()
		})
	})
}

// checkLiveness checks Gossip.Liveness of name against want and against Members,
// and that a name never seen is not ok.
func checkLiveness(t *testing.T, g *Gossip, name string, want catalog.Liveness) {
	t.Helper()
	if st, ok := g.Liveness(name); !ok || st != want {
		t.Errorf("Liveness(%s) = %s, %v; want %s, true", name, st, ok, want)
	}
	for _, m := range g.Members() {
		if m.Name == name && m.State != want {
			t.Errorf("Members has %s %s, Liveness %s", name, m.State, want)
		}
	}
	if st, ok := g.Liveness("never-seen"); ok {
		t.Errorf("Liveness(never-seen) = %s, true; want false", st)
	}
}

func TestGracefulLeaveIsGoneAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 4, nil)
		defer c.shutdown()
		leaver := c.nodes[3]
		leaver.publish(leaver.w.PutService(catalogtest.Service("api-1", "api", 8080)))
		within(t, 10*time.Second, "registration visible", allSee(c.nodes, "api", "n03/api-1=passing"))

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := leaver.g.Leave(ctx); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		leaver.dead = true
		took := within(t, 2*time.Second, "gone at once after leave", allSee(c.live(), "api", ""))
		t.Logf("leave seen by all after %s", took)
		for _, nd := range c.live() {
			if st, _ := nd.cat.Liveness(leaver.name); st != catalog.LivenessLeft {
				t.Errorf("%s sees %s as %s, want left", nd.name, leaver.name, st)
			}
		}
	})
}

// TestLeaveIntentIsRelayed: a leave intent that reached one peer only (the direct
// sends to the others failed, as a TCP timeout under load does) still reaches every
// peer, relayed on the piggyback path, so all of them see the node left, not failed.
func TestLeaveIntentIsRelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 4, nil)
		defer c.shutdown()
		leaver := c.nodes[3]
		leaver.publish(leaver.w.PutService(catalogtest.Service("api-1", "api", 8080)))
		within(t, 10*time.Second, "registration visible", allSee(c.nodes, "api", "n03/api-1=passing"))

		// What Leave does, but the intent goes to n00 only and not on the leaver's
		// own piggyback: only n00's relay can tell n01 and n02.
		var first *memberlist.Node
		for _, m := range leaver.g.ml.Members() {
			if m.Name == c.nodes[0].name {
				first = m
			}
		}
		if err := leaver.g.ml.SendReliable(first, encodeLeave(leaver.name)); err != nil {
			t.Fatalf("send the intent to n00: %v", err)
		}
		if err := leaver.g.ml.Leave(time.Second); err != nil {
			t.Fatalf("memberlist leave: %v", err)
		}
		pass(leavePropagateDelay)
		if err := leaver.g.Shutdown(); err != nil {
			t.Fatal(err)
		}
		leaver.dead = true
		within(t, 5*time.Second, "left everywhere", func() bool {
			for _, nd := range c.live() {
				if st, _ := nd.cat.Liveness(leaver.name); st != catalog.LivenessLeft {
					return false
				}
			}
			return allSee(c.live(), "api", "")()
		})
	})
}

func TestPartitionHealsWithoutManualJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, nil)
		defer c.shutdown()
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		a := []string{"n00", "n01"}
		b := []string{"n02", "n03", "n04"}
		c.net.Partition(a, b)

		// Changes on both sides during the split.
		c.nodes[0].publish(c.nodes[0].w.PutService(catalogtest.Service("left-side", "left", 1)))
		c.nodes[4].publish(c.nodes[4].w.PutService(catalogtest.Service("right-side", "right", 2)))
		pass(40 * time.Second) // longer than the suspicion timeout: each side sees the other failed
		for _, nd := range c.nodes[:2] {
			if st, _ := nd.cat.Liveness("n04"); st != catalog.LivenessFailed {
				t.Fatalf("during the split %s sees n04 as %s, want failed", nd.name, st)
			}
		}

		c.net.Heal()
		defer func() {
			if t.Failed() {
				for _, nd := range c.nodes {
					var ls []string
					for _, other := range c.nodes {
						st, _ := nd.cat.Liveness(other.name)
						ls = append(ls, other.name+"="+st.String())
					}
					s := nd.cat.Summary()
					t.Logf("%s: %v summary %x", nd.name, ls, s.Hash())
				}
			}
		}()
		took := within(t, 5*time.Second, "catalogs equal after heal", func() bool {
			if !converged(c.nodes)() {
				return false
			}
			for _, nd := range c.nodes {
				for _, other := range c.nodes {
					if st, _ := nd.cat.Liveness(other.name); st != catalog.LivenessAlive {
						return false
					}
				}
			}
			return true
		})
		t.Logf("healed and converged %s after the heal", took)
		if got := instances(c.nodes[4].cat, "left"); got != "n00/left-side=passing" {
			t.Errorf("n04 sees left = %q after heal", got)
		}
	})
}

func TestNoFalseFailuresUnderLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, nil)
		defer c.shutdown()
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		c.net.SetDefaultLink(memnet.Link{Loss: 0.10})
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			pass(500 * time.Millisecond)
			for _, nd := range c.nodes {
				for _, other := range c.nodes {
					if st, _ := nd.cat.Liveness(other.name); st == catalog.LivenessFailed {
						t.Fatalf("%s declared %s failed under 10%% loss", nd.name, other.name)
					}
				}
			}
		}
	})
}

func TestLateJoinerGetsFullCatalog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		defer c.shutdown()
		for i, nd := range c.nodes {
			for j := range 20 {
				nd.publish(nd.w.PutService(catalogtest.Service(fmt.Sprintf("s%d-%d", i, j), "bulk", 1000+j)))
			}
		}
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		late := c.start("late", nil)
		c.nodes = append(c.nodes, late)
		if _, err := late.g.Join(context.Background(), []string{c.nodes[0].tr.Addr()}); err != nil {
			t.Fatal(err)
		}
		// The full catalog arrives in the join's push-pull, not over minutes of gossip.
		// The joiner and the node it joined swap everything in that first exchange; the
		// other nodes learn of the joiner by gossip (tested elsewhere).
		defer func() {
			if t.Failed() {
				for _, nd := range []*node{c.nodes[0], late} {
					t.Logf("%s: bulk=%d nodes=%d members=%v", nd.name, len(nd.cat.ServiceInstances("bulk", catalog.Filter{})), len(nd.cat.Nodes(catalog.Filter{})), nd.g.Members())
				}
			}
		}()
		took := within(t, 3*time.Second, "late joiner has everything", converged([]*node{c.nodes[0], late}))
		t.Logf("late joiner converged after %s", took)
		if got := len(late.cat.ServiceInstances("bulk", catalog.Filter{})); got != 60 {
			t.Fatalf("late joiner sees %d bulk instances, want 60", got)
		}
	})
}

func TestAntiEntropyRepairsLostBroadcasts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, func(cfg *Config) {
			cfg.MemberlistHook = func(mc *memberlist.Config) { mc.PushPullInterval = 5 * time.Second }
		})
		defer c.shutdown()
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		// n02 misses every gossip packet for a while (streams still work), so the fast
		// path cannot reach it; only push-pull can.
		c.net.SetLink("n00", "n02", memnet.Link{Loss: 1})
		c.net.SetLink("n01", "n02", memnet.Link{Loss: 1})
		c.nodes[0].publish(c.nodes[0].w.PutService(catalogtest.Service("x", "x", 1)))
		pass(time.Second)
		c.net.ClearLink("n00", "n02")
		c.net.ClearLink("n01", "n02")
		within(t, 30*time.Second, "repaired by anti-entropy", allSee(c.nodes, "x", "n00/x=passing"))
	})
}

func TestLargeRecordTravelsReliably(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 4, nil)
		defer c.shutdown()
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		s := catalogtest.Service("big", "big", 1)
		s.Meta = map[string]string{}
		for i := range 10 {
			s.Meta[fmt.Sprintf("k%d", i)] = strings.Repeat("v", 400)
		}
		rec := c.nodes[0].w.PutService(s)
		if n := len(encodeRecords([]catalog.Record{rec})); n <= maxBroadcastSize {
			t.Fatalf("test record is only %d bytes", n)
		}
		c.nodes[0].publish(rec)
		within(t, 3*time.Second, "large record everywhere", allSee(c.nodes, "big", "n00/big=passing"))
	})
}

func TestWrongKeyCannotJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key1 := bytes.Repeat([]byte{1}, 32)
		key2 := bytes.Repeat([]byte{2}, 32)
		c := &testCluster{t: t, net: memnet.NewNetwork(memnet.Config{Seed: 2})}
		a := c.start("a", [][]byte{key1})
		b := c.start("b", [][]byte{key2})
		plain := c.start("plain", nil)
		c.nodes = []*node{a, b, plain}
		defer c.shutdown()

		for _, joiner := range []*node{b, plain} {
			_, err := joiner.g.Join(context.Background(), []string{a.tr.Addr()})
			if err == nil {
				t.Fatalf("%s joined a pool with another key", joiner.name)
			}
			if !strings.Contains(err.Error(), "--encrypt") {
				t.Errorf("join error %q does not say what to do", err)
			}
		}
		// A node whose keyring holds the pool's key (as its primary, beside a second key
		// being rolled out) joins fine.
		a3 := c.start("a3", [][]byte{key1, key2})
		c.nodes = append(c.nodes, a3)
		if _, err := a3.g.Join(context.Background(), []string{a.tr.Addr()}); err != nil {
			t.Fatalf("join with the shared key as primary: %v", err)
		}
		within(t, 10*time.Second, "keyed pair converged", converged([]*node{a, a3}))
	})
}

func TestKeyRotationWithoutRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key1 := bytes.Repeat([]byte{1}, 32)
		key2 := bytes.Repeat([]byte{2}, 16)
		c := &testCluster{t: t, net: memnet.NewNetwork(memnet.Config{Seed: 3})}
		a, b := c.start("a", [][]byte{key1}), c.start("b", [][]byte{key1})
		c.nodes = []*node{a, b}
		defer c.shutdown()
		if _, err := b.g.Join(context.Background(), []string{a.tr.Addr()}); err != nil {
			t.Fatal(err)
		}
		// Install everywhere, use everywhere, then remove the old key everywhere.
		for _, step := range []func(*Gossip) error{
			func(g *Gossip) error { return g.InstallKey(key2) },
			func(g *Gossip) error { return g.UseKey(key2) },
			func(g *Gossip) error { return g.RemoveKey(key1) },
		} {
			for _, nd := range c.nodes {
				if err := step(nd.g); err != nil {
					t.Fatal(err)
				}
			}
		}
		primary, all, err := a.g.Keys()
		if err != nil || !bytes.Equal(primary, key2) || len(all) != 1 {
			t.Fatalf("Keys() = %x, %d keys, %v; want key2 alone", primary, len(all), err)
		}
		// The pool still works, and only a node with the new key can join it.
		a.publish(a.w.PutService(catalogtest.Service("web", "web", 80)))
		within(t, 5*time.Second, "b sees a's service after rotation", allSee([]*node{b}, "web", "a/web=passing"))
		old := c.start("old", [][]byte{key1})
		fresh := c.start("fresh", [][]byte{key2})
		c.nodes = append(c.nodes, old, fresh)
		if _, err := old.g.Join(context.Background(), []string{a.tr.Addr()}); err == nil {
			t.Error("a node with the removed key joined")
		}
		if _, err := fresh.g.Join(context.Background(), []string{a.tr.Addr()}); err != nil {
			t.Errorf("a node with the new key could not join: %v", err)
		}
		// Bad keys and a node without encryption get clear errors.
		if err := a.g.InstallKey([]byte("short")); err == nil || !strings.Contains(err.Error(), "want 16, 24 or 32") {
			t.Errorf("InstallKey(short) = %v", err)
		}
		if err := a.g.RemoveKey(key2); err == nil {
			t.Error("removing the primary key succeeded")
		}
		plain := c.start("plain", nil)
		c.nodes = append(c.nodes, plain)
		if err := plain.g.InstallKey(key2); !errors.Is(err, ErrNoEncryption) {
			t.Errorf("InstallKey without encryption = %v, want ErrNoEncryption", err)
		}
	})
}
