package gossip

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// metrics are gossip's Prometheus series, registered on Config.Registerer.
type metrics struct {
	received, sent, sendFailed      *prometheus.CounterVec // messages by type
	receivedBytes, sentBytes        *prometheus.CounterVec // bytes by type
	dropped                         *prometheus.CounterVec // dropped messages by reason
	antiEntropy                     *prometheus.CounterVec // push-pull outcomes
	memberEvents                    *prometheus.CounterVec // liveness changes by new state
	members                         *prometheus.GaugeVec   // members by state
	recordsApplied, recordsRepaired prometheus.Counter
	broadcastsQueued, pushPull      prometheus.Counter
	reconnects, conflicts           prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "rumor", "gossip"
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		received:         cv("messages_received_total", "Gossip messages received, by type.", "type"),
		sent:             cv("messages_sent_total", "Gossip messages sent over the reliable path, by type.", "type"),
		sendFailed:       cv("messages_send_failed_total", "Reliable sends that failed, by type.", "type"),
		receivedBytes:    cv("received_bytes_total", "Bytes of gossip messages received, by type.", "type"),
		sentBytes:        cv("sent_bytes_total", "Bytes of gossip messages sent over the reliable path, by type.", "type"),
		dropped:          cv("messages_dropped_total", "Messages dropped: malformed, invalid, undecryptable, unknown sender, inbox full.", "reason"),
		antiEntropy:      cv("anti_entropy_total", "Push-pull summaries compared, by outcome.", "outcome"),
		memberEvents:     cv("member_events_total", "Membership changes seen, by new state.", "state"),
		members:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "members", Help: "Members known, by state."}, []string{"state"}),
		recordsApplied:   c("records_applied_total", "Records from the network that changed the catalog."),
		recordsRepaired:  c("records_repaired_total", "Records sent to peers by anti-entropy."),
		broadcastsQueued: c("broadcasts_queued_total", "Records queued for the fast path."),
		pushPull:         c("push_pull_total", "Push-pull exchanges (local state sent)."),
		reconnects:       c("reconnect_attempts_total", "Attempts to reach failed members again."),
		conflicts:        c("name_conflicts_total", "Node name conflicts seen."),
	}
	for _, col := range []prometheus.Collector{m.received, m.sent, m.sendFailed, m.receivedBytes, m.sentBytes,
		m.dropped, m.antiEntropy, m.memberEvents, m.members, m.recordsApplied, m.recordsRepaired,
		m.broadcastsQueued, m.pushPull, m.reconnects, m.conflicts} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("gossip: register metrics: %w", err)
		}
	}
	return m, nil
}

// updateGauges refreshes the members-by-state gauge.
func (g *Gossip) updateGauges() {
	counts := map[catalog.Liveness]int{}
	g.mu.Lock()
	for _, ms := range g.members {
		counts[ms.state]++
	}
	g.mu.Unlock()
	for _, st := range []catalog.Liveness{catalog.LivenessAlive, catalog.LivenessSuspect, catalog.LivenessFailed, catalog.LivenessLeft} {
		g.metrics.members.WithLabelValues(st.String()).Set(float64(counts[st]))
	}
}
