package health

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// metrics are the Manager's Prometheus series, registered on Config.Registerer.
type metrics struct {
	runs     *prometheus.CounterVec   // probe results and ttl heartbeats, by type and status
	duration *prometheus.HistogramVec // probe durations, by type
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rumor", Subsystem: "health", Name: "check_runs_total",
			Help: "Check results: probes run (before anti-flapping thresholds) and ttl heartbeats received, by check type and status.",
		}, []string{"type", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "rumor", Subsystem: "health", Name: "check_duration_seconds",
			Help:    "How long probes took, by check type.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30},
		}, []string{"type"}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("health: register metrics: %w", err)
		}
	}
	return m, nil
}

// probed counts one probe of a check of type typ that took the given time.
func (m *metrics) probed(typ string, status catalog.Status, took time.Duration) {
	m.runs.WithLabelValues(typ, status.String()).Inc()
	m.duration.WithLabelValues(typ).Observe(took.Seconds())
}

// heartbeat counts one ttl heartbeat.
func (m *metrics) heartbeat(status catalog.Status) {
	m.runs.WithLabelValues(definition.TypeTTL, status.String()).Inc()
}
