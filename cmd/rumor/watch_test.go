package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// watcher is a `rumor watch` running in-process.
type watcher struct {
	out, err *testkit.Buffer
	cancel   context.CancelFunc
	done     chan int
}

func startWatch(t *testing.T, env map[string]string, args ...string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watcher{out: &testkit.Buffer{}, err: &testkit.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		w.done <- run(ctx, append([]string{"watch"}, args...), strings.NewReader(""), w.out, w.err, func(k string) string { return env[k] })
	}()
	t.Cleanup(cancel)
	return w
}

// waitLine waits until stdout has a line containing every part.
func (w *watcher) waitLine(t *testing.T, parts ...string) string {
	t.Helper()
	var found string
	testkit.Eventually(t, 20*time.Second, "a watch line with "+strings.Join(parts, " "), func() bool {
		for line := range strings.SplitSeq(w.out.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				found = line
				return true
			}
		}
		select {
		case code := <-w.done:
			t.Fatalf("watch exited with %d:\n%s\n%s", code, w.out, w.err)
		default:
		}
		return false
	})
	return found
}

// stop interrupts the watch and returns its exit code.
func (w *watcher) stop(t *testing.T) int {
	t.Helper()
	w.cancel()
	select {
	case code := <-w.done:
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on interrupt")
		return -1
	}
}

func TestWatchService(t *testing.T) {
	a, env := startAgent(t)
	if r := rumorIn(t, env, `{"service": {"name": "web", "id": "web-1", "port": 80, "checks": [{"id": "web-ttl", "ttl": "30s"}]}}`, "register", "-f", "-"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	w := startWatch(t, env, "service", "web")
	w.waitLine(t, "current", "node1/web-1", "127.0.0.1:80", "critical", "web-ttl=critical")
	if r := rumor(t, env, "register", "--name", "web", "--id", "web-2", "--port", "81", "--tag", "v2"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	w.waitLine(t, "added", "node1/web-2", "127.0.0.1:81", "tags=v2", "passing")
	if r := rumor(t, env, "check", "pass", "web-ttl"); r.code != 0 {
		t.Fatalf("check pass: %+v", r)
	}
	w.waitLine(t, "changed", "node1/web-1", "passing", "(was critical)")
	if err := a.DeregisterService(t.Context(), "web-2"); err != nil {
		t.Fatal(err)
	}
	w.waitLine(t, "removed", "node1/web-2")
	if code := w.stop(t); code != 0 {
		t.Errorf("watch exit code %d, want 0; stderr:\n%s", code, w.err)
	}
	// Each change printed once: the unchanged web-1 had only its current and changed lines.
	if n := strings.Count(w.out.String(), "node1/web-1"); n != 2 {
		t.Errorf("web-1 appears on %d lines, want 2:\n%s", n, w.out)
	}
}

func TestWatchServicesJSON(t *testing.T) {
	_, env := startAgent(t)
	if r := rumor(t, env, "register", "--name", "db", "--port", "5432"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	w := startWatch(t, env, "services", "--json")
	w.waitLine(t, `"event":"current"`, `"key":"db"`)
	if r := rumor(t, env, "register", "--name", "cache", "--port", "6379", "--tag", "redis"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	line := w.waitLine(t, `"event":"added"`, `"key":"cache"`)
	var ev struct {
		Time  string
		Index uint64
		Event string
		Key   string
		Value struct {
			Name string
			Tags []string
		}
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("watch --json line %q: %v", line, err)
	}
	if _, err := time.Parse(time.RFC3339, ev.Time); err != nil || ev.Index == 0 || ev.Value.Name != "cache" || len(ev.Value.Tags) != 1 || ev.Value.Tags[0] != "redis" {
		t.Errorf("watch --json line = %+v (%v)", ev, err)
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("watch exit code %d, want 0", code)
	}
}

func TestWatchNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real gossip")
	}
	a1, env := startPeer(t, "n1")
	w := startWatch(t, env, "nodes")
	w.waitLine(t, "current", "n1", "127.0.0.1", "alive")
	a2, _ := startPeer(t, "n2", a1.GossipAddr().String())
	w.waitLine(t, "added", "n2", "alive")
	if err := a2.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.waitLine(t, "removed", "n2")
	if code := w.stop(t); code != 0 {
		t.Errorf("watch exit code %d, want 0", code)
	}
}

// TestWatchReconnects restarts the agent under a watch: the watch says it lost the
// agent, retries, and on reconnect prints what changed meanwhile.
func TestWatchReconnects(t *testing.T) {
	start := func(httpAddr string) *agent.Agent {
		a, err := agent.New(agent.Config{NodeName: "node1", Dev: true, BindPort: 0, HTTPAddr: httpAddr})
		a = testkit.Running(t, a, err)
		return a
	}
	a := start("127.0.0.1:0")
	env := map[string]string{"RUMOR_HTTP_ADDR": a.HTTPAddr().String()}
	if r := rumor(t, env, "register", "--name", "early", "--port", "1"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	w := startWatch(t, env, "services")
	w.waitLine(t, "current", "early")
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "the watch to notice", func() bool { return strings.Contains(w.err.String(), "lost the agent at "+env["RUMOR_HTTP_ADDR"]) })
	start(env["RUMOR_HTTP_ADDR"]) // the same address: a restart, with fresh (in-memory) state
	if r := rumor(t, env, "register", "--name", "late", "--port", "2"); r.code != 0 {
		t.Fatalf("register: %+v", r)
	}
	w.waitLine(t, "added", "late")
	w.waitLine(t, "removed", "early")
	if !strings.Contains(w.err.String(), "reconnected to the agent at "+env["RUMOR_HTTP_ADDR"]) {
		t.Errorf("no reconnect message:\n%s", w.err)
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("watch exit code %d, want 0", code)
	}
}

func TestWatchErrors(t *testing.T) {
	runCases(t, nil, []cliCase{
		{"nothing to watch", []string{"watch"}, 2, nil, []string{"say what to watch"}},
		{"unknown kind", []string{"watch", "kv"}, 2, nil, []string{`cannot watch "kv"`}},
		{"service without name", []string{"watch", "service"}, 2, nil, []string{"takes one service name"}},
		{"nodes with argument", []string{"watch", "nodes", "x"}, 2, nil, []string{"takes no further argument"}},
		{"no agent", []string{"watch", "services", "--http-addr", "127.0.0.1:1"}, 3, nil, []string{"no agent at 127.0.0.1:1: is `rumor agent` running?"}},
	})
}
