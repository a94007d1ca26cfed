package catalog_test

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// cluster returns the records of nodes × (1 node record + perNode services, each with
// one check), shaped like a real registration: two tags, one meta key. Exactly
// webCount nodes run a "web" instance; the other services spread over 500 names.
func cluster(nodes, perNode, webCount int) []catalog.Record {
	recs := make([]catalog.Record, 0, nodes*(1+2*perNode))
	for i := range nodes {
		name := fmt.Sprintf("node-%05d", i)
		w := catalog.NewWriter(name, 1)
		recs = append(recs, w.PutNode(catalogtest.Node(name, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))))
		for j := range perNode {
			svcName := fmt.Sprintf("svc-%03d", (i*perNode+j)%500)
			if j == 0 && i < webCount {
				svcName = "web"
			}
			s := catalogtest.Service(fmt.Sprintf("%s-%d", svcName, j), svcName, 8000+j, "v1", "primary")
			s.Meta = map[string]string{"version": "1.2.3"}
			recs = append(recs, w.PutService(s))
			recs = append(recs, w.PutCheck(catalogtest.Check(s.ID+"-check", s.ID, catalog.StatusPassing)))
		}
	}
	return recs
}

// serviceRecords returns n service records from n/10 origins (10 services each), the
// shape the merge target speaks of.
func serviceRecords(n int) []catalog.Record {
	recs := make([]catalog.Record, 0, n)
	for i := 0; len(recs) < n; i++ {
		w := catalog.NewWriter(fmt.Sprintf("node-%06d", i), 1)
		for j := 0; j < 10 && len(recs) < n; j++ {
			recs = append(recs, w.PutService(catalogtest.Service(fmt.Sprintf("s%d", j), fmt.Sprintf("svc-%03d", (i+j)%500), 80, "v1")))
		}
	}
	return recs
}

func newBenchCatalog(b *testing.B, recs []catalog.Record) *catalog.Catalog {
	b.Helper()
	c, _ := catalogtest.New(b, catalog.Config{})
	for start := 0; start < len(recs); start += 1000 {
		if _, err := c.Apply(recs[start:min(start+1000, len(recs))]...); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// BenchmarkMerge1M merges one million service records (100,000 origins × 10) into an
// empty catalog, in gossip-sized batches of 1,000. Target: under 2 s per op.
func BenchmarkMerge1M(b *testing.B) {
	b.ReportAllocs()
	recs := serviceRecords(1_000_000)
	b.ResetTimer()
	for b.Loop() {
		newBenchCatalog(b, recs)
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkQueryPassing asks for the passing instances of "web" (10 of them) among
// nodes × 10 services. Target: under 50 µs per op at 10,000 nodes.
func BenchmarkQueryPassing(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			c := newBenchCatalog(b, cluster(nodes, 10, 10))
			f := catalog.Filter{PassingOnly: true}
			if got := len(c.ServiceInstances("web", f)); got != 10 {
				b.Fatalf("web has %d passing instances, want 10", got)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.ServiceInstances("web", f)
			}
		})
	}
}

// BenchmarkMemoryPerInstance measures the heap a catalog of 10,000 nodes × 10 services
// (each with a check, two tags, a meta key) takes per service instance.
// Target: under 1 KiB per instance.
func BenchmarkMemoryPerInstance(b *testing.B) {
	const nodes, perNode = 10000, 10
	recs := cluster(nodes, perNode, 10)
	var c *catalog.Catalog
	var used uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c = newBenchCatalog(b, recs)
		runtime.GC()
		runtime.ReadMemStats(&after)
		used = after.HeapAlloc - before.HeapAlloc
	}
	runtime.KeepAlive(c)
	// The records the catalog holds were allocated before the measurement (Apply takes
	// ownership without copying), so count their values too: what a replica that
	// decoded them from the network would hold.
	b.ReportMetric(float64(used)/float64(nodes*perNode), "index-B/instance")
	b.ReportMetric(float64(used+valueBytes(recs))/float64(nodes*perNode), "B/instance")
}

// valueBytes estimates the heap the decoded values of recs take, by decoding them.
func valueBytes(recs []catalog.Record) uint64 {
	wire := catalog.AppendRecords(nil, recs)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	decoded, err := catalog.DecodeRecords(wire)
	if err != nil {
		panic(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(decoded)
	// The slice of Record structs is transport overhead a catalog does not keep: it
	// stores each record once, in its own allocation, counted in the index part.
	slice := uint64(cap(decoded)) * uint64(unsafe.Sizeof(catalog.Record{}))
	return after.HeapAlloc - before.HeapAlloc - slice
}

// BenchmarkReconcile10k measures one anti-entropy exchange between two replicas of
// 10,000 origins × (node + 10 services + 10 checks) where 10 origins changed one
// service each: summaries, digests of the differing buckets, missing records.
func BenchmarkReconcile10k(b *testing.B) {
	const nodes = 10000
	recs := cluster(nodes, 10, 10)
	a := newBenchCatalog(b, recs)
	changed := make([]catalog.Record, 0, 10)
	for i := range 10 {
		w := catalog.NewWriter(fmt.Sprintf("node-%05d", i*997), 1)
		w.Supersede(catalog.Version{Gen: 1}) // forces a new generation: a restarted node
		changed = append(changed, w.PutService(catalogtest.Service("new", "new", 1)))
	}
	if _, err := a.Apply(changed...); err != nil {
		b.Fatal(err)
	}
	full := a.Digest(nil)
	summary := a.Summary()

	var wire int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		peer := newBenchCatalog(b, recs)
		b.StartTimer()
		sa, sp := a.Summary(), peer.Summary()
		diff := sa.Diff(&sp)
		dp := peer.Digest(diff)
		dpWire := catalog.AppendDigest(nil, &dp)
		got, err := catalog.DecodeDigest(dpWire)
		if err != nil {
			b.Fatal(err)
		}
		missing, _ := a.Missing(got)
		recWire := catalog.AppendRecords(nil, missing)
		in, err := catalog.DecodeRecords(recWire)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := peer.Apply(in...); err != nil {
			b.Fatal(err)
		}
		wire = 2*(1+8*catalog.NumBuckets) + 2*len(dpWire) + len(recWire)
		if s := peer.Summary(); s != sa {
			b.Fatal("replicas differ after one exchange")
		}
	}
	b.ReportMetric(float64(wire), "exchange-B")
	b.ReportMetric(float64(len(catalog.AppendSummary(nil, &summary))), "summary-B")
	b.ReportMetric(float64(len(catalog.AppendDigest(nil, &full))), "full-digest-B")
}

// BenchmarkSummaryDigest10k measures producing a summary and a full digest at 10,000
// origins, the work every anti-entropy round starts with.
func BenchmarkSummaryDigest10k(b *testing.B) {
	c := newBenchCatalog(b, cluster(10000, 10, 10))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s := c.Summary()
		_ = s.Hash()
		c.Digest([]int{7})
	}
}
