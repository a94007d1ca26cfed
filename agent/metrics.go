package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rumor-sd/rumor/catalog"
)

// Every agent owns a private Prometheus registry, served by the HTTP API as /metrics.
// Each component registers its own series on it (never on the global registerer, so
// several agents can run in one process):
//
//	rumor_catalog_*   what the catalog holds (this file)
//	rumor_gossip_*    messages sent/received/dropped, push-pull, broadcasts, members by state (gossip)
//	rumor_memberlist_* memberlist's own go-metrics, routed to this registry (gossip)
//	rumor_health_*    check runs by type and status, probe durations (health)
//	rumor_http_*      request durations by route pattern and code (httpapi)
//	rumor_local_state_* the local state's log: records and bytes appended, fsyncs and
//	                  their durations, compactions, its size (statelog.go)
//	go_*, process_*   the Go runtime and the process
//
// A DNS server, when there is one, gets the same registry as its Registerer and adds
// rumor_dns_request_duration_seconds{qtype,rcode} there, as httpapi does for HTTP.

// newRegistry returns an agent's registry with the runtime, process and catalog
// collectors on it.
func newRegistry(cat *catalog.Catalog) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister( // cannot fail: a fresh registry, distinct collectors
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCatalogCollector(cat),
	)
	return reg
}

// catalogCollector reports the catalog's size at scrape time, from one Stats call.
type catalogCollector struct {
	cat                                               *catalog.Catalog
	nodes, services, instances, records, tombs, index *prometheus.Desc
}

func newCatalogCollector(cat *catalog.Catalog) *catalogCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("rumor", "catalog", name), help, nil, nil)
	}
	return &catalogCollector{
		cat:       cat,
		nodes:     d("nodes", "Nodes (origins) with records in the catalog."),
		services:  d("services", "Distinct service names with at least one instance."),
		instances: d("instances", "Service instances across all nodes."),
		records:   d("records", "Live records (nodes, services, checks) of every origin."),
		tombs:     d("tombstones", "Deleted records kept so that late copies cannot resurrect them."),
		index:     d("index", "The catalog's global index: it grows whenever any answer may have changed."),
	}
}

// Describe implements prometheus.Collector.
func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.services, c.instances, c.records, c.tombs, c.index} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.cat.Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		v int
	}{{c.nodes, s.Nodes}, {c.services, s.Services}, {c.instances, s.Instances}, {c.records, s.Records}, {c.tombs, s.Tombstones}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(c.index, prometheus.CounterValue, float64(c.cat.Index()))
}
