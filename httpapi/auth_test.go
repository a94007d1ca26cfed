package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	if _, err := New(Config{Catalog: newFixture(t).cat, Agent: newFixture(t).ag, TokenReads: true}); err == nil {
		t.Error("TokenReads without Token: no error")
	}
	const reg = `{"Name": "x"}`
	for _, c := range []struct {
		name       string
		reads      bool
		method     string
		target     string
		hdr, value string
		code       int
		want       string
	}{
		{"write without token", false, "PUT", "/v1/agent/service/register", "", "", 403, "Permission denied: this rumor agent requires a token for writes"},
		{"write, wrong token", false, "PUT", "/v1/agent/service/register", "X-Consul-Token", "guess", 403, "not this agent's token"},
		{"write, token prefix", false, "PUT", "/v1/agent/service/register", "X-Consul-Token", "s3cre", 403, "not this agent's token"},
		{"write, basic auth", false, "PUT", "/v1/agent/service/register", "Authorization", "Basic czNjcmV0", 403, "requires a token"},
		{"write, empty bearer", false, "PUT", "/v1/agent/service/register", "Authorization", "Bearer ", 403, "requires a token"},
		{"write, X-Consul-Token", false, "PUT", "/v1/agent/service/register", "X-Consul-Token", "s3cret", 200, ""},
		{"write, bearer", false, "PUT", "/v1/agent/service/register", "Authorization", "Bearer s3cret", 200, ""},
		{"write, bearer lower case", false, "PUT", "/v1/agent/service/register", "Authorization", "bearer s3cret", 200, ""},
		{"deregister without token", false, "PUT", "/v1/agent/service/deregister/web-1", "", "", 403, "requires a token"},
		{"read without token", false, "GET", "/v1/catalog/services", "", "", 200, ""},
		{"read, reads protected", true, "GET", "/v1/catalog/services", "", "", 403, "requires a token for every request"},
		{"read, reads protected, wrong", true, "GET", "/v1/agent/self", "X-Consul-Token", "nope", 403, "not this agent's token"},
		{"read, reads protected, token", true, "GET", "/v1/catalog/services", "X-Consul-Token", "s3cret", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			h, err := New(Config{Catalog: f.cat, Agent: f.ag, Token: "s3cret", TokenReads: c.reads})
			if err != nil {
				t.Fatal(err)
			}
			before := len(f.ag.LocalServices())
			req := httptest.NewRequestWithContext(t.Context(), c.method, c.target, strings.NewReader(reg))
			if c.hdr != "" {
				req.Header.Set(c.hdr, c.value)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body, c.code, c.want)
			}
			if after := len(f.ag.LocalServices()); c.code == 403 && after != before {
				t.Errorf("a refused write changed state: %d services, had %d", after, before)
			}
		})
	}
}
