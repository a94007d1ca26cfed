package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// fakeMembership records calls and answers like the agent: "bad" is an invalid
// address, "10.9.9.9" does not answer; n3 is failed, n1 alive, others unknown.
type fakeMembership struct {
	mu    sync.Mutex
	calls []string
	left  bool
}

func (m *fakeMembership) Join(_ context.Context, addrs []string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "join "+strings.Join(addrs, ","))
	switch addrs[0] {
	case "bad":
		return 0, fmt.Errorf("join: %w: not an address", catalog.ErrInvalid)
	case "10.9.9.9":
		return 0, errors.New("no answer")
	}
	return len(addrs), nil
}

func (m *fakeMembership) Leave(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "leave")
	m.left = true
	return nil
}

func (m *fakeMembership) ForceLeave(_ context.Context, node string, prune bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, fmt.Sprintf("force-leave %s prune=%t", node, prune))
	switch node {
	case "n3":
		return nil
	case "n1":
		return fmt.Errorf("force-leave: %w: it is alive", ErrConflict)
	}
	return fmt.Errorf("force-leave: %w", catalog.ErrNotFound)
}

func TestMembershipEndpoints(t *testing.T) {
	cat, _ := catalogtest.New(t, catalog.Config{})
	mem := &fakeMembership{}
	h, err := New(Config{Catalog: cat, Agent: newFakeAgent(cat), Membership: mem})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h, cat: cat}
	for _, c := range []struct {
		method, target string
		code           int
		call           string // the call the agent must have seen; "" for none
		body           string // substring of the answer
	}{
		{"PUT", "/v1/agent/join/10.0.0.2:7946", 200, "join 10.0.0.2:7946", ""},
		{"PUT", "/v1/agent/join/%5B::1%5D:7946", 200, "join [::1]:7946", ""},
		{"PUT", "/v1/agent/join/10.0.0.2?wan=false", 200, "join 10.0.0.2", ""},
		{"PUT", "/v1/agent/join/10.0.0.2?wan", 501, "", "no WAN pool"},
		{"PUT", "/v1/agent/join/10.0.0.2?wan=1", 501, "", "no WAN pool"},
		{"PUT", "/v1/agent/join/10.0.0.2?wan=maybe", 400, "", "invalid wan"},
		{"PUT", "/v1/agent/join/bad", 400, "join bad", "invalid join address"},
		{"PUT", "/v1/agent/join/10.9.9.9", 500, "join 10.9.9.9", "Failed to join: no answer"},
		{"GET", "/v1/agent/join/10.0.0.2", 405, "", "not allowed"},
		{"PUT", "/v1/agent/force-leave/n3", 200, "force-leave n3 prune=false", ""},
		{"PUT", "/v1/agent/force-leave/n3?prune", 200, "force-leave n3 prune=true", ""},
		{"PUT", "/v1/agent/force-leave/n3?prune=0", 200, "force-leave n3 prune=false", ""},
		{"PUT", "/v1/agent/force-leave/n3?prune=x", 400, "", "invalid prune"},
		{"PUT", "/v1/agent/force-leave/n3?wan", 501, "", "no WAN pool"},
		{"PUT", "/v1/agent/force-leave/ghost", 404, "force-leave ghost prune=false", `Unknown node "ghost"`},
		{"PUT", "/v1/agent/force-leave/n1", 409, "force-leave n1 prune=false", "Only failed nodes can be forced out"},
		{"PUT", "/v1/agent/leave", 200, "leave", ""},
	} {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			mem.mu.Lock()
			before := len(mem.calls)
			mem.mu.Unlock()
			rec := f.do(t, c.method, c.target, "")
			if rec.Code != c.code {
				t.Errorf("status %d, want %d: %s", rec.Code, c.code, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), c.body) {
				t.Errorf("body %q lacks %q", rec.Body, c.body)
			}
			mem.mu.Lock()
			got := mem.calls[before:]
			mem.mu.Unlock()
			switch {
			case c.call == "" && len(got) > 0:
				t.Errorf("the agent saw %v, want no call", got)
			case c.call != "" && (len(got) != 1 || got[0] != c.call):
				t.Errorf("the agent saw %v, want [%s]", got, c.call)
			}
		})
	}
	if !mem.left {
		t.Error("leave did not reach the agent")
	}
}

func TestMembershipEndpointsNeedMembership(t *testing.T) {
	f := newFixture(t) // no Membership
	for _, target := range []string{"/v1/agent/join/10.0.0.2", "/v1/agent/leave", "/v1/agent/force-leave/n3"} {
		if rec := f.do(t, http.MethodPut, target, ""); rec.Code != http.StatusNotFound {
			t.Errorf("PUT %s without Membership: %d, want 404", target, rec.Code)
		}
	}
}

func TestAgentMembers(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, "GET", "/v1/agent/members", "")
	checkReadHeaders(t, rec)
	got := decode[[]agentMember](t, rec)
	want := []struct {
		name   string
		status int
	}{{"n1", 1}, {"n2", 1}, {"n3", 4}, {"n4", 3}} // suspect shows as alive, as in Consul
	if len(got) != len(want) {
		t.Fatalf("%d members, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Status != w.status {
			t.Errorf("member %d = %s status %d, want %s status %d", i, got[i].Name, got[i].Status, w.name, w.status)
		}
	}
	if got[1].Tags["id"] != catalogtest.NodeID("n2") || got[1].Tags["dc"] != "dc1" || got[1].Port != 7946 {
		t.Errorf("n2 = %+v", got[1])
	}
	if _, ok := got[2].Tags["id"]; ok {
		t.Errorf("n3 has no node record but tags %v", got[2].Tags)
	}
}
