package mdns

import "github.com/prometheus/client_golang/prometheus"

// metrics are the adapter's Prometheus metrics, registered on Config.Registerer.
type metrics struct {
	received, malformed, dropped, sent prometheus.Counter
	sentBytes                          prometheus.Counter
	joins                              *prometheus.CounterVec
	announced, imported                prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received:  prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_packets_received_total", Help: "mDNS packets received on the interfaces in use."}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_packets_malformed_total", Help: "mDNS packets dropped as malformed."}),
		dropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_packets_dropped_total", Help: "mDNS packets dropped because the querier was behind."}),
		sent:      prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_queries_sent_total", Help: "mDNS query packets sent."}),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_mdns_query_bytes_sent_total", Help: "Bytes of mDNS queries sent."}),
		joins:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_mdns_joins_total", Help: "Joins tried with peers found by mDNS, by result."}, []string{"result"}),
		announced: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rumor_mdns_announced_instances", Help: "DNS-SD instances this agent announces."}),
		imported:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "rumor_mdns_imported_instances", Help: "LAN instances this agent imports into the catalog."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.malformed, m.dropped, m.sent, m.sentBytes, m.joins, m.announced, m.imported} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
