package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func urlq(s string) string {
	r := strings.NewReplacer(" ", "%20", `"`, "%22", "=", "%3D", "!", "%21", "&", "%26", "{", "%7B", "}", "%7D")
	return r.Replace(s)
}

func TestFilter(t *testing.T) {
	f, _ := newChecksFixture(t)
	count := func(t *testing.T, rec *httptest.ResponseRecorder) int {
		t.Helper()
		checkReadHeaders(t, rec)
		switch strings.TrimSpace(rec.Body.String())[0] {
		case '[':
			return len(decode[[]any](t, rec))
		default:
			return len(decode[map[string]any](t, rec))
		}
	}
	for _, c := range []struct {
		path, filter string
		want         int
	}{
		{"/v1/catalog/services", `ServiceTags contains "v2"`, 1},
		{"/v1/catalog/services", `NodeMeta.rack == "r1"`, 1},
		{"/v1/catalog/service/web", `ServicePort == 8080`, 1},
		{"/v1/catalog/service/web", `ServiceMeta.version == "1"`, 1},
		{"/v1/catalog/service/web", `ServiceMeta.missing == "1"`, 0},
		{"/v1/catalog/nodes", `Meta.rack == "r1"`, 1},
		{"/v1/catalog/nodes", `Node matches "^n"`, 2},
		{"/v1/health/service/web", `Service.Port == 80 and Node.Node == "n1"`, 1},
		{"/v1/health/service/web", `any Checks as c { c.Status == "critical" }`, 1},
		{"/v1/health/checks/web", `Status == "critical"`, 1},
		{"/v1/health/state/any", `CheckID == "serfHealth"`, 2},
		{"/v1/health/node/n2", `ServiceName == "web"`, 1},
		{"/v1/agent/services", `Port == 80`, 1},
		{"/v1/agent/checks", `Type == "ttl"`, 1},
		{"/v1/agent/members", `Status == 4`, 1},
	} {
		t.Run(c.path+"?filter="+c.filter, func(t *testing.T) {
			if got := count(t, f.do(t, "GET", c.path+"?filter="+urlq(c.filter), "")); got != c.want {
				t.Errorf("%d results, want %d", got, c.want)
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	f, _ := newChecksFixture(t)
	for _, c := range []struct{ name, target, want string }{
		{"syntax", "/v1/catalog/nodes?filter=" + urlq(`Meta.rack ==`), `invalid filter "Meta.rack =="`},
		{"unknown field", "/v1/health/service/web?filter=" + urlq(`Service.Bogus == 1`), `invalid filter "Service.Bogus == 1"`},
		{"unknown field, empty answer", "/v1/catalog/service/nope?filter=" + urlq(`Bogus == 1`), "Bogus"},
		{"wrong type", "/v1/catalog/service/web?filter=" + urlq(`ServicePort == "abc"`), "invalid filter"},
		{"agent self", "/v1/agent/self?filter=" + urlq(`Name == "x"`), "not supported on /v1/agent/self"},
		{"datacenters", "/v1/catalog/datacenters?filter=" + urlq(`x == "y"`), "not supported"},
		{"status", "/v1/status/leader?filter=" + urlq(`x == "y"`), "not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := f.do(t, "GET", c.target, "")
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s: %d %q, want 400 containing %q", c.target, rec.Code, rec.Body, c.want)
			}
		})
	}
	// A bad filter is refused before the request blocks.
	idx := checkReadHeaders(t, f.do(t, "GET", "/v1/catalog/services", ""))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", fmt.Sprintf("/v1/catalog/services?index=%d&wait=10m&filter=%s", idx, urlq(`Nope == 1`)), nil)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || ctx.Err() != nil {
		t.Errorf("blocking query with a bad filter: %d %q (ctx %v), want an immediate 400", rec.Code, rec.Body, ctx.Err())
	}
}
