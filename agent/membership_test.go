package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/internal/testkit"
)

func TestJoinAndForceLeave(t *testing.T) {
	var fc *fakeCluster
	a := startAgent(t, testConfig(t, "n1", "", &fc))
	if n, err := a.Join(t.Context(), []string{"10.0.0.2", "10.0.0.3"}); err != nil || n != 2 {
		t.Errorf("Join = %d, %v; want 2, nil", n, err)
	}
	if _, err := a.Join(t.Context(), nil); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("Join with no address: %v, want ErrInvalid", err)
	}
	fc.mu.Lock()
	fc.members = []gossip.Member{{Name: "n2", State: catalog.LivenessAlive}, {Name: "n3", State: catalog.LivenessFailed}}
	fc.mu.Unlock()
	for _, c := range []struct {
		node string
		want error
	}{
		{"n3", nil},
		{"n3", nil}, // already left: fine
		{"n2", catalog.ErrInvalid},
		{"ghost", catalog.ErrNotFound},
	} {
		if err := a.ForceLeave(t.Context(), c.node, false); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("ForceLeave(%s) = %v, want %v", c.node, err, c.want)
		}
	}
}

// TestRequestLeave is PUT /v1/agent/leave: gossip leaves, LeaveRequested closes, the
// agent refuses further membership changes, and the owner's Leave does not leave twice.
func TestRequestLeave(t *testing.T) {
	var fc *fakeCluster
	a := startAgent(t, testConfig(t, "n1", "", &fc))
	select {
	case <-a.LeaveRequested():
		t.Fatal("LeaveRequested closed before any request")
	default:
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, "http://"+a.HTTPAddr().String()+"/v1/agent/leave", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/agent/leave: %s", resp.Status)
	}
	select {
	case <-a.LeaveRequested():
	case <-time.After(10 * time.Second):
		t.Fatal("LeaveRequested not closed after the leave")
	}
	fc.mu.Lock()
	left := fc.left
	fc.mu.Unlock()
	if !left {
		t.Error("gossip did not leave")
	}
	if _, err := a.Join(t.Context(), []string{"10.0.0.2"}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Join after leave: %v, want ErrNotRunning", err)
	}
	if err := a.RequestLeave(t.Context()); err != nil {
		t.Errorf("second RequestLeave: %v", err)
	}
	fc.mu.Lock()
	fc.left = false // a second gossip leave would set it again
	fc.mu.Unlock()
	if err := a.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.left || !fc.shut {
		t.Errorf("after Leave: gossip left again %t, shut down %t; want false, true", fc.left, fc.shut)
	}
}

// TestNoGoroutineLeak starts a real agent (gossip on loopback, HTTP API, an HTTP and a
// TTL check running, a client holding a blocking query) joined to a second one, then
// stops both: no goroutine may outlive them.
func TestNoGoroutineLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer target.Close()
	testkit.NoLeaks(t) // allows memberlist's in-flight probes their time

	start := func(name string, join ...string) *Agent {
		return startAgent(t, Config{NodeName: name, DataDir: t.TempDir(), BindAddr: "127.0.0.1", BindPort: 0,
			GossipProfile: "local", HTTPAddr: "127.0.0.1:0", Join: join, RetryJoin: []string{"127.0.0.1:1"}})
	}
	a1 := start("n1")
	a2 := start("n2", a1.GossipAddr().String())
	err := a2.RegisterService(t.Context(), with(web("web", 80),
		definition.Check{ID: "web-http", HTTP: target.URL, Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond},
		ttlCheck("web-ttl"),
	))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the HTTP check to pass", func() bool {
		for _, c := range a2.LocalChecks() {
			if c.Check.ID == "web-http" && c.Check.Status == catalog.StatusPassing {
				return true
			}
		}
		return false
	})
	testkit.Eventually(t, 10*time.Second, "web to reach n1", func() bool { return len(a1.Catalog().ServiceInstances("web", catalog.Filter{})) == 1 })

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet,
			"http://"+a1.HTTPAddr().String()+"/v1/catalog/services?wait=10m&index=1", nil)
		if resp, err := (&http.Client{Transport: tr}).Do(req); err == nil {
			resp.Body.Close()
		}
	}()

	if err := a2.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := a1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query still open after Shutdown")
	}
}

// TestJoinDefaultPort: an address without a port means the well-known gossip port,
// 7946, as `rumor join --help` says, wherever it comes from (the API, --join,
// --retry-join); memberlist would have used this agent's own port (issue 11 item 18).
func TestJoinDefaultPort(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.5", "10.0.0.5:7946"},
		{"10.0.0.5:8000", "10.0.0.5:8000"},
		{"::1", "[::1]:7946"},
		{"[fe80::1]", "[fe80::1]:7946"},
		{"[::1]:8000", "[::1]:8000"},
		{"peer.example", "peer.example:7946"},
		{"peer.example:8000", "peer.example:8000"},
	} {
		if got := withGossipPort([]string{tc.in}); got[0] != tc.want {
			t.Errorf("withGossipPort(%q) = %q, want %q", tc.in, got[0], tc.want)
		}
	}

	var fc *fakeCluster
	cfg := testConfig(t, "n1", "", &fc)
	cfg.Join = []string{"10.0.0.7"}
	a := startAgent(t, cfg)
	fc.mu.Lock()
	got := fc.joined
	fc.mu.Unlock()
	if len(got) != 1 || got[0] != "10.0.0.7:7946" {
		t.Errorf("--join 10.0.0.7 joined %q, want 10.0.0.7:7946", got)
	}
	c := newAPI(t, a)
	c.must("PUT", "/v1/agent/join/10.0.0.5", "")
	fc.mu.Lock()
	got = fc.joined
	fc.mu.Unlock()
	if len(got) != 1 || got[0] != "10.0.0.5:7946" {
		t.Errorf("PUT /v1/agent/join/10.0.0.5 joined %q, want 10.0.0.5:7946", got)
	}
}
