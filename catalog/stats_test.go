package catalog_test

import (
	"testing"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

func TestStatsCountsWhatIsHeld(t *testing.T) {
	clk := catalogtest.NewClock()
	cat, err := catalog.New(catalog.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cat.Stats(), (catalog.Stats{}); got != want {
		t.Fatalf("empty catalog: Stats() = %+v, want %+v", got, want)
	}
	a, b := catalog.NewWriter("a", 1), catalog.NewWriter("b", 1)
	applyAll(t, cat,
		a.PutNode(catalogtest.Node("a", "10.0.0.1")),
		a.PutService(catalogtest.Service("web-1", "web", 80)),
		a.PutService(catalogtest.Service("db-1", "db", 5432)),
		b.PutNode(catalogtest.Node("b", "10.0.0.2")),
		b.PutService(catalogtest.Service("web-2", "web", 80)),
	)
	want := catalog.Stats{Nodes: 2, Services: 2, Instances: 3, Records: 5}
	if got := cat.Stats(); got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
	applyAll(t, cat, a.Delete(catalog.Key{Kind: catalog.KindService, ID: "db-1"}))
	want = catalog.Stats{Nodes: 2, Services: 1, Instances: 2, Records: 4, Tombstones: 1}
	if got := cat.Stats(); got != want {
		t.Fatalf("after deleting db-1: Stats() = %+v, want %+v", got, want)
	}
}

func applyAll(t *testing.T, cat *catalog.Catalog, recs ...catalog.Record) {
	t.Helper()
	if _, err := cat.Apply(recs...); err != nil {
		t.Fatal(err)
	}
}
