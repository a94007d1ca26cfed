package httpapi

import (
	"slices"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

func TestHealthService(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		target string
		want   []string
	}{
		{"/v1/health/service/web", []string{"n1/web-1", "n2/web-2"}},
		{"/v1/health/service/web?passing", []string{"n1/web-1"}},
		{"/v1/health/service/web?passing=1", []string{"n1/web-1"}},
		{"/v1/health/service/web?passing=false", []string{"n1/web-1", "n2/web-2"}},
		{"/v1/health/service/web?tag=v2", []string{"n2/web-2"}},
		{"/v1/health/service/web?tag=v2&passing", nil},
		{"/v1/health/service/nope?passing", nil},
	} {
		t.Run(c.target, func(t *testing.T) {
			rec := f.do(t, "GET", c.target, "")
			checkReadHeaders(t, rec)
			got := decode[[]serviceEntry](t, rec)
			var ids []string
			for _, e := range got {
				ids = append(ids, e.Node.Node+"/"+e.Service.ID)
			}
			if !slices.Equal(ids, c.want) {
				t.Errorf("got %v, want %v", ids, c.want)
			}
		})
	}
	rec := f.do(t, "GET", "/v1/health/service/web?tag=v2", "")
	e := decode[[]serviceEntry](t, rec)[0]
	if len(e.Checks) != 2 || e.Checks[0].CheckID != "serfHealth" || e.Checks[0].Status != "passing" ||
		e.Checks[1].CheckID != "web-2-http" || e.Checks[1].Status != "critical" || e.Checks[1].ServiceName != "web" ||
		e.Checks[1].Definition.Interval != "10s" || e.Checks[0].Definition.Interval != "0s" || e.Checks[1].Node != "n2" {
		t.Errorf("checks = %+v", e.Checks)
	}
	if e.Node.ID != catalogtest.NodeID("n2") || e.Service.Service != "web" || e.Service.Port != 8080 {
		t.Errorf("entry = %+v", e)
	}
	// A failed node's instances are critical through serfHealth.
	f.cat.SetLiveness("n1", catalog.LivenessFailed)
	rec = f.do(t, "GET", "/v1/health/service/web?passing", "")
	if got := decode[[]serviceEntry](t, rec); len(got) != 0 {
		t.Errorf("passing instances with n1 failed: %d, want 0", len(got))
	}
}
