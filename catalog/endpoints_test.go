package catalog_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// Endpoints agrees with ServiceInstances on who is there, where and how healthy.
func TestEndpoints(t *testing.T) {
	c := fixture(t)
	tests := []struct {
		name, service, tag string
		want               []string
	}{
		{"all", "web", "", []string{"n1/web-1 10.0.0.1:80 passing", "n2/web-2 10.0.0.2:80 critical", "n3/web-3 10.0.0.3:80 critical"}},
		{"tag", "web", "v1", []string{"n1/web-1 10.0.0.1:80 passing", "n2/web-2 10.0.0.2:80 critical"}},
		{"warning", "db", "", []string{"n1/db-1 10.0.0.1:5432 warning"}},
		{"unknown", "nope", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ep := range c.Endpoints(nil, tt.service, tt.tag) {
				got = append(got, fmt.Sprintf("%s/%s %s:%d %s", ep.Node, ep.ServiceID, ep.Address, ep.Port, ep.Status))
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			var want []string
			for _, in := range c.ServiceInstances(tt.service, catalog.Filter{}) {
				if tt.tag == "" || in.Service.HasTag(tt.tag) {
					want = append(want, fmt.Sprintf("%s/%s %s", in.Node.Node.Name, in.Service.ID, in.Status))
				}
			}
			var short []string
			for _, ep := range c.Endpoints(nil, tt.service, tt.tag) {
				short = append(short, fmt.Sprintf("%s/%s %s", ep.Node, ep.ServiceID, ep.Status))
			}
			slices.Sort(short)
			if !slices.Equal(short, want) {
				t.Errorf("Endpoints %q disagrees with ServiceInstances %q", short, want)
			}
		})
	}
}

func TestServiceIndexes(t *testing.T) {
	c := fixture(t)
	idx := map[string]uint64{"stale": 1}
	c.ServiceIndexes(idx)
	if _, ok := idx["stale"]; ok || len(idx) != 2 || idx["web"] == 0 || idx["db"] == 0 {
		t.Fatalf("ServiceIndexes = %v, want web and db only", idx)
	}
	before := idx["db"]
	w := catalog.NewWriter("n9", 1)
	if _, err := c.Apply(w.PutService(&catalog.Service{ID: "web-9", Name: "web", Port: 1, Weights: catalog.DefaultWeights})); err != nil {
		t.Fatal(err)
	}
	c.ServiceIndexes(idx)
	if idx["db"] != before || idx["web"] != c.TopicIndex(catalog.ServiceTopic("web")) {
		t.Errorf("after a change of web: %v (db was %d)", idx, before)
	}
}

// Endpoints' statuses follow every way a check comes and goes (put, replaced,
// deleted, dropped with its origin's generation), as ServiceInstances sees them: it
// reads each origin's live checks, kept aside from its records.
func TestEndpointsFollowChecks(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	w := catalog.NewWriter("n1", 1)
	apply(t, c, w.PutNode(catalogtest.Node("n1", "10.0.0.1")),
		w.PutService(catalogtest.Service("web-1", "web", 80)), w.PutService(catalogtest.Service("web-2", "web", 80)))
	del := func(id string) catalog.Record { return w.Delete(catalog.Key{Kind: catalog.KindCheck, ID: id}) }
	steps := []struct {
		name string
		recs func() []catalog.Record
		want string
	}{
		{"no checks", func() []catalog.Record { return nil }, "web-1 passing, web-2 passing"},
		{"a service check", func() []catalog.Record {
			return []catalog.Record{w.PutCheck(catalogtest.Check("c1", "web-1", catalog.StatusCritical))}
		}, "web-1 critical, web-2 passing"},
		{"replaced", func() []catalog.Record {
			return []catalog.Record{w.PutCheck(catalogtest.Check("c1", "web-1", catalog.StatusWarning))}
		}, "web-1 warning, web-2 passing"},
		{"a node check", func() []catalog.Record {
			return []catalog.Record{w.PutCheck(catalogtest.Check("disk", "", catalog.StatusCritical))}
		}, "web-1 critical, web-2 critical"},
		{"node check deleted", func() []catalog.Record { return []catalog.Record{del("disk")} }, "web-1 warning, web-2 passing"},
		{"service check deleted", func() []catalog.Record { return []catalog.Record{del("c1")} }, "web-1 passing, web-2 passing"},
		{"again", func() []catalog.Record {
			return []catalog.Record{w.PutCheck(catalogtest.Check("c2", "web-2", catalog.StatusCritical))}
		}, "web-1 passing, web-2 critical"},
		{"a new generation without it", func() []catalog.Record {
			w = catalog.NewWriter("n1", 2)
			return []catalog.Record{w.PutNode(catalogtest.Node("n1", "10.0.0.1")),
				w.PutService(catalogtest.Service("web-1", "web", 80)), w.PutService(catalogtest.Service("web-2", "web", 80))}
		}, "web-1 passing, web-2 passing"},
	}
	for _, st := range steps {
		apply(t, c, st.recs()...)
		var got, want []string
		for _, ep := range c.Endpoints(nil, "web", "") {
			got = append(got, fmt.Sprintf("%s %s", ep.ServiceID, ep.Status))
		}
		for _, in := range c.ServiceInstances("web", catalog.Filter{}) {
			want = append(want, fmt.Sprintf("%s %s", in.Service.ID, in.Status))
		}
		slices.Sort(got)
		slices.Sort(want)
		if g := strings.Join(got, ", "); g != st.want || !slices.Equal(got, want) {
			t.Errorf("%s: Endpoints %q, want %q (ServiceInstances: %q)", st.name, g, st.want, want)
		}
	}
}
