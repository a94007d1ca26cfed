package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

func TestOutOfScope(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1/kv/foo", "key/value store"},
		{"PUT", "/v1/kv/foo", "key/value store"},
		{"PUT", "/v1/session/create", "sessions"},
		{"GET", "/v1/acl/tokens", "ACLs"},
		{"GET", "/v1/connect/ca/roots", "Connect"},
		{"GET", "/v1/agent/connect/ca/roots", "Connect"},
		{"GET", "/v1/query", "prepared queries"},
		{"PUT", "/v1/txn", "transactions"},
		{"GET", "/v1/snapshot", "snapshots"},
		{"GET", "/v1/config/proxy-defaults", "config entries"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			rec := f.do(t, c.method, c.path, "")
			if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "rumor does not implement") ||
				!strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%d %q, want 501 naming %q", rec.Code, rec.Body, c.want)
			}
		})
	}
}
