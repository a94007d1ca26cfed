package catalog_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
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
