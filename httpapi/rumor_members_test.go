package httpapi

import (
	"slices"
	"testing"
	"time"
)

func TestRumorMembers(t *testing.T) {
	f := newFixture(t)
	since := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	f.ag.members[1].Since = since
	f.ag.members[1].Coordinate = &Coordinate{Vec: []float64{0.001, 0, 0, 0, 0, 0, 0, 0}, Error: 0.5, Height: 1e-5}
	f.ag.members[1].RTT = 1500 * time.Microsecond
	rec := f.do(t, "GET", "/v1/rumor/members", "")
	checkReadHeaders(t, rec)
	got := decode[[]map[string]any](t, rec)
	if len(got) != 4 {
		t.Fatalf("%d members, want 4", len(got))
	}
	n2 := got[1]
	coord, _ := n2["Coordinate"].(map[string]any)
	if n2["Name"] != "n2" || n2["State"] != "suspect" || n2["Addr"] != "10.0.0.2" || n2["Port"] != 7946.0 ||
		n2["StateSince"] != "2026-11-25T07:00:00Z" || n2["RTT"] != "1.5ms" || n2["RTTSeconds"] != 0.0015 ||
		coord == nil || coord["Error"] != 0.5 || len(coord["Vec"].([]any)) != 8 {
		t.Errorf("n2 = %v", n2)
	}
	if n1 := got[0]; n1["Coordinate"] != nil || n1["StateSince"] != "" || n1["RTT"] != "" {
		t.Errorf("n1 without coordinate or time = %v", n1)
	}
	if got := names(t, f.do(t, "GET", "/v1/rumor/members?filter="+urlq(`State != "alive"`), ""),
		func(m *rumorMember) string { return m.Name + "/" + m.State }); !slices.Equal(got, []string{"n2/suspect", "n3/failed", "n4/left"}) {
		t.Errorf("filtered members = %v", got)
	}
}
