package httpapi

import (
	"slices"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/status/leader", "")
	checkReadHeaders(t, rec)
	// A quoted address, as Consul sends: consul/api decodes it into a string.
	if body := strings.TrimSpace(rec.Body.String()); body != `"10.0.0.1:7946"` {
		t.Errorf("leader = %s, want \"10.0.0.1:7946\"", body)
	}
	rec = f.do(t, "GET", "/v1/status/peers", "")
	checkReadHeaders(t, rec)
	// n1 (itself) and n2 (suspect, still a member); not n3 (failed) or n4 (left).
	if got := decode[[]string](t, rec); !slices.Equal(got, []string{"10.0.0.1:7946", "10.0.0.2:7946"}) {
		t.Errorf("peers = %v", got)
	}
}
