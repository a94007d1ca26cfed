package agent

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A watch stream on a running agent sees a registration, and ends when the agent
// shuts down (Shutdown does not wait on it).
func TestWatchStreamOfARunningAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	a := startAgent(t, Config{NodeName: "w1", DataDir: t.TempDir(), BindAddr: "127.0.0.1", BindPort: 0,
		GossipProfile: "local", HTTPAddr: "127.0.0.1:0"})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+a.HTTPAddr().String()+"/v1/rumor/watch?service=web", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	await := func(what string, match func(string) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: stream ended", what)
				}
				if match(l) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: not within 5s", what)
			}
		}
	}
	await("synced", func(l string) bool { return l == "event: synced" })
	if err := a.RegisterService(t.Context(), web("web-1", 80)); err != nil {
		t.Fatal(err)
	}
	await("registration event", func(l string) bool {
		return strings.HasPrefix(l, "data: ") && strings.Contains(l, `"ID":"web-1"`)
	})

	done := make(chan error, 1)
	go func() { done <- a.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown blocked by an open watch stream")
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return // the stream ended
			}
		case <-deadline:
			t.Fatal("stream still open after Shutdown")
		}
	}
}
