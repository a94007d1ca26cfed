package dnsserver

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series:
//
//	rumor_dns_queries_total{qtype,rcode}        queries answered (rcode "dropped": not answered)
//	rumor_dns_request_duration_seconds          from read to answer written
//	rumor_dns_shed_total{reason}                queries dropped unanswered: queue_full, too_old, forwards
//	rumor_dns_tcp_connections_refused_total     TCP connections past MaxTCPConns
//	rumor_dns_unreachable_instances_total       instances put last or left out as unreachable from here
type metrics struct {
	queries     *prometheus.CounterVec
	duration    prometheus.Histogram
	shed        *prometheus.CounterVec
	tcpRefused  prometheus.Counter
	unreachable prometheus.Counter

	fast map[[2]int]prometheus.Counter // (qtype, rcode) → counter, for the common pairs

	// answered counts answered queries without a registry (Server.Answered), for
	// readers such as the web UI's rate of queries.
	answered atomic.Uint64
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_dns_queries_total",
			Help: "DNS queries by query type and response code (\"dropped\": no answer sent)."}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rumor_dns_request_duration_seconds",
			Help:    "Time from reading a DNS query to writing its answer.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 250e-3, 1, 2.5}}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_dns_shed_total",
			Help: "DNS queries dropped unanswered by admission control, by reason (queue_full, too_old, forwards)."}, []string{"reason"}),
		tcpRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_dns_tcp_connections_refused_total",
			Help: "DNS TCP connections closed at once because MaxTCPConns were open."}),
		unreachable: prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_dns_unreachable_instances_total",
			Help: "Instances this host cannot reach that DNS answers put last (or left out, with OnlyReachable)."}),
		fast: map[[2]int]prometheus.Counter{},
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeANY, dns.TypePTR, dns.TypeSOA, dns.TypeNS} {
		for _, rc := range []int{dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeRefused, dns.RcodeServerFailure} {
			m.fast[[2]int{int(t), rc}] = m.queries.WithLabelValues(dns.TypeToString[t], dns.RcodeToString[rc])
		}
	}
	for _, r := range []string{"queue_full", "too_old", "forwards"} {
		m.shed.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.duration, m.shed, m.tcpRefused, m.unreachable} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, errors.New("dnsserver: metrics already registered: one DNS server per registry")
				}
				return nil, err
			}
		}
	}
	return m, nil
}

// observe counts one query; rcode -1 means dropped.
func (m *metrics) observe(qtype uint16, rcode int, since time.Time) {
	if rcode < 0 {
		m.queries.WithLabelValues("", "dropped").Inc()
		return
	}
	m.answered.Add(1)
	m.duration.Observe(time.Since(since).Seconds())
	if c, ok := m.fast[[2]int{int(qtype), rcode}]; ok {
		c.Inc()
		return
	}
	t, ok := dns.TypeToString[qtype]
	if !ok {
		t = "other"
	}
	rc, ok := dns.RcodeToString[rcode]
	if !ok {
		rc = "other"
	}
	m.queries.WithLabelValues(t, rc).Inc()
}
