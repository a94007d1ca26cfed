package proxy

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// atomicSet holds an upstream's current set.
type atomicSet = atomic.Pointer[set]

// metrics are the proxy's Prometheus metrics, per upstream and instance.
type metrics struct {
	conns, fails, ejections, noBackend *prometheus.CounterVec
	bytes                              *prometheus.CounterVec
	active                             *prometheus.GaugeVec
	rebuild                            prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	lbl := []string{"upstream", "instance"}
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_proxy_connections_total",
			Help: "Connections forwarded by the local proxy, by upstream and instance."}, lbl),
		fails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_proxy_connect_failures_total",
			Help: "Failed connects to an instance, by upstream and instance."}, lbl),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_proxy_ejections_total",
			Help: "Outlier ejections, by upstream and instance."}, lbl),
		noBackend: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_proxy_no_instance_total",
			Help: "Client connections closed because no instance could be reached, by upstream."}, []string{"upstream"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rumor_proxy_bytes_total",
			Help: "Bytes forwarded, by upstream, instance and direction (up: to the instance)."}, append(lbl, "direction")),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rumor_proxy_active_connections",
			Help: "Open forwarded connections, by upstream and instance."}, lbl),
		rebuild: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rumor_proxy_rebuild_seconds",
			Help: "Time to rebuild an upstream's instance set after a catalog change.", Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.conns, m.fails, m.ejections, m.noBackend, m.bytes, m.active, m.rebuild} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// forInstance resolves an instance's metrics once, so a connection does no label lookup.
func (m *metrics) forInstance(upstream, instance string) backendMetrics {
	return backendMetrics{
		conns:     m.conns.WithLabelValues(upstream, instance),
		fails:     m.fails.WithLabelValues(upstream, instance),
		ejections: m.ejections.WithLabelValues(upstream, instance),
		bytesUp:   m.bytes.WithLabelValues(upstream, instance, "up"),
		bytesDown: m.bytes.WithLabelValues(upstream, instance, "down"),
		active:    m.active.WithLabelValues(upstream, instance),
	}
}
