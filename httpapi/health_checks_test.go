package httpapi

import (
	"slices"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
)

func TestHealthNodeChecksState(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		target string
		want   []string
	}{
		{"/v1/health/node/n2", []string{"n2/serfHealth", "n2/web-2-http"}},
		{"/v1/health/node/n1", []string{"n1/serfHealth"}},
		{"/v1/health/node/nope", nil},
		{"/v1/health/checks/web", []string{"n2/web-2-http"}},
		{"/v1/health/checks/db", nil},
		{"/v1/health/checks/nope", nil},
		{"/v1/health/checks/web?node-meta=rack:r1", nil},
		{"/v1/health/state/any", []string{"n1/serfHealth", "n2/serfHealth", "n2/web-2-http"}},
		{"/v1/health/state/passing", []string{"n1/serfHealth", "n2/serfHealth"}},
		{"/v1/health/state/critical", []string{"n2/web-2-http"}},
		{"/v1/health/state/warning", nil},
		{"/v1/health/state/maintenance", nil},
		{"/v1/health/state/any?node-meta=rack:r1", []string{"n1/serfHealth"}},
	} {
		t.Run(c.target, func(t *testing.T) {
			got := names(t, f.do(t, "GET", c.target, ""), checkName)
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	// Every field of a service's check, as Consul's HealthCheck.
	hc := decode[[]healthCheck](t, f.do(t, "GET", "/v1/health/state/critical", ""))[0]
	if hc.Name != "HTTP" || hc.Status != "critical" || hc.Output != "connection refused" || hc.ServiceID != "web-2" ||
		hc.ServiceName != "web" || !slices.Equal(hc.ServiceTags, []string{"v2"}) || hc.Type != "http" ||
		hc.Definition.Interval != "10s" || hc.Definition.DeregisterCriticalServiceAfter != "0s" || hc.CreateIndex == 0 {
		t.Errorf("check = %+v", hc)
	}
	// A failed node's serfHealth is critical.
	f.cat.SetLiveness("n2", catalog.LivenessFailed)
	got := names(t, f.do(t, "GET", "/v1/health/state/critical", ""), checkName)
	if !slices.Equal(got, []string{"n2/serfHealth", "n2/web-2-http"}) {
		t.Errorf("critical with n2 failed = %v", got)
	}
}
