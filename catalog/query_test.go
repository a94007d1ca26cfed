package catalog_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// fixture builds a small cluster:
//
//	n1 (rack=a): web-1 [v1 primary] passing, db-1 [] warning
//	n2 (rack=b): web-2 [v1] critical,        node check "disk" warning
//	n3 (rack=a): web-3 [v2],                 suspect
func fixture(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, _ := catalogtest.New(t, catalog.Config{})
	node := func(name, rack string) *catalog.Node {
		n := catalogtest.Node(name, "10.0.0."+name[1:])
		n.Meta = map[string]string{"rack": rack}
		return n
	}
	w1, w2, w3 := catalog.NewWriter("n1", 1), catalog.NewWriter("n2", 1), catalog.NewWriter("n3", 1)
	apply(t, c,
		w1.PutNode(node("n1", "a")),
		w1.PutService(catalogtest.Service("web-1", "web", 80, "v1", "primary")),
		w1.PutCheck(catalogtest.Check("web-1-http", "web-1", catalog.StatusPassing)),
		w1.PutService(catalogtest.Service("db-1", "db", 5432)),
		w1.PutCheck(catalogtest.Check("db-1-tcp", "db-1", catalog.StatusWarning)),
		w2.PutNode(node("n2", "b")),
		w2.PutService(catalogtest.Service("web-2", "web", 80, "v1")),
		w2.PutCheck(catalogtest.Check("web-2-http", "web-2", catalog.StatusCritical)),
		w2.PutCheck(catalogtest.Check("disk", "", catalog.StatusWarning)),
		w3.PutNode(node("n3", "a")),
		w3.PutService(catalogtest.Service("web-3", "web", 80, "v2")),
	)
	c.SetLiveness("n3", catalog.LivenessSuspect)
	return c
}

func TestServiceInstances(t *testing.T) {
	c := fixture(t)
	tests := []struct {
		name    string
		service string
		filter  catalog.Filter
		want    []string
	}{
		{"all", "web", catalog.Filter{}, []string{"n1/web-1", "n2/web-2", "n3/web-3"}},
		{"one tag", "web", catalog.Filter{Tags: []string{"v1"}}, []string{"n1/web-1", "n2/web-2"}},
		{"two tags", "web", catalog.Filter{Tags: []string{"v1", "primary"}}, []string{"n1/web-1"}},
		{"tag nobody has", "web", catalog.Filter{Tags: []string{"v3"}}, nil},
		{"passing only", "web", catalog.Filter{PassingOnly: true}, []string{"n1/web-1"}},
		{"warning is not passing", "db", catalog.Filter{PassingOnly: true}, nil},
		{"node meta", "web", catalog.Filter{NodeMeta: map[string]string{"rack": "a"}}, []string{"n1/web-1", "n3/web-3"}},
		{"node meta and tag", "web", catalog.Filter{NodeMeta: map[string]string{"rack": "a"}, Tags: []string{"v2"}}, []string{"n3/web-3"}},
		{"unknown service", "nope", catalog.Filter{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serviceIDs(c, tt.service, tt.filter); !slices.Equal(got, tt.want) {
				t.Errorf("ServiceInstances(%s, %+v) = %v, want %v", tt.service, tt.filter, got, tt.want)
			}
		})
	}
}

func TestInstanceHealth(t *testing.T) {
	c := fixture(t)
	tests := []struct {
		id         string
		wantStatus catalog.Status
		wantChecks []string // IDs in order: serfHealth, node checks, service checks
	}{
		{"web-1", catalog.StatusPassing, []string{"serfHealth", "web-1-http"}},
		{"web-2", catalog.StatusCritical, []string{"serfHealth", "disk", "web-2-http"}},
		{"web-3", catalog.StatusCritical, []string{"serfHealth"}}, // suspect node
	}
	got := c.ServiceInstances("web", catalog.Filter{})
	for i, tt := range tests {
		in := got[i]
		var ids []string
		for _, ch := range in.Checks {
			ids = append(ids, ch.ID)
		}
		if in.Service.ID != tt.id || in.Status != tt.wantStatus || !slices.Equal(ids, tt.wantChecks) {
			t.Errorf("instance %d = %s %s %v, want %s %s %v", i, in.Service.ID, in.Status, ids, tt.id, tt.wantStatus, tt.wantChecks)
		}
	}
	if got[0].Node.Node.Address != "10.0.0.1" || got[2].Node.Liveness != catalog.LivenessSuspect {
		t.Errorf("node entries = %+v / %+v", got[0].Node, got[2].Node)
	}
}

func TestQueryResultsAreCopies(t *testing.T) {
	c := fixture(t)
	got := c.ServiceInstances("web", catalog.Filter{})
	got[0].Service.Tags[0] = "mutated"
	got[0].Node.Node.Meta["rack"] = "mutated"
	again := c.ServiceInstances("web", catalog.Filter{})
	if again[0].Service.Tags[0] != "v1" || again[0].Node.Node.Meta["rack"] != "a" {
		t.Fatal("mutating a query result changed the catalog")
	}
}

func TestServices(t *testing.T) {
	c := fixture(t)
	got := c.Services(catalog.Filter{})
	want := []catalog.ServiceSummary{{Name: "db", Tags: []string{}}, {Name: "web", Tags: []string{"primary", "v1", "v2"}}}
	if !equalSummaries(got, want) {
		t.Errorf("Services() = %v, want %v", got, want)
	}
	got = c.Services(catalog.Filter{NodeMeta: map[string]string{"rack": "b"}})
	want = []catalog.ServiceSummary{{Name: "web", Tags: []string{"v1"}}}
	if !equalSummaries(got, want) {
		t.Errorf("Services(rack=b) = %v, want %v", got, want)
	}
}

func equalSummaries(a, b []catalog.ServiceSummary) bool {
	return slices.EqualFunc(a, b, func(x, y catalog.ServiceSummary) bool {
		return x.Name == y.Name && slices.Equal(x.Tags, y.Tags)
	})
}

func TestNodes(t *testing.T) {
	c := fixture(t)
	names := func(es []catalog.NodeEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Node.Name)
		}
		return out
	}
	if got := names(c.Nodes(catalog.Filter{})); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Errorf("Nodes() = %v", got)
	}
	if got := names(c.Nodes(catalog.Filter{NodeMeta: map[string]string{"rack": "a"}})); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Errorf("Nodes(rack=a) = %v", got)
	}
	n, svcs, err := c.NodeServices("n1")
	if err != nil || n.Node.Name != "n1" || len(svcs) != 2 || svcs[0].ID != "db-1" || svcs[1].ID != "web-1" {
		t.Errorf("NodeServices(n1) = %+v, %+v, %v", n, svcs, err)
	}
	if _, _, err := c.NodeServices("nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("NodeServices(nope) error = %v, want ErrNotFound", err)
	}
}

func checkKeys(es []catalog.CheckEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Node+"/"+e.Check.ID+"="+e.Check.Status.String())
	}
	return out
}

func TestCheckQueries(t *testing.T) {
	c := fixture(t)
	tests := []struct {
		name string
		got  []catalog.CheckEntry
		want []string
	}{
		{"node checks", c.NodeChecks("n2"), []string{"n2/disk=warning", "n2/serfHealth=passing", "n2/web-2-http=critical"}},
		{"unknown node", c.NodeChecks("zz"), nil},
		{"service checks", c.ServiceChecks("web", catalog.Filter{}), []string{"n1/web-1-http=passing", "n2/web-2-http=critical"}},
		{"service checks by node meta", c.ServiceChecks("web", catalog.Filter{NodeMeta: map[string]string{"rack": "b"}}), []string{"n2/web-2-http=critical"}},
		{"critical", c.ChecksInState(catalog.StatusCritical, catalog.Filter{}), []string{"n2/web-2-http=critical", "n3/serfHealth=critical"}},
		{"warning", c.ChecksInState(catalog.StatusWarning, catalog.Filter{}), []string{"n1/db-1-tcp=warning", "n2/disk=warning"}},
		{"any", c.ChecksInState(0, catalog.Filter{NodeMeta: map[string]string{"rack": "a"}}),
			[]string{"n1/db-1-tcp=warning", "n1/serfHealth=passing", "n1/web-1-http=passing", "n3/serfHealth=critical"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkKeys(tt.got); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if es := c.ServiceChecks("web", catalog.Filter{}); es[0].ServiceName != "web" {
		t.Errorf("ServiceName = %q, want web", es[0].ServiceName)
	}
}

// manyInstances builds n instances of "web" on n nodes, all passing, with weights.
func manyInstances(t *testing.T, n int, weight func(i int) catalog.Weights) *catalog.Catalog {
	t.Helper()
	c, _ := catalogtest.New(t, catalog.Config{})
	for i := range n {
		name := "n" + string(rune('a'+i))
		w := catalog.NewWriter(name, 1)
		s := catalogtest.Service("web", "web", 80)
		s.Weights = weight(i)
		apply(t, c, w.PutService(s))
	}
	return c
}

func TestShuffledOrder(t *testing.T) {
	c := manyInstances(t, 5, func(int) catalog.Weights { return catalog.DefaultWeights })
	sorted := serviceIDs(c, "web", catalog.Filter{})
	seen := map[string]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var ids []string
		for _, in := range c.ServiceInstances("web", catalog.Filter{Order: catalog.OrderShuffled, Rand: rng}) {
			ids = append(ids, in.Node.Node.Name+"/"+in.Service.ID)
		}
		if got := slices.Sorted(slices.Values(ids)); !slices.Equal(got, sorted) {
			t.Fatalf("shuffle lost or duplicated instances: %v", ids)
		}
		seen[ids[0]] = true
	}
	if len(seen) < 3 {
		t.Errorf("50 shuffles put only %v first, want variety", seen)
	}
}

func TestWeightedOrder(t *testing.T) {
	// Instance 0 weighs 9, the others 1 each: it should come first about 9/13 of the time.
	c := manyInstances(t, 5, func(i int) catalog.Weights {
		if i == 0 {
			return catalog.Weights{Passing: 9, Warning: 1}
		}
		return catalog.DefaultWeights
	})
	rng := rand.New(rand.NewPCG(3, 4))
	first := 0
	const runs = 2000
	for range runs {
		if got := c.ServiceInstances("web", catalog.Filter{Order: catalog.OrderWeighted, Rand: rng}); got[0].Node.Node.Name == "na" {
			first++
		}
	}
	// Expected 9/13 ≈ 0.692; with 2000 runs the standard deviation is ~0.01.
	if share := float64(first) / runs; share < 0.64 || share > 0.74 {
		t.Errorf("heavy instance first in %.3f of runs, want about 0.692", share)
	}
}

func TestWeightedOrderPutsCriticalLast(t *testing.T) {
	c := manyInstances(t, 4, func(int) catalog.Weights { return catalog.DefaultWeights })
	w := catalog.NewWriter("na", 1)
	w.Supersede(catalog.Version{Gen: 1})
	apply(t, c, w.PutService(catalogtest.Service("web", "web", 80)),
		w.PutCheck(catalogtest.Check("down", "web", catalog.StatusCritical)))
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100 {
		got := c.ServiceInstances("web", catalog.Filter{Order: catalog.OrderWeighted, Rand: rng})
		if last := got[len(got)-1]; last.Node.Node.Name != "na" {
			t.Fatalf("critical instance not last: %v first, %v last", got[0].Node.Node.Name, last.Node.Node.Name)
		}
	}
}
