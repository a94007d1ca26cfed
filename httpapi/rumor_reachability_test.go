package httpapi

import (
	"slices"
	"testing"
)

// fakeReach says addresses in down are unreachable.
type fakeReach struct {
	down  map[string]bool
	asked []string
}

func (f *fakeReach) Reachable(addr string) bool {
	f.asked = append(f.asked, addr)
	return !f.down[addr]
}
func (f *fakeReach) Active() bool { return len(f.down) > 0 }
func (f *fakeReach) Unreachable() []UnreachableEntry {
	out := []UnreachableEntry{}
	for a := range f.down {
		out = append(out, UnreachableEntry{Addr: a, Source: "probe"})
	}
	return out
}

func TestReachable(t *testing.T) {
	f := newFixture(t)
	reach := &fakeReach{down: map[string]bool{}}
	f.h.reach = reach
	f.h.mux.HandleFunc("GET /v1/rumor/reachability", f.h.rumorReachability)
	ids := func(target string) []string {
		t.Helper()
		var out []string
		for _, e := range decode[[]serviceEntry](t, f.do(t, "GET", target, "")) {
			out = append(out, e.Node.Node+"/"+e.Service.ID)
		}
		return out
	}
	if got, want := ids("/v1/health/service/web?reachable"), []string{"n1/web-1", "n2/web-2"}; !slices.Equal(got, want) {
		t.Fatalf("all reachable: got %v, want %v", got, want)
	}
	if len(reach.asked) != 2 {
		t.Errorf("asked about %v, want both instances", reach.asked)
	}
	// n1's web-1 is on the node's address (the fake agent's) at port 80.
	web1 := reach.asked[0]
	reach.down[web1] = true
	if got, want := ids("/v1/health/service/web"), []string{"n2/web-2", "n1/web-1"}; !slices.Equal(got, want) {
		t.Errorf("reachable first: got %v, want %v", got, want)
	}
	if got, want := ids("/v1/health/service/web?reachable"), []string{"n2/web-2"}; !slices.Equal(got, want) {
		t.Errorf("?reachable: got %v, want %v", got, want)
	}
	got := decode[[]UnreachableEntry](t, f.do(t, "GET", "/v1/rumor/reachability", ""))
	if len(got) != 1 || got[0].Addr != web1 {
		t.Errorf("/v1/rumor/reachability = %+v, want %s", got, web1)
	}
	delete(reach.down, web1)
	if got, want := ids("/v1/health/service/web?reachable"), []string{"n1/web-1", "n2/web-2"}; !slices.Equal(got, want) {
		t.Errorf("after it came back: got %v, want %v", got, want)
	}
}
