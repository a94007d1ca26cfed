package catalog_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// history draws what a few origins wrote over time, restarts included: every record any
// replica could ever receive.
func history(t *rapid.T) []catalog.Record {
	var out []catalog.Record
	for _, origin := range []string{"a", "b", "c"}[:rapid.IntRange(1, 3).Draw(t, "origins")] {
		w := catalog.NewWriter(origin, rapid.Uint64Range(1, 3).Draw(t, "gen"))
		steps := rapid.IntRange(0, 12).Draw(t, "steps")
		for range steps {
			sid := rapid.SampledFrom([]string{"s1", "s2", "s3"}).Draw(t, "sid")
			switch rapid.IntRange(0, 6).Draw(t, "op") {
			case 0:
				n := catalogtest.Node(origin, rapid.SampledFrom([]string{"10.0.0.1", "10.0.0.2"}).Draw(t, "addr"))
				n.Meta = map[string]string{"rack": rapid.SampledFrom([]string{"x", "y"}).Draw(t, "rack")}
				out = append(out, w.PutNode(n))
			case 1, 2:
				s := catalogtest.Service(sid, rapid.SampledFrom([]string{"web", "db"}).Draw(t, "name"),
					rapid.IntRange(0, 3).Draw(t, "port"))
				s.Tags = rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"v1", "v2", "primary"}), 0, 3, rapid.ID[string]).Draw(t, "tags")
				out = append(out, w.PutService(s))
			case 3:
				st := catalog.Status(rapid.IntRange(1, 4).Draw(t, "status"))
				owner := rapid.SampledFrom([]string{"", sid}).Draw(t, "owner")
				out = append(out, w.PutCheck(catalogtest.Check(rapid.SampledFrom([]string{"c1", "c2"}).Draw(t, "cid"), owner, st)))
			case 4:
				kind := rapid.SampledFrom([]catalog.Kind{catalog.KindService, catalog.KindCheck, catalog.KindMove}).Draw(t, "kind")
				id := sid
				if kind == catalog.KindCheck {
					id = rapid.SampledFrom([]string{"c1", "c2"}).Draw(t, "cid")
				}
				out = append(out, w.Delete(catalog.Key{Kind: kind, ID: id}))
			case 5:
				w.Supersede(catalog.Version{Gen: w.Generation()}) // a restart
			case 6:
				at := time.Unix(1_700_000_000, 0)
				out = append(out, w.PutMove(sid, &catalog.Move{Service: rapid.SampledFrom([]string{"web", "db"}).Draw(t, "mname"),
					ToNode: rapid.SampledFrom([]string{"y", "z"}).Draw(t, "mto"), ToServiceID: sid, At: at, Until: at.Add(time.Hour)}))
			}
		}
	}
	return out
}

// delivery draws a delivery of recs: a random subset (or all), shuffled, with duplicates.
func delivery(t *rapid.T, recs []catalog.Record, label string, all bool) []catalog.Record {
	var out []catalog.Record
	for i, r := range recs {
		if all || rapid.Bool().Draw(t, fmt.Sprintf("%s-keep-%d", label, i)) {
			out = append(out, r)
			if rapid.IntRange(0, 4).Draw(t, fmt.Sprintf("%s-dup-%d", label, i)) == 0 {
				out = append(out, r)
			}
		}
	}
	perm := rapid.Permutation(out).Draw(t, label+"-order")
	return perm
}

// newReplica builds a catalog and applies recs one Apply call at a time in the given
// order (so each record is merged separately, as gossip delivers them).
func newReplica(t *rapid.T, recs []catalog.Record) *catalog.Catalog {
	c, err := catalog.New(catalog.Config{Clock: catalogtest.NewClock()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if _, err := c.Apply(r); err != nil {
			t.Fatalf("Apply(%v): %v", &r, err)
		}
	}
	return c
}

// state renders everything a replica holds that merging decides, deterministically.
func state(c *catalog.Catalog) []byte {
	var b []byte
	for _, od := range c.Digest(nil).Origins {
		b = append(b, od.Origin...)
		b = append(b, fmt.Sprintf("@%v#%x:", od.Version, od.Hash)...)
		b = catalog.AppendRecords(b, c.Records(od.Origin))
	}
	s := c.Summary()
	b = fmt.Appendf(b, "|%x", s.Hash())
	for _, sum := range c.Services(catalog.Filter{}) {
		b = fmt.Appendf(b, "|%s%v", sum.Name, sum.Tags)
		for _, in := range c.ServiceInstances(sum.Name, catalog.Filter{}) {
			b = fmt.Appendf(b, ";%s/%s=%s", in.Node.Node.Name, in.Service.ID, in.Status)
		}
	}
	return b
}

// allRecords returns every record a replica holds: its state, as a set of records.
func allRecords(c *catalog.Catalog) []catalog.Record {
	var out []catalog.Record
	for _, od := range c.Digest(nil).Origins {
		out = append(out, c.Records(od.Origin)...)
	}
	return out
}

func requireSame(t *rapid.T, what string, a, b *catalog.Catalog) {
	if sa, sb := state(a), state(b); !bytes.Equal(sa, sb) {
		t.Fatalf("%s: replicas differ:\n%q\n%q", what, sa, sb)
	}
}

// TestMergeOrderIndependence: any delivery order of the same records, with duplicates,
// gives the same catalog.
func TestMergeOrderIndependence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := history(t)
		a := newReplica(t, delivery(t, h, "a", true))
		b := newReplica(t, delivery(t, h, "b", true))
		requireSame(t, "two orders", a, b)
	})
}

// TestMergeLaws checks the state merge (apply one replica's records into another) is
// commutative, associative and idempotent.
func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := history(t)
		x, y, z := delivery(t, h, "x", false), delivery(t, h, "y", false), delivery(t, h, "z", false)
		merge := func(parts ...[]catalog.Record) *catalog.Catalog {
			return newReplica(t, slices.Concat(parts...))
		}
		// Replicas hold states; merging states means applying one's records into another.
		sx, sy, sz := allRecords(newReplica(t, x)), allRecords(newReplica(t, y)), allRecords(newReplica(t, z))

		requireSame(t, "commutative", merge(sx, sy), merge(sy, sx))
		xy := allRecords(merge(sx, sy))
		yz := allRecords(merge(sy, sz))
		requireSame(t, "associative", merge(xy, sz), merge(sx, yz))
		requireSame(t, "idempotent", merge(sx, sx), newReplica(t, sx))
		// And merging states is the same as having received both deliveries.
		requireSame(t, "state merge equals delivery union", merge(sx, sy), merge(x, y))

		c := newReplica(t, sx)
		if changed, _ := c.Apply(sx...); len(changed) != 0 {
			t.Fatalf("re-applying a replica's own state changed %v", changed)
		}
	})
}

// reconcile runs the anti-entropy exchange between two replicas, in both directions,
// until their summaries agree, and returns how many rounds it took (at most max).
func reconcile(t *rapid.T, a, b *catalog.Catalog, max int) int {
	for round := 1; round <= max; round++ {
		sa, sb := a.Summary(), b.Summary()
		if sa == sb {
			return round - 1
		}
		diff := sa.Diff(&sb)
		da, db := a.Digest(diff), b.Digest(diff)
		toB, unsureB := a.Missing(db)
		toA, unsureA := b.Missing(da)
		mustApply(t, b, toB)
		mustApply(t, a, toA)
		// Key-by-key repair of origins at the same version with different hashes.
		mustApply(t, b, a.MissingKeys(b.KeyVersions(unsureB)))
		mustApply(t, a, b.MissingKeys(a.KeyVersions(unsureA)))
	}
	sa, sb := a.Summary(), b.Summary()
	if sa != sb {
		t.Fatalf("replicas still differ after %d rounds", max)
	}
	return max
}

func mustApply(t *rapid.T, c *catalog.Catalog, recs []catalog.Record) {
	if _, err := c.Apply(recs...); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// TestAntiEntropyConverges: two replicas that received different parts of the history
// reconcile through Summary → Digest → Missing (→ KeyVersions → MissingKeys) to exactly
// the state of a replica that received both parts.
func TestAntiEntropyConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := history(t)
		x, y := delivery(t, h, "x", false), delivery(t, h, "y", false)
		a, b := newReplica(t, x), newReplica(t, y)
		rounds := reconcile(t, a, b, 3)
		want := newReplica(t, slices.Concat(x, y))
		requireSame(t, "a vs union", a, want)
		requireSame(t, "b vs union", b, want)
		if rounds > 2 {
			t.Fatalf("took %d rounds, want at most 2", rounds)
		}
	})
}

// model is the brute-force catalog: per origin the newest generation, per key the
// newest record of that generation. Queries scan everything.
type model map[string]map[catalog.Key]catalog.Record

func buildModel(recs []catalog.Record) model {
	gen := map[string]uint64{}
	for _, r := range recs {
		gen[r.Origin] = max(gen[r.Origin], r.Version.Gen)
	}
	m := model{}
	for _, r := range recs {
		if r.Version.Gen != gen[r.Origin] {
			continue
		}
		if m[r.Origin] == nil {
			m[r.Origin] = map[catalog.Key]catalog.Record{}
		}
		if old, ok := m[r.Origin][r.Key]; !ok || old.Version.Less(r.Version) {
			m[r.Origin][r.Key] = r
		}
	}
	return m
}

// instances answers ServiceInstances by scanning, as "origin/id=status" sorted.
func (m model) instances(name string, f catalog.Filter) []string {
	var out []string
	for origin, recs := range m {
		var node *catalog.Node
		if r, ok := recs[catalog.Key{Kind: catalog.KindNode}]; ok && !r.Deleted {
			node = r.Node
		}
		for _, r := range recs {
			if r.Deleted || r.Service == nil || r.Service.Name != name {
				continue
			}
			ok := true
			for _, tag := range f.Tags {
				ok = ok && slices.Contains(r.Service.Tags, tag)
			}
			for k, v := range f.NodeMeta {
				ok = ok && node != nil && node.Meta[k] == v
			}
			if !ok {
				continue
			}
			st := catalog.StatusPassing
			for _, cr := range recs {
				if !cr.Deleted && cr.Check != nil && (cr.Check.ServiceID == "" || cr.Check.ServiceID == r.Service.ID) {
					st = catalog.Worse(st, cr.Check.Status)
				}
			}
			if f.PassingOnly && st != catalog.StatusPassing {
				continue
			}
			out = append(out, fmt.Sprintf("%s/%s=%s", origin, r.Service.ID, st))
		}
	}
	slices.Sort(out)
	return out
}

// TestQueriesAgreeWithModel: the indexed queries answer what a full scan answers.
func TestQueriesAgreeWithModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := history(t)
		recs := delivery(t, h, "d", false)
		c := newReplica(t, recs)
		m := buildModel(recs)
		f := catalog.Filter{
			Tags:        rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"v1", "v2", "primary"}), 0, 2, rapid.ID[string]).Draw(t, "qtags"),
			PassingOnly: rapid.Bool().Draw(t, "passing"),
		}
		if rapid.Bool().Draw(t, "bymeta") {
			f.NodeMeta = map[string]string{"rack": rapid.SampledFrom([]string{"x", "y"}).Draw(t, "qrack")}
		}
		for _, name := range []string{"web", "db", "none"} {
			var got []string
			for _, in := range c.ServiceInstances(name, f) {
				got = append(got, fmt.Sprintf("%s/%s=%s", in.Node.Node.Name, in.Service.ID, in.Status))
			}
			if want := m.instances(name, f); !slices.Equal(got, want) {
				t.Fatalf("ServiceInstances(%s, %+v) = %v, model says %v", name, f, got, want)
			}
		}
	})
}
