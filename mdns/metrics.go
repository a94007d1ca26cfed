package mdns

import "github.com/prometheus/client_golang/prometheus"

// metrics are the adapter's Prometheus metrics, registered on Config.Registerer.
type metrics struct {
	received, malformed, dropped, sent  prometheus.Counter
	sentBytes                           prometheus.Counter
	responses, responseBytes, conflicts prometheus.Counter
	joins                               *prometheus.CounterVec
	announced, imported                 prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received:      prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_packets_received_total", Help: "mDNS packets received on the interfaces in use."}),
		malformed:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_packets_malformed_total", Help: "mDNS packets dropped as malformed."}),
		dropped:       prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_packets_dropped_total", Help: "mDNS packets dropped because the querier was behind."}),
		sent:          prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_queries_sent_total", Help: "mDNS query packets sent."}),
		sentBytes:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_query_bytes_sent_total", Help: "Bytes of mDNS queries sent."}),
		responses:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_responses_sent_total", Help: "mDNS packets sent by the responder (probes, announcements, answers, goodbyes)."}),
		responseBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_response_bytes_sent_total", Help: "Bytes of the packets sent by the responder."}),
		conflicts:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_name_conflicts_total", Help: "Conflicts for the names this agent claims (RFC 6762 §9), each a rename or a new probe."}),
		joins:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_mdns_joins_total", Help: "Joins tried with peers found by mDNS, by result."}, []string{"result"}),
		announced:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "rumor_mdns_announced_instances", Help: "DNS-SD instances this agent announces."}),
		imported:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "rumor_mdns_imported_instances", Help: "LAN instances this agent imports into the catalog."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.malformed, m.dropped, m.sent, m.sentBytes, m.responses, m.responseBytes, m.conflicts, m.joins, m.announced, m.imported} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
