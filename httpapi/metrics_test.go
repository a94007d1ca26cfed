package httpapi

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

func TestMetricsEndpointAndRequestDurations(t *testing.T) {
	cat, _ := catalogtest.New(t, catalog.Config{})
	reg := prometheus.NewRegistry()
	h, err := New(Config{Catalog: cat, Agent: newFakeAgent(cat), Metrics: reg, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h, cat: cat}
	count := func(route, code string) uint64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "rumor_http_request_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["route"] == route && labels["code"] == code {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
		return 0
	}
	for range 3 {
		f.do(t, "GET", "/v1/health/service/web?passing", "")
	}
	f.do(t, "GET", "/v1/health/service/db", "")
	f.do(t, "GET", "/v1/catalog/services?index=x", "")
	f.do(t, "GET", "/no/such/thing", "")
	f.do(t, "POST", "/v1/agent/self", "")
	for _, tc := range []struct {
		route, code string
		want        uint64
	}{
		{"GET /v1/health/service/{name}", "200", 4}, // by pattern: web and db together
		{"GET /v1/catalog/services", "400", 1},
		{"/", "404", 1},
		{"/", "405", 1},
	} {
		if got := count(tc.route, tc.code); got != tc.want {
			t.Errorf("requests{route=%q,code=%s} = %d, want %d", tc.route, tc.code, got, tc.want)
		}
	}

	rec := f.do(t, "GET", "/metrics", "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.Contains(rec.Body.String(), `rumor_http_request_duration_seconds_count{code="200",route="GET /v1/health/service/{name}"} 4`) {
		t.Errorf("/metrics lacks the request count:\n%s", rec.Body)
	}
	if got := count("GET /metrics", "200"); got != 1 {
		t.Errorf("the scrape itself counted %d times, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Errorf("gather: %d series, %v", n, err)
	}
}

// Without Metrics there is no /metrics, and without a Registerer nothing is timed.
func TestMetricsOptional(t *testing.T) {
	f := newFixture(t)
	if rec := f.do(t, "GET", "/metrics", ""); rec.Code != 404 {
		t.Errorf("/metrics without a registry: %d, want 404", rec.Code)
	}
	if f.h.root != f.h.mux {
		t.Error("handler instrumented without a Registerer")
	}
}
