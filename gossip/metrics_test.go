package gossip

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// family returns the metric family called name in reg, or nil.
func family(t *testing.T, reg prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// counterSum adds up every series of a counter family (0 if absent).
func counterSum(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	var sum float64
	if mf := family(t, reg, name); mf != nil {
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// Each node's memberlist metrics, which memberlist reports through go-metrics'
// process-wide global, land on that node's own registry, without the routing label.
func TestMemberlistMetricsReachEachNodesOwnRegistry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		regs := map[string]*prometheus.Registry{}
		c := newTestCluster(t, 3, func(cfg *Config) {
			reg := prometheus.NewRegistry()
			mu.Lock()
			regs[cfg.NodeName] = reg
			mu.Unlock()
			cfg.Registerer = reg
		})
		within(t, 30*time.Second, "converged", converged(c.nodes))
		pass(5 * time.Second) // a few probe rounds

		for _, nd := range c.nodes {
			reg := regs[nd.name]
			mf := family(t, reg, "rumor_memberlist_udp_sent")
			if mf == nil {
				t.Fatalf("%s: no rumor_memberlist_udp_sent on its registry", nd.name)
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == routeLabel {
						t.Errorf("%s: routing label leaked into %s", nd.name, mf.GetName())
					}
				}
			}
			if family(t, reg, "rumor_memberlist_probeNode") == nil {
				t.Errorf("%s: no rumor_memberlist_probeNode summary", nd.name)
			}
			// gossip's own series are there too.
			mem := family(t, reg, "rumor_gossip_members")
			if mem == nil {
				t.Fatalf("%s: no rumor_gossip_members", nd.name)
			}
			for _, m := range mem.GetMetric() {
				if m.GetLabel()[0].GetValue() == "alive" && m.GetGauge().GetValue() != 3 {
					t.Errorf("%s: members{state=alive} = %v, want 3", nd.name, m.GetGauge().GetValue())
				}
			}
		}

		// After Shutdown a node's registry stops moving while the others go on.
		stopped := c.nodes[0]
		_ = stopped.g.Shutdown()
		c.net.SetDown(stopped.name, true)
		before := counterSum(t, regs[stopped.name], "rumor_memberlist_udp_sent")
		other := counterSum(t, regs[c.nodes[1].name], "rumor_memberlist_udp_sent")
		pass(5 * time.Second)
		if got := counterSum(t, regs[stopped.name], "rumor_memberlist_udp_sent"); got != before {
			t.Errorf("stopped node's udp_sent moved from %v to %v", before, got)
		}
		if got := counterSum(t, regs[c.nodes[1].name], "rumor_memberlist_udp_sent"); got <= other {
			t.Errorf("running node's udp_sent did not move (%v → %v)", other, got)
		}
		c.shutdown()
	})
}
