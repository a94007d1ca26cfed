package gossip

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// pushPullEvery sets memberlist's push-pull interval in a test cluster.
func pushPullEvery(d time.Duration) func(*Config) {
	return func(cfg *Config) {
		cfg.MemberlistHook = func(mc *memberlist.Config) { mc.PushPullInterval = d }
	}
}

func antiEntropy(nd *node, outcome string) float64 {
	return testutil.ToFloat64(nd.g.metrics.antiEntropy.WithLabelValues(outcome))
}

// TestPushPullCarriesOnlyTheHashInSync: a periodic push-pull carries the summary's
// 8-byte hash, a join the whole summary; in a pool whose catalogs agree, push-pulls
// go on (counted in_sync) and nothing more is sent: no summary, no digest.
func TestPushPullCarriesOnlyTheHashInSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, pushPullEvery(2*time.Second))
		defer c.shutdown()
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		d := &delegate{g: c.nodes[0].g}
		if got, want := len(d.LocalState(false)), len(encodeStateHash("n00", 0)); got != want {
			t.Errorf("periodic push-pull state is %d bytes, want %d (the hash)", got, want)
		}
		if got, want := len(d.LocalState(true)), catalog.NumBuckets*8; got < want {
			t.Errorf("join push-pull state is %d bytes, want the summary (≥ %d)", got, want)
		}
		pass(10 * time.Second) // settle whatever the joins left
		var inSync, summaries, digests float64
		for _, nd := range c.nodes {
			inSync += antiEntropy(nd, "in_sync")
			summaries += antiEntropy(nd, "summary_sent")
			digests += antiEntropy(nd, "digest_sent")
		}
		pass(30 * time.Second)
		var inSync2, summaries2, digests2 float64
		for _, nd := range c.nodes {
			inSync2 += antiEntropy(nd, "in_sync")
			summaries2 += antiEntropy(nd, "summary_sent")
			digests2 += antiEntropy(nd, "digest_sent")
		}
		if inSync2-inSync < 10 {
			t.Errorf("%v push-pulls found the catalogs in sync in 30 s, want ≥ 10 (one per node per 2 s at least)", inSync2-inSync)
		}
		if summaries2 != summaries || digests2 != digests {
			t.Errorf("in sync, the pool sent %v summaries and %v digests", summaries2-summaries, digests2-digests)
		}
	})
}

// TestPushPullRepairsBothWays: records no broadcast carries (applied to one catalog
// only) reach the other node through periodic push-pull alone, in both directions:
// the hashes differ, each side sends its summary, each pulls what it lacks.
func TestPushPullRepairsBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, func(cfg *Config) {
			pushPullEvery(5 * time.Second)(cfg)
			cfg.Eager.Disabled = true
		})
		defer c.shutdown()
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		for _, nd := range c.nodes {
			if _, err := nd.cat.Apply(nd.w.PutService(catalogtest.Service("only-"+nd.name, "x", 1))); err != nil {
				t.Fatal(err)
			}
		}
		within(t, 30*time.Second, "both records on both nodes by push-pull", allSee(c.nodes, "x", "n00/only-n00=passing,n01/only-n01=passing"))
		for _, nd := range c.nodes {
			if antiEntropy(nd, "summary_sent") == 0 {
				t.Errorf("%s never sent its summary after a hash that differed", nd.name)
			}
		}
	})
}

// TestPushPullAnswersAnOlderAgentsSummary: an agent before msgStateHash sends its
// whole summary in every push-pull and cannot read our hash; a node receiving such a
// summary that differs from its own answers with its summary, so the older agent
// still pulls what it lacks.
func TestPushPullAnswersAnOlderAgentsSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, pushPullEvery(time.Hour)) // no periodic push-pull here
		defer c.shutdown()
		within(t, 30*time.Second, "initial convergence", converged(c.nodes))
		n0, n1 := c.nodes[0], c.nodes[1]
		if _, err := n0.cat.Apply(n0.w.PutService(catalogtest.Service("only-n00", "x", 1))); err != nil {
			t.Fatal(err)
		}
		// What n01 would send in a push-pull if it were an older agent.
		s := n1.cat.Summary()
		n0.g.deliver(inboxMsg{data: encodeState("n01", &s), pushPull: true})
		within(t, 10*time.Second, "n01 pulls the record n00 answered with its summary", allSee(c.nodes, "x", "n00/only-n00=passing"))
		// The same summary over the reliable path (an answer, not a push-pull) is not
		// answered: two new agents never bounce summaries.
		before := antiEntropy(n1, "digest_sent")
		if _, err := n1.cat.Apply(n1.w.PutService(catalogtest.Service("only-n01", "y", 1))); err != nil {
			t.Fatal(err)
		}
		s = n1.cat.Summary()
		n0.g.deliver(inboxMsg{data: encodeState("n01", &s)})
		within(t, 10*time.Second, "n00 pulls n01's record", allSee(c.nodes[:1], "y", "n01/only-n01=passing"))
		pass(5 * time.Second)
		if got := antiEntropy(n1, "digest_sent"); got != before {
			t.Errorf("n01 sent %v digests after n00 got its summary over the reliable path, want none", got-before)
		}
	})
}
