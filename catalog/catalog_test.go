package catalog_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// apply applies records and fails the test on a validation error.
func apply(t *testing.T, c *catalog.Catalog, recs ...catalog.Record) []catalog.Record {
	t.Helper()
	changed, err := c.Apply(recs...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return changed
}

// serviceIDs lists "origin/id" of a service's instances, sorted.
func serviceIDs(c *catalog.Catalog, name string, f catalog.Filter) []string {
	var out []string
	for _, in := range c.ServiceInstances(name, f) {
		out = append(out, in.Node.Node.Name+"/"+in.Service.ID)
	}
	return out
}

func TestNewRequiresClock(t *testing.T) {
	if _, err := catalog.New(catalog.Config{}); err == nil {
		t.Fatal("New without a Clock succeeded")
	}
	if _, err := catalog.New(catalog.Config{Clock: catalogtest.NewClock(), ReapAfter: -1}); err == nil {
		t.Fatal("New with a negative ReapAfter succeeded")
	}
}

func TestApplyVersions(t *testing.T) {
	tests := []struct {
		name string
		// steps returns the records to apply in order, made with a writer per generation.
		steps func(w1, w2 *catalog.Writer) []catalog.Record
		want  []string // instances of "web" afterwards
	}{
		{"newer counter wins", func(w1, _ *catalog.Writer) []catalog.Record {
			a := w1.PutService(catalogtest.Service("a", "web", 1))
			b := w1.PutService(catalogtest.Service("a", "web", 2))
			return []catalog.Record{a, b}
		}, []string{"n1/a"}},
		{"stale version ignored after newer", func(w1, _ *catalog.Writer) []catalog.Record {
			a := w1.PutService(catalogtest.Service("a", "web", 1))
			del := w1.Delete(catalog.Key{Kind: catalog.KindService, ID: "a"})
			return []catalog.Record{del, a}
		}, nil},
		{"record after its tombstone stays deleted", func(w1, _ *catalog.Writer) []catalog.Record {
			a := w1.PutService(catalogtest.Service("a", "web", 1))
			del := w1.Delete(catalog.Key{Kind: catalog.KindService, ID: "a"})
			return []catalog.Record{a, del, a, a}
		}, nil},
		{"re-registration after delete", func(w1, _ *catalog.Writer) []catalog.Record {
			a := w1.PutService(catalogtest.Service("a", "web", 1))
			del := w1.Delete(catalog.Key{Kind: catalog.KindService, ID: "a"})
			a2 := w1.PutService(catalogtest.Service("a", "web", 1))
			return []catalog.Record{a2, del, a}
		}, []string{"n1/a"}},
		{"new generation replaces whole set", func(w1, w2 *catalog.Writer) []catalog.Record {
			a := w1.PutService(catalogtest.Service("a", "web", 1))
			b := w1.PutService(catalogtest.Service("b", "web", 1))
			c := w2.PutService(catalogtest.Service("c", "web", 1))
			return []catalog.Record{a, b, c}
		}, []string{"n1/c"}},
		{"old generation after new is ignored", func(w1, w2 *catalog.Writer) []catalog.Record {
			a := w1.PutService(catalogtest.Service("a", "web", 1))
			c := w2.PutService(catalogtest.Service("c", "web", 1))
			return []catalog.Record{c, a}
		}, []string{"n1/c"}},
		{"service renamed moves between names", func(w1, _ *catalog.Writer) []catalog.Record {
			a := w1.PutService(catalogtest.Service("a", "web", 1))
			b := w1.PutService(catalogtest.Service("a", "api", 1))
			return []catalog.Record{a, b}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := catalogtest.New(t, catalog.Config{})
			w1, w2 := catalog.NewWriter("n1", 1), catalog.NewWriter("n1", 2)
			apply(t, c, tt.steps(w1, w2)...)
			if got := serviceIDs(c, "web", catalog.Filter{}); !slices.Equal(got, tt.want) {
				t.Errorf("instances of web = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestApplyReturnsOnlyNewRecords(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	a := w.PutService(catalogtest.Service("a", "web", 1))
	b := w.PutService(catalogtest.Service("b", "web", 1))
	if got := apply(t, c, a, b, a); len(got) != 2 {
		t.Fatalf("first Apply changed %d records, want 2", len(got))
	}
	if got := apply(t, c, b, a); len(got) != 0 {
		t.Fatalf("duplicate Apply changed %v, want none", got)
	}
}

func TestApplyInvalidRecordKeepsState(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	good := w.PutService(catalogtest.Service("a", "web", 80))
	apply(t, c, good)
	before := c.Index()

	bad := w.PutService(catalogtest.Service("a", "web", 80))
	bad.Service.Port = 70000 // same key, newer version, invalid value
	other := w.PutService(catalogtest.Service("b", "web", 81))
	changed, err := c.Apply(bad, other)
	if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "service.port") {
		t.Fatalf("Apply error = %v, want ErrInvalid naming service.port", err)
	}
	if len(changed) != 1 || changed[0].Key.ID != "b" {
		t.Fatalf("changed = %v, want only b", changed)
	}
	got := c.ServiceInstances("web", catalog.Filter{})
	if len(got) != 2 || got[0].Service.Port != 80 {
		t.Fatalf("instances = %+v, want a:80 untouched and b", got)
	}
	if c.Index() <= before {
		t.Errorf("index %d did not move past %d after a valid change", c.Index(), before)
	}
}

func TestLivenessAndReaping(t *testing.T) {
	c, clk := catalogtest.New(t, catalog.Config{ReapAfter: time.Minute, TombstoneTTL: time.Hour})
	w := catalog.NewWriter("n1", 1)
	apply(t, c, w.PutNode(catalogtest.Node("n1", "10.0.0.1")),
		w.PutService(catalogtest.Service("a", "web", 80)))

	status := func() catalog.Status {
		t.Helper()
		in := c.ServiceInstances("web", catalog.Filter{})
		if len(in) != 1 {
			t.Fatalf("instances = %d, want 1", len(in))
		}
		return in[0].Status
	}
	if got := status(); got != catalog.StatusPassing {
		t.Fatalf("alive node status = %s, want passing", got)
	}
	c.SetLiveness("n1", catalog.LivenessSuspect)
	if got := status(); got != catalog.StatusCritical {
		t.Fatalf("suspect node status = %s, want critical", got)
	}
	c.SetLiveness("n1", catalog.LivenessFailed)
	if got := status(); got != catalog.StatusCritical {
		t.Fatalf("failed node status = %s, want critical", got)
	}
	if got := c.ServiceInstances("web", catalog.Filter{PassingOnly: true}); len(got) != 0 {
		t.Fatalf("passing-only on a failed node = %v, want none", got)
	}
	clk.Advance(59 * time.Second)
	if reaped := c.Expire(); len(reaped) != 0 {
		t.Fatalf("reaped %v before ReapAfter", reaped)
	}
	clk.Advance(time.Second)
	if reaped := c.Expire(); !slices.Equal(reaped, []string{"n1"}) {
		t.Fatalf("reaped %v, want [n1]", reaped)
	}
	if got := c.ServiceInstances("web", catalog.Filter{}); len(got) != 0 {
		t.Fatalf("instances after reap = %v, want none", got)
	}
	// A stale copy from a peer that has not reaped yet does not bring it back.
	stale := w.PutService(catalogtest.Service("b", "web", 80))
	stale.Version.Counter = 2
	stale.Key.ID, stale.Service.ID = "a", "a"
	apply(t, c, stale)
	if got := c.ServiceInstances("web", catalog.Filter{}); len(got) != 0 {
		t.Fatalf("stale record resurrected a reaped node: %v", got)
	}
	// The node comes back (a healed partition): its records flow again.
	c.SetLiveness("n1", catalog.LivenessAlive)
	apply(t, c, stale)
	if got := status(); got != catalog.StatusPassing {
		t.Fatalf("returned node status = %s, want passing", got)
	}
}

func TestLeftDropsAtOnceAndNewGenerationReturns(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	svc := w.PutService(catalogtest.Service("a", "web", 80))
	apply(t, c, svc)
	c.SetLiveness("n1", catalog.LivenessLeft)
	if got := c.ServiceInstances("web", catalog.Filter{}); len(got) != 0 {
		t.Fatalf("instances after leave = %v, want none", got)
	}
	apply(t, c, svc) // a late duplicate
	if got := c.ServiceInstances("web", catalog.Filter{}); len(got) != 0 {
		t.Fatalf("late duplicate after leave resurrected %v", got)
	}
	w.Supersede(svc.Version) // a restart: next generation
	apply(t, c, w.PutService(catalogtest.Service("a", "web", 80)))
	if got := serviceIDs(c, "web", catalog.Filter{}); !slices.Equal(got, []string{"n1/a"}) {
		t.Fatalf("after restart = %v, want [n1/a]", got)
	}
}

func TestTombstoneGC(t *testing.T) {
	c, clk := catalogtest.New(t, catalog.Config{TombstoneTTL: time.Hour})
	w := catalog.NewWriter("n1", 1)
	a := w.PutService(catalogtest.Service("a", "web", 80))
	del := w.Delete(catalog.Key{Kind: catalog.KindService, ID: "a"})
	apply(t, c, a, del)
	if n := len(c.Records("n1")); n != 1 {
		t.Fatalf("records = %d, want the tombstone", n)
	}
	clk.Advance(time.Hour - time.Second)
	c.Expire()
	if n := len(c.Records("n1")); n != 1 {
		t.Fatalf("records before TTL = %d, want the tombstone kept", n)
	}
	clk.Advance(time.Second)
	c.Expire()
	if n := len(c.Records("n1")); n != 0 {
		t.Fatalf("records after TTL = %d, want 0", n)
	}
	if v := c.OriginVersion("n1"); v != del.Version {
		t.Errorf("OriginVersion = %v, want %v kept after GC", v, del.Version)
	}
	// A peer that collects later may hand the tombstone back: it is not stored again,
	// or replicas would pass it back and forth forever.
	if changed := apply(t, c, del); len(changed) != 0 {
		t.Errorf("a collected tombstone was stored again: %v", changed)
	}
	// A new registration of the key is accepted as usual.
	if changed := apply(t, c, w.PutService(catalogtest.Service("a", "web", 81))); len(changed) != 1 {
		t.Errorf("a new registration after GC was not applied")
	}
}

func TestWriterSupersede(t *testing.T) {
	w := catalog.NewWriter("n1", 5)
	if w.Supersede(catalog.Version{Gen: 4, Counter: 100}) {
		t.Error("Supersede moved past an older generation")
	}
	if !w.Supersede(catalog.Version{Gen: 5, Counter: 3}) || w.Generation() != 6 {
		t.Errorf("Supersede(5.3): generation = %d, want 6", w.Generation())
	}
	if r := w.PutNode(catalogtest.Node("n1", "")); r.Version != (catalog.Version{Gen: 6, Counter: 1}) {
		t.Errorf("first record after Supersede has version %v, want 6.1", r.Version)
	}
}
