package gossip

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// memberlist reports its own metrics (probe times, UDP/TCP bytes, health score, …)
// only through go-metrics' process-wide global: v0.7.0 has no per-instance sink, just
// Config.MetricLabels. So that each Gossip's memberlist metrics land on that Gossip's
// own registry — several agents run in one process in tests and the simulator — the
// global is pointed, once per process, at a router: every memberlist instance is
// created with a label naming its Gossip, and the router hands each metric to that
// Gossip's go-metrics Prometheus sink with the label removed. Metrics without the
// label (another library using the global) are dropped.
//
// This means rumor takes over go-metrics' global in any process that starts gossip;
// nothing else in rumor uses it.

// routeLabel is the label memberlist attaches to every metric, naming the instance.
const routeLabel = "rumor_gossip_instance"

// mlRouter is the process-wide go-metrics sink that fans memberlist's metrics out to
// the registries of the Gossip instances that emitted them.
type mlRouter struct {
	sinks sync.Map // instance label value → *gmprom.PrometheusSink
}

var (
	router        = &mlRouter{}
	routerOnce    sync.Once
	routerErr     error
	nextInstances atomic.Uint64
)

// installRouter points go-metrics' global at the router, once per process. The
// global prefixes every key with "rumor", so memberlist's "memberlist.udp.sent"
// becomes rumor_memberlist_udp_sent. It starts no goroutine (no runtime metrics).
func installRouter() error {
	routerOnce.Do(func() {
		conf := gometrics.DefaultConfig("rumor")
		conf.EnableHostname = false
		conf.HostName = ""
		conf.EnableRuntimeMetrics = false
		_, routerErr = gometrics.NewGlobal(conf, router)
	})
	return routerErr
}

// memberlistMetrics connects one Gossip's memberlist to reg: it registers a go-metrics
// Prometheus sink there and returns the labels to give memberlist, and a function that
// disconnects the sink (at Shutdown; memberlist's stragglers are then dropped).
func memberlistMetrics(reg prometheus.Registerer) ([]gometrics.Label, func(), error) {
	if err := installRouter(); err != nil {
		return nil, nil, fmt.Errorf("gossip: memberlist metrics: %w", err)
	}
	// Expiration 0: memberlist's series are few and fixed, and a counter that vanishes
	// after a quiet minute would read as a reset.
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		Registerer: reg, Name: "rumor_memberlist_sink", Expiration: 0,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("gossip: register memberlist metrics: %w", err)
	}
	id := strconv.FormatUint(nextInstances.Add(1), 10)
	router.sinks.Store(id, sink)
	// Clipped, so memberlist's own append (it adds node_state to a gauge) copies
	// rather than writing into a shared backing array.
	labels := slices.Clip([]gometrics.Label{{Name: routeLabel, Value: id}})
	return labels, func() { router.sinks.Delete(id) }, nil
}

// route finds the sink of the instance named in labels and returns the labels
// without the routing one; nil if no live instance is named.
func (r *mlRouter) route(labels []gometrics.Label) (*gmprom.PrometheusSink, []gometrics.Label) {
	for i, l := range labels {
		if l.Name != routeLabel {
			continue
		}
		s, ok := r.sinks.Load(l.Value)
		if !ok {
			return nil, nil
		}
		rest := make([]gometrics.Label, 0, len(labels)-1)
		rest = append(append(rest, labels[:i]...), labels[i+1:]...)
		return s.(*gmprom.PrometheusSink), rest
	}
	return nil, nil
}

// The go-metrics MetricSink methods. Unlabelled calls cannot be routed and are dropped.

func (r *mlRouter) SetGauge([]string, float32)    {}
func (r *mlRouter) EmitKey([]string, float32)     {}
func (r *mlRouter) IncrCounter([]string, float32) {}
func (r *mlRouter) AddSample([]string, float32)   {}

func (r *mlRouter) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	if s, rest := r.route(labels); s != nil {
		s.SetGaugeWithLabels(key, val, rest)
	}
}

func (r *mlRouter) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	if s, rest := r.route(labels); s != nil {
		s.IncrCounterWithLabels(key, val, rest)
	}
}

func (r *mlRouter) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	if s, rest := r.route(labels); s != nil {
		s.AddSampleWithLabels(key, val, rest)
	}
}

var _ gometrics.MetricSink = (*mlRouter)(nil)
