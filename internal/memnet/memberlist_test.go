package memnet_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/internal/memnet"
)

// These tests run real memberlist clusters on the simulated network inside
// synctest bubbles: memberlist's seconds-long probe intervals and suspicion
// timeouts pass in fake time, and the whole test takes milliseconds of real
// time. memberlist's randomness (probe order, gossip targets, stagger) comes
// from the global math/rand, so runs differ: assertions are bounds.

// cluster is a set of memberlist nodes on one network.
type cluster struct {
	t     *testing.T
	net   *memnet.Network
	nodes []*node
}

type node struct {
	name string
	tr   *memnet.Transport
	ml   *memberlist.Memberlist
}

// newCluster starts n memberlist nodes ("n0", "n1", …) with memberlist's LAN
// defaults, each joined to every earlier node, and waits until all see all.
// It must be called inside a synctest bubble.
// Its cleanup shuts every node down and then lets bubble time pass, because
// memberlist.Shutdown returns without waiting for probes and stream handlers
// in flight, and time stops for them once the bubble's root goroutine exits.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, net: memnet.NewNetwork(memnet.Config{Seed: 1})}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if err := nd.ml.Shutdown(); err != nil {
				t.Errorf("shutdown %s: %v", nd.name, err)
			}
		}
		// Longer than anything memberlist waits for after Shutdown: a
		// stream handler's TCPTimeout (10 s) is the longest.
		time.Sleep(time.Minute)
		synctest.Wait()
	})
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		tr := c.net.NewTransport(name)
		cfg := memberlist.DefaultLANConfig()
		cfg.Name = name
		cfg.Transport = tr
		// Bind and advertise the fake address, so memberlist's view of
		// itself and its join defaults agree with the network.
		cfg.BindAddr, cfg.BindPort = tr.IP(), tr.Port()
		cfg.AdvertiseAddr, cfg.AdvertisePort = tr.IP(), tr.Port()
		cfg.LogOutput = &testLogWriter{t: t}
		ml, err := memberlist.Create(cfg)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		// Each node joins every earlier one rather than only n0. All joins
		// happen at the same bubble instant, and n0 merges a joiner's state
		// only after replying to it, so a later joiner may get a reply that
		// lacks the earlier ones; the alive broadcasts that would tell it
		// have then spent their few retransmits on the others, and only
		// the next push/pull (PushPullInterval, 30 s) would repair it.
		// Joining everyone makes every pair exchange state directly.
		var seeds []string
		for _, prev := range c.nodes {
			seeds = append(seeds, prev.tr.Addr())
		}
		c.nodes = append(c.nodes, &node{name: name, tr: tr, ml: ml})
		if len(seeds) > 0 {
			if joined, err := ml.Join(seeds); err != nil || joined != len(seeds) {
				t.Fatalf("%s join %v: joined %d, %v", name, seeds, joined, err)
			}
		}
	}
	all := c.names(c.nodes...)
	c.waitFor("every node sees all members", 10*time.Second, func() bool {
		return c.everyoneSees(c.nodes, all)
	})
	return c
}

// names returns the sorted names of nodes.
func (c *cluster) names(nodes ...*node) []string {
	var names []string
	for _, nd := range nodes {
		names = append(names, nd.name)
	}
	slices.Sort(names)
	return names
}

// alive returns the sorted names of the members nd considers alive or
// suspect, that is, not dead or left.
func alive(nd *node) []string {
	var names []string
	for _, m := range nd.ml.Members() {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}

// everyoneSees reports whether every observer sees exactly want as members.
func (c *cluster) everyoneSees(observers []*node, want []string) bool {
	for _, nd := range observers {
		if !slices.Equal(alive(nd), want) {
			return false
		}
	}
	return true
}

// waitFor polls cond every 100 ms of bubble time until it holds, and fails
// the test if it does not within limit. It returns the bubble time it waited.
// Sleeping is how a bubble lets time pass; it is not used to synchronize.
func (c *cluster) waitFor(what string, limit time.Duration, cond func() bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			for _, nd := range c.nodes {
				c.t.Logf("%s sees %v", nd.name, alive(nd))
			}
			c.t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// suspicionTimeout is memberlist's minimum suspicion timeout for a cluster of
// n nodes (memberlist's suspicionTimeout in util.go, documented on
// Config.SuspicionMult): SuspicionMult × max(1, log10(n)) × ProbeInterval.
// With Lifeguard the timer starts at SuspicionMaxTimeoutMult times this and
// falls to it as other nodes confirm the suspicion.
func suspicionTimeout(cfg *memberlist.Config, n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(cfg.SuspicionMult) * scale * float64(cfg.ProbeInterval))
}

func TestMemberlistDetectsCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5
		c := newCluster(t, n)
		crashed, others := c.nodes[n-1], c.nodes[:n-1]

		// A crash: the host vanishes from the network; its memberlist keeps
		// running, as a process on a partitioned host would.
		c.net.SetDown(crashed.name, true)

		// Four observers each probe the crashed node within a few probe
		// intervals, so Lifeguard gets its confirmations and the timeout
		// falls to its minimum; three times that is ample.
		bound := 3 * suspicionTimeout(memberlist.DefaultLANConfig(), n)
		took := c.waitFor("every other node sees the crashed node dead", bound, func() bool {
			return c.everyoneSees(others, c.names(others...))
		})
		t.Logf("crash detected by all %d observers after %v of bubble time (bound %v)", len(others), took, bound)

		if s := crashed.tr.Stats(); s.Dropped.Down == 0 {
			t.Errorf("crashed node's stats %+v: no packets dropped as down", s)
		}
	})
}

func TestMemberlistPartitionAndHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5
		c := newCluster(t, n)
		sideA, sideB := c.nodes[:2], c.nodes[2:]
		namesA, namesB := c.names(sideA...), c.names(sideB...)
		c.net.Partition(namesA, namesB)

		// Lifeguard makes this slower than a crash. The two-node side has
		// at most one peer to confirm a suspicion, so its timers stay near
		// their maximum (SuspicionMaxTimeoutMult × the minimum); and indirect
		// probes through nodes across the partition never return a nack, so
		// local health degrades and probe intervals stretch by up to
		// AwarenessMaxMultiplier. Allow the maximum timeout plus a round of
		// probes at the most stretched interval.
		cfg := memberlist.DefaultLANConfig()
		bound := time.Duration(cfg.SuspicionMaxTimeoutMult)*suspicionTimeout(cfg, n) +
			time.Duration(n*cfg.AwarenessMaxMultiplier)*cfg.ProbeInterval
		took := c.waitFor("each side sees the other as failed", bound, func() bool {
			return c.everyoneSees(sideA, namesA) && c.everyoneSees(sideB, namesB)
		})
		t.Logf("partition detected on both sides after %v of bubble time (bound %v)", took, bound)
		if s := c.net.Stats(); s.Dropped.Partition == 0 || s.DialsFailed == 0 {
			t.Errorf("network stats %+v: want partition drops and failed dials", s)
		}

		// memberlist does not probe dead nodes, so healing the network is
		// not enough by itself: one node joins across, as an operator or
		// serf's reconnect would.
		c.net.Heal()
		if _, err := sideA[0].ml.Join([]string{sideB[0].tr.Addr()}); err != nil {
			t.Fatalf("join across the healed partition: %v", err)
		}
		// The join's two nodes refute their deaths and gossip it, but a
		// broadcast is retransmitted only a few times, so a node may miss
		// it; the periodic push/pull, which every node runs once per
		// PushPullInterval with a random peer, then repairs its view. That
		// peer may not have heard either, so allow three rounds. (Usually
		// under a second; the slowest of 1,800 runs took 41 s.)
		all := c.names(c.nodes...)
		took = c.waitFor("all nodes see all members after the heal", 3*cfg.PushPullInterval, func() bool {
			return c.everyoneSees(c.nodes, all)
		})
		t.Logf("converged after %v of bubble time", took)
	})
}

// testLogWriter passes memberlist's log to t.Log, without its DEBUG lines,
// which would drown the rest. memberlist writes whole lines from many
// goroutines, hence the mutex.
type testLogWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testLogWriter) Write(b []byte) (int, error) {
	line := string(bytes.TrimRight(b, "\n"))
	if strings.Contains(line, "[DEBUG]") {
		return len(b), nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(line)
	return len(b), nil
}
