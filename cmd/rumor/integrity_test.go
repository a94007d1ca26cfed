package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// TestAgentGossipStartFailures (issue 11 item 6): a taken gossip port and a bind
// address that is not this host's end `rumor agent` with exit status 1 and a message
// saying what to do, not a panic.
func TestAgentGossipStartFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	for _, tc := range []struct{ bind, want string }{
		{ln.Addr().String(), "gossip port in use: is another agent running? choose another with --bind"},
		{"192.0.2.1:0", "not an address of this host"},
	} {
		r := rumor(t, nil, "agent", "--node", "n1", "--bind", tc.bind, "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
		if r.code != exitFailed || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "panic") {
			t.Errorf("--bind %s: exit %d, stderr:\n%s\nwant exit %d and %q", tc.bind, r.code, r.stderr, exitFailed, tc.want)
		}
	}
}

// TestAgentDuplicateNameExits (issue 11 item 10): an agent joining a pool that has a
// live node of its name exits non-zero, saying so, and the existing node's service
// never disappears from its view.
func TestAgentDuplicateNameExits(t *testing.T) {
	peer, _ := startAgent(t) // node1
	if err := peer.RegisterService(t.Context(), definition.Service{Name: "web", Port: 80}); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		done <- rumor(t, nil, "agent", "--node", "node1", "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--data-dir", t.TempDir(), "--join", peer.GossipAddr().String(), "--dns-addr", "127.0.0.1:0")
	}()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.code != exitFailed || !strings.Contains(r.stderr, "unique --node") {
				t.Errorf("the second node1: exit %d, stderr:\n%s\nwant exit %d and a name conflict", r.code, r.stderr, exitFailed)
			}
			if got := peer.Catalog().ServiceInstances("web", catalog.Filter{}); len(got) != 1 || got[0].Node.Node.ID != peer.NodeID() {
				t.Errorf("web after the impostor exited: %+v", got)
			}
			return
		case <-tick.C:
			if got := peer.Catalog().ServiceInstances("web", catalog.Filter{}); len(got) != 1 || got[0].Service.Port != 80 {
				t.Fatalf("web disappeared from the existing node while the impostor ran: %+v", got)
			}
		case <-deadline:
			t.Fatal("the second node1 did not exit within 30s")
		}
	}
}
