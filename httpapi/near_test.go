package httpapi

import (
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// fakeCoords is a Coordinates with fixed round-trip times.
type fakeCoords map[string]map[string]time.Duration

func (c fakeCoords) RTTsFrom(from string) (map[string]time.Duration, bool) {
	m, ok := c[from]
	return m, ok
}

func TestNear(t *testing.T) {
	f := newFixture(t)
	w := catalog.NewWriter("n3", 1)
	if _, err := f.cat.Apply(w.PutNode(catalogtest.Node("n3", "10.0.0.3")),
		w.PutService(catalogtest.Service("web-3", "web", 80))); err != nil {
		t.Fatal(err)
	}
	coords := fakeCoords{
		// n3 has no coordinate: it goes last.
		"n1": {"n1": 0, "n2": 5 * time.Millisecond},
		"n2": {"n2": 0, "n1": 5 * time.Millisecond},
	}
	h, err := New(Config{Catalog: f.cat, Agent: f.ag, Coordinates: coords})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	svc := func(s *catalogService) string { return s.Node }
	entry := func(e *serviceEntry) string { return e.Node.Node }
	nd := func(n *node) string { return n.Node }
	for _, c := range []struct {
		target string
		got    func(*httptest.ResponseRecorder) []string
		want   []string
	}{
		{"/v1/catalog/service/web", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n1", "n2", "n3"}},
		{"/v1/catalog/service/web?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n2", "n1", "n3"}},
		{"/v1/catalog/service/web?near=_agent", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n1", "n2", "n3"}},
		{"/v1/catalog/service/web?near=n3", func(r *httptest.ResponseRecorder) []string { return names(t, r, svc) }, []string{"n1", "n2", "n3"}}, // no coordinate: order kept
		{"/v1/health/service/web?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, entry) }, []string{"n2", "n1", "n3"}},
		{"/v1/catalog/nodes?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, nd) }, []string{"n2", "n1", "n3"}},
		{"/v1/health/state/passing?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, checkName) },
			[]string{"n2/serfHealth", "n1/serfHealth", "n3/serfHealth"}},
		{"/v1/health/checks/web?near=n2", func(r *httptest.ResponseRecorder) []string { return names(t, r, checkName) }, []string{"n2/web-2-http"}},
	} {
		t.Run(c.target, func(t *testing.T) {
			if got := c.got(f.do(t, "GET", c.target, "")); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}
