package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/httpapi"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestServiceMoveCommand: `rumor service move` deregisters the instance, points it
// at another node, and the pointer shows in `rumor moves`, `rumor services`,
// `rumor service <name>` and `rumor watch moves`; bad input is refused with a reason.
func TestServiceMoveCommand(t *testing.T) {
	a, env := startAgent(t)
	b, err := agent.New(agent.Config{NodeName: "node2", Dev: true, DataDir: t.TempDir(), BindPort: 0,
		HTTPAddr: "127.0.0.1:0", Join: []string{a.GossipAddr().String()}})
	b = testkit.Running(t, b, err)
	testkit.Eventually(t, 10*time.Second, "node1 to know node2", func() bool {
		_, _, err := a.Catalog().NodeServices("node2")
		return err == nil
	})
	envB := map[string]string{"RUMOR_HTTP_ADDR": b.HTTPAddr().String()}
	if r := rumor(t, env, "register", "--name", "web", "--id", "web-1", "--port", "8080"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	if r := rumor(t, envB, "register", "--name", "web", "--id", "web-1", "--port", "8081"); r.code != 0 {
		t.Fatalf("register on node2: %+v", r)
	}
	// A first move, so the watch started next has a current line to sync on.
	if r := rumor(t, env, "register", "--name", "web", "--id", "web-0", "--port", "8079"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	if r := rumor(t, env, "service", "move", "web-0", "--to", "node2"); r.code != 0 || !strings.Contains(r.stdout, "Moved service web-0 (web) from node1 to node2/web-0") {
		t.Fatalf("first move: %+v", r)
	}
	w := startWatch(t, env, "moves")
	w.waitLine(t, "current", "node1/web-0")

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"service", "move", "web-1"}, 2, "--to is required"},
		{[]string{"service", "move", "web-1", "--to", "nope"}, 1, `no node named "nope"`},
		{[]string{"service", "move", "nothing", "--to", "node2"}, 1, `no service with ID "nothing"`},
	} {
		if r := rumor(t, env, tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("rumor %s: exit %d %q, want %d containing %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
	r := rumor(t, env, "service", "move", "web-1", "--to", "node2", "--json")
	var m httpapi.MoveEntry
	if err := json.Unmarshal([]byte(r.stdout), &m); r.code != 0 || err != nil {
		t.Fatalf("move: %+v %v", r, err)
	}
	if m.From != "node1" || m.To != "node2" || m.ToServiceID != "web-1" || m.Service != "web" || !m.Explicit {
		t.Errorf("move --json = %+v", m)
	}
	if r := rumor(t, env, "services", "--local"); strings.Contains(r.stdout, "web-1") {
		t.Errorf("web-1 still registered on node1:\n%s", r.stdout)
	}
	w.waitLine(t, "moved", "node1/web-1", "web to node2/web-1")
	if r := rumor(t, env, "moves"); r.code != 0 || !strings.Contains(r.stdout, "node1/web-1") || !strings.Contains(r.stdout, "explicit") {
		t.Errorf("rumor moves: %+v", r)
	}
	testkit.Eventually(t, 10*time.Second, "node2's rumor services to show the move", func() bool {
		r := rumor(t, envB, "services")
		return r.code == 0 && strings.Contains(r.stdout, "MOVED") && strings.Contains(r.stdout, "node1/web-1  node2/web-1")
	})
	if r := rumor(t, envB, "service", "web"); !strings.Contains(r.stdout, "MOVED") || !strings.Contains(r.stdout, "node1/web-1") {
		t.Errorf("rumor service web:\n%s", r.stdout)
	}
	// --json of the listings keeps its shape.
	var svcs map[string][]string
	if r := rumor(t, envB, "services", "--json"); json.Unmarshal([]byte(r.stdout), &svcs) != nil {
		t.Errorf("services --json is no longer a map:\n%s", r.stdout)
	}
	if r := rumor(t, env, "service", "move", "--help"); !strings.Contains(r.stdout, "CNAME") {
		t.Errorf("help does not teach what a move does:\n%s", r.stdout)
	}
}
