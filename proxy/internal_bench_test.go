package proxy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// newBenchProxy is a proxy over cat whose upstreams have no listener: what a
// rebuild costs, without sockets.
func newBenchProxy(b *testing.B, cat *catalog.Catalog) *Proxy {
	p, err := New(Config{Catalog: cat})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

func (p *Proxy) benchUpstream(service string) *upstream {
	ctx, cancel := context.WithCancel(p.ctx)
	up := &upstream{p: p, def: Upstream{Service: service}, ctx: ctx, cancel: cancel,
		all: map[*backend]struct{}{}}
	up.cur.Store(&set{})
	return up
}

// BenchmarkRebuildAll rebuilds the instance sets of 10,000 upstreams, one per service,
// each with 10 instances on 10,000 nodes, after a change to every one of them: what a
// proxy following every service of such a catalog pays when everything changes at
// once. Target ≤ 100 ms. Each round one instance of every service goes critical (and
// drains) or comes back (as a new instance), which the timer does not count.
// ms/reread-unchanged is the same pass over a catalog that did not change. The cpu-ms
// metrics are the process's CPU time in those passes (GC included), which a loaded
// machine disturbs much less than the wall clock.
func BenchmarkRebuildAll(b *testing.B) {
	cat, _ := catalogtest.New(b, catalog.Config{})
	// 10,000 nodes with 10 instances each, as the catalog's own benchmarks lay them
	// out: node n holds instances of services 10n … 10n+9 (mod 10,000), so service s
	// has an instance on node s/10.
	const services, per, nodes = 10000, 10, 10000
	var recs []catalog.Record
	writers := make([]*catalog.Writer, nodes)
	for n := range nodes {
		node := "n" + strconv.Itoa(n)
		w := catalog.NewWriter(node, 1)
		writers[n] = w
		recs = append(recs, w.PutNode(catalogtest.Node(node, fmt.Sprintf("10.%d.%d.%d", n>>16, (n>>8)&255, n&255))))
		for k := range per {
			s := (n*per + k) % services
			recs = append(recs, w.PutService(catalogtest.Service(fmt.Sprintf("s%d-%d", s, n), "svc"+strconv.Itoa(s), 8000)))
		}
	}
	if _, err := cat.Apply(recs...); err != nil {
		b.Fatal(err)
	}
	// change fails (or heals) the instance of every service on node s/10.
	change := func(fail bool) {
		recs = recs[:0]
		for s := range services {
			n := s / per
			id := fmt.Sprintf("s%d-%d", s, n)
			if fail {
				recs = append(recs, writers[n].PutCheck(catalogtest.Check("c-"+id, id, catalog.StatusCritical)))
			} else {
				recs = append(recs, writers[n].Delete(catalog.Key{Kind: catalog.KindCheck, ID: "c-" + id}))
			}
		}
		if _, err := cat.Apply(recs...); err != nil {
			b.Fatal(err)
		}
	}
	p := newBenchProxy(b, cat)
	ups := make([]*upstream, services)
	for s := range ups {
		ups[s] = p.benchUpstream("svc" + strconv.Itoa(s))
	}
	var cpu time.Duration // CPU time of the process during the timed passes
	rebuildAll := func() time.Duration {
		start, c0 := time.Now(), cpuTime()
		for _, up := range ups {
			up.rebuild()
		}
		cpu += cpuTime() - c0
		return time.Since(start)
	}
	// The first build creates every instance's state; a rebuild after a change
	// reuses those of the instances that stay.
	first := rebuildAll()
	cpu = 0
	b.ResetTimer()
	var changed time.Duration
	for i := range b.N {
		b.StopTimer()
		change(i%2 == 0)
		b.StartTimer()
		changed += rebuildAll()
		if got, want := len(ups[0].cur.Load().live), per-1+i%2; got != want {
			b.Fatalf("round %d: %d instances in a set, want %d", i, got, want)
		}
	}
	b.StopTimer()
	changedCPU := cpu
	unchanged := rebuildAll()
	b.ReportMetric(float64(changed.Microseconds())/1e3/float64(b.N), "ms/rebuild-all")
	b.ReportMetric(float64(unchanged.Microseconds())/1e3, "ms/reread-unchanged")
	b.ReportMetric(float64(first.Milliseconds()), "ms/first-build")
	b.ReportMetric(float64(changedCPU.Microseconds())/1e3/float64(b.N), "cpu-ms/rebuild-all")
	b.ReportMetric(float64((cpu-changedCPU).Microseconds())/1e3, "cpu-ms/reread-unchanged")
}

// BenchmarkChangeToUse measures a catalog change (a new instance) until a running
// upstream's set holds it: the watch wake-up and the rebuild. Target p99 ≤ 50 ms.
func BenchmarkChangeToUse(b *testing.B) {
	cat, _ := catalogtest.New(b, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	if _, err := cat.Apply(w.PutNode(catalogtest.Node("n1", "10.0.0.1")),
		w.PutService(catalogtest.Service("web-0", "web", 8000))); err != nil {
		b.Fatal(err)
	}
	p := newBenchProxy(b, cat)
	up := p.benchUpstream("web")
	p.wg.Go(up.watch)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := "web-" + strconv.Itoa(i+1)
		start := time.Now()
		if _, err := cat.Apply(w.PutService(catalogtest.Service(id, "web", 8000))); err != nil {
			b.Fatal(err)
		}
		for !slices.ContainsFunc(up.cur.Load().live, func(be *backend) bool { return be.key == "n1/"+id }) {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("change %d not in use after 10s", i)
			}
			time.Sleep(50 * time.Microsecond) // polling the set, bounded above
		}
		lat = append(lat, time.Since(start))
		if _, err := cat.Apply(w.Delete(catalog.Key{Kind: catalog.KindService, ID: id})); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	up.stop()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
}
