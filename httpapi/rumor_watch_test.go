package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// sseMsg is one server-sent event, or a comment line.
type sseMsg struct {
	id, event, data string
	comment         string
}

// sseStream reads a watch stream in a goroutine owned by the test.
type sseStream struct {
	msgs   chan sseMsg
	cancel context.CancelFunc
	done   chan struct{} // closed when the body ended
	resp   *http.Response
}

// watchServer serves f's handler on a real listener (streams need one), counting the
// handlers running, and cancels every request context when the test ends or stop
// is called.
type watchServer struct {
	srv     *httptest.Server
	running atomic.Int32
	stop    context.CancelFunc
}

func newWatchServer(t *testing.T, h http.Handler) *watchServer {
	t.Helper()
	ws := &watchServer{}
	base, stop := context.WithCancel(context.Background())
	ws.stop = stop
	ws.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws.running.Add(1)
		defer ws.running.Add(-1)
		h.ServeHTTP(w, r)
	}))
	ws.srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	ws.srv.Start()
	t.Cleanup(func() { stop(); ws.srv.Close() })
	return ws
}

func (ws *watchServer) open(t *testing.T, query string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ws.srv.URL+"/v1/rumor/watch"+query, nil)
	resp, err := ws.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sseStream{msgs: make(chan sseMsg, 100), cancel: cancel, done: make(chan struct{}), resp: resp}
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-s.done })
	if resp.StatusCode != http.StatusOK {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				s.msgs <- m
				m = sseMsg{}
			case strings.HasPrefix(line, ":"):
				s.msgs <- sseMsg{comment: strings.TrimSpace(line[1:])}
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "id":
					m.id = v
				case "event":
					m.event = v
				case "data":
					m.data = v
				}
			}
		}
	}()
	return s
}

// next returns the next message for which keep is true, skipping others, failing
// the test if none comes within 5 s.
func (s *sseStream) next(t *testing.T, what string, keep func(sseMsg) bool) sseMsg {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if keep(m) {
				return m
			}
		case <-s.done:
			t.Fatalf("%s: stream ended", what)
		case <-deadline:
			t.Fatalf("%s: nothing within 5s", what)
		}
	}
}

func isEvent(name string) func(sseMsg) bool { return func(m sseMsg) bool { return m.event == name } }

func serviceEvent(t *testing.T, m sseMsg) watchServiceEvent {
	t.Helper()
	var ev watchServiceEvent
	if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
		t.Fatalf("decode %q: %v", m.data, err)
	}
	return ev
}

func instanceIDs(ev watchServiceEvent) string {
	var ids []string
	for _, e := range ev.Instances {
		ids = append(ids, e.Node.Node+"/"+e.Service.ID)
	}
	return strings.Join(ids, ",")
}

func TestWatchServiceStreamsChanges(t *testing.T) {
	f := newFixture(t)
	ws := newWatchServer(t, f.h)
	s := ws.open(t, "?service=web")
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	snap := serviceEvent(t, s.next(t, "snapshot", isEvent("service")))
	if snap.Service != "web" || instanceIDs(snap) != "n1/web-1,n2/web-2" {
		t.Fatalf("snapshot = %s %s", snap.Service, instanceIDs(snap))
	}
	if snap.Index != f.cat.TopicIndex(catalog.ServiceTopic("web")) {
		t.Errorf("snapshot index %d, want the topic's %d", snap.Index, f.cat.TopicIndex(catalog.ServiceTopic("web")))
	}
	s.next(t, "synced", isEvent("synced"))

	// A registration produces an event carrying the new state and a higher index.
	if err := f.ag.RegisterService(t.Context(), svcDef(catalog.Service{ID: "web-3", Name: "web", Port: 81, Weights: catalog.DefaultWeights})); err != nil {
		t.Fatal(err)
	}
	m := s.next(t, "event after registration", isEvent("service"))
	ev := serviceEvent(t, m)
	if instanceIDs(ev) != "n1/web-1,n1/web-3,n2/web-2" || ev.Index <= snap.Index || m.id == "" {
		t.Fatalf("after registration: id %q index %d instances %s", m.id, ev.Index, instanceIDs(ev))
	}
	// A change to another service does not wake this stream; its own change does.
	if err := f.ag.RegisterService(t.Context(), svcDef(catalog.Service{ID: "cache", Name: "cache", Port: 6379, Weights: catalog.DefaultWeights})); err != nil {
		t.Fatal(err)
	}
	if err := f.ag.DeregisterService(t.Context(), "web-3"); err != nil {
		t.Fatal(err)
	}
	ev = serviceEvent(t, s.next(t, "event after deregistration", isEvent("service")))
	if instanceIDs(ev) != "n1/web-1,n2/web-2" {
		t.Fatalf("after deregistration: %s (an event for another service leaked in?)", instanceIDs(ev))
	}
}

func TestWatchAllServicesReportsEachChangedService(t *testing.T) {
	f := newFixture(t)
	ws := newWatchServer(t, f.h)
	s := ws.open(t, "")
	got := map[string]string{}
	for range 2 {
		ev := serviceEvent(t, s.next(t, "snapshot", isEvent("service")))
		got[ev.Service] = instanceIDs(ev)
	}
	if got["web"] != "n1/web-1,n2/web-2" || got["db"] != "n2/db" {
		t.Fatalf("snapshot = %v", got)
	}
	s.next(t, "synced", isEvent("synced"))

	if err := f.ag.RegisterService(t.Context(), svcDef(catalog.Service{ID: "cache", Name: "cache", Port: 6379, Weights: catalog.DefaultWeights})); err != nil {
		t.Fatal(err)
	}
	ev := serviceEvent(t, s.next(t, "new service", isEvent("service")))
	if ev.Service != "cache" || instanceIDs(ev) != "n1/cache" {
		t.Fatalf("after registering cache: %s %s", ev.Service, instanceIDs(ev))
	}
	if err := f.ag.DeregisterService(t.Context(), "cache"); err != nil {
		t.Fatal(err)
	}
	ev = serviceEvent(t, s.next(t, "service gone", isEvent("service")))
	if ev.Service != "cache" || len(ev.Instances) != 0 {
		t.Fatalf("after deregistering cache: %s %s, want cache with no instances", ev.Service, instanceIDs(ev))
	}
}

func TestWatchNodes(t *testing.T) {
	f := newFixture(t)
	ws := newWatchServer(t, f.h)
	s := ws.open(t, "?nodes")
	seen := map[string]watchNodeEvent{}
	for range 2 {
		var ev watchNodeEvent
		m := s.next(t, "snapshot", isEvent("node"))
		if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.Node] = ev
	}
	if seen["n2"].Address != "10.0.0.2" || seen["n2"].Liveness != "alive" {
		t.Fatalf("snapshot n2 = %+v", seen["n2"])
	}
	s.next(t, "synced", isEvent("synced"))
	nodeEvent := func(what string) watchNodeEvent {
		t.Helper()
		var ev watchNodeEvent
		if err := json.Unmarshal([]byte(s.next(t, what, isEvent("node")).data), &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	f.cat.SetLiveness("n2", catalog.LivenessFailed)
	if ev := nodeEvent("n2 failed"); ev.Node != "n2" || ev.Liveness != "failed" || ev.LivenessSince == nil {
		t.Fatalf("event %+v, want n2 failed", ev)
	}
	// n1's services change (its node topic moves, but not what a node event shows),
	// then n2 comes back: the next event is n2's, none for n1.
	if err := f.ag.RegisterService(t.Context(), svcDef(catalog.Service{ID: "cache", Name: "cache", Port: 6379, Weights: catalog.DefaultWeights})); err != nil {
		t.Fatal(err)
	}
	f.cat.SetLiveness("n2", catalog.LivenessAlive)
	if ev := nodeEvent("n2 alive"); ev.Node != "n2" || ev.Liveness != "alive" {
		t.Fatalf("event %+v, want n2 alive (and nothing for n1)", ev)
	}
	// A node whose records go away is reported deleted.
	f.cat.SetLiveness("n2", catalog.LivenessLeft)
	for {
		ev := nodeEvent("n2 gone")
		if ev.Node == "n2" && ev.Deleted {
			break
		}
		if ev.Node != "n2" {
			t.Fatalf("event %+v, want only n2's", ev)
		}
	}
}

func TestWatchHeartbeatsAndEnds(t *testing.T) {
	f := newFixture(t)
	f.h.watchHeartbeat = 20 * time.Millisecond
	ws := newWatchServer(t, f.h)

	// A quiet stream sends heartbeat comments.
	s := ws.open(t, "?service=db")
	s.next(t, "heartbeat", func(m sseMsg) bool { return m.comment == "heartbeat" })

	// The client going away frees the handler.
	s.cancel()
	testkit.Eventually(t, 5*time.Second, "handler returns after the client left", func() bool { return ws.running.Load() == 0 })

	// The agent shutting down (the server's base context) ends the stream.
	s2 := ws.open(t, "?service=db")
	s2.next(t, "synced", isEvent("synced"))
	ws.stop()
	select {
	case <-s2.done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5s after shutdown")
	}
	testkit.Eventually(t, 5*time.Second, "handler returns after shutdown", func() bool { return ws.running.Load() == 0 })
}

func TestWatchBadRequests(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ query, want string }{
		{"?service=web&nodes", "not both"},
		{"?filter=Service.Port==80", "filter"},
		{"?dc=elsewhere", "datacenter"},
		{"?passing=maybe", "invalid passing"},
	} {
		rec := f.do(t, "GET", "/v1/rumor/watch"+tc.query, "")
		if rec.Code < 400 || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want an error mentioning %q", tc.query, rec.Code, rec.Body, tc.want)
		}
	}
}
