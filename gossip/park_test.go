package gossip

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// counterValue reads one series of g's metrics by name and label value.
func counterValue(t *testing.T, g *Gossip, name, label string) float64 {
	t.Helper()
	mfs, err := g.cfg.Registerer.(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func parkedCount(g *Gossip, sender string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.parked[sender])
}

// TestDigestBeforeSenderIsReportedIsParked replays the join race deterministically: a
// joiner's digest reaches a node before memberlist there has reported the joiner
// (memberlist answers a push-pull before merging it). The digest is parked, not
// dropped, and answered with the records the joiner lacks once the joiner is reported.
func TestDigestBeforeSenderIsReportedIsParked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, nil)
		defer c.shutdown()
		n0 := c.nodes[0]
		holdGhost(t, n0, "ghost")
		late := c.start("late", nil) // running, but n0 has not heard of it
		c.nodes = append(c.nodes, late)

		ours, theirs := n0.cat.Summary(), late.cat.Summary()
		d := late.cat.Digest(ours.Diff(&theirs))
		n0.g.deliver(inboxMsg{data: encodeDigest("late", &d)})
		synctest.Wait()
		if got := parkedCount(n0.g, "late"); got != 1 {
			t.Fatalf("%d messages parked for the unreported sender, want 1", got)
		}
		if got := counterValue(t, n0.g, "rumor_gossip_messages_dropped_total", "unknown_sender"); got != 0 {
			t.Errorf("%v messages dropped as from an unknown sender, want 0", got)
		}
		if got := instances(late.cat, "ghostly"); got != "" {
			t.Fatalf("joiner has %q before its digest was answered", got)
		}

		// memberlist reports the joiner (NotifyJoin): the parked digest is answered.
		n0.g.setLiveness("late", netip.MustParseAddrPort(late.tr.Addr()), catalog.LivenessAlive)
		within(t, time.Second, "joiner receives what its digest asked for", func() bool {
			return instances(late.cat, "ghostly") == "ghost/ghost-svc=passing"
		})
		if got := parkedCount(n0.g, "late"); got != 0 {
			t.Errorf("%d messages still parked after the sender was reported", got)
		}
		if got := counterValue(t, n0.g, "rumor_gossip_messages_received_total", "digest"); got != 1 {
			t.Errorf("digest counted %v times as received, want once", got)
		}
	})
}

// TestParkedMessagesExpire: a sender never reported has its parked messages dropped
// and counted after parkTimeout, and each sender's share of the park is bounded.
func TestParkedMessagesExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, nil)
		defer c.shutdown()
		g := c.nodes[0].g
		s := catalog.Summary{}
		for range parkPerSender + 2 {
			g.deliver(inboxMsg{data: encodeState("stranger", &s)})
		}
		synctest.Wait()
		if got := parkedCount(g, "stranger"); got != parkPerSender {
			t.Errorf("%d messages parked for one sender, want the cap %d", got, parkPerSender)
		}
		dropped := func() float64 { return counterValue(t, g, "rumor_gossip_messages_dropped_total", "unknown_sender") }
		if got := dropped(); got != 2 {
			t.Errorf("%v dropped beyond the cap, want 2", got)
		}
		pass(parkTimeout + time.Second)
		if got := parkedCount(g, "stranger"); got != 0 {
			t.Errorf("%d messages still parked after %s", got, parkTimeout)
		}
		if got := dropped(); got != 2+parkPerSender {
			t.Errorf("%v dropped in all, want %d", got, 2+parkPerSender)
		}
	})
}
