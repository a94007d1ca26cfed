package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// pointer publishes origin's pointer for its instance id of service to toNode.
func pointer(t *testing.T, cat *catalog.Catalog, w *catalog.Writer, id, service, toNode string) {
	t.Helper()
	at := time.Unix(1_700_000_000, 0)
	if _, err := cat.Apply(w.PutMove(id, &catalog.Move{Service: service, ToNode: toNode, ToServiceID: id,
		At: at, Until: at.Add(100 * 365 * 24 * time.Hour)})); err != nil {
		t.Fatal(err)
	}
}

func TestRumorMoves(t *testing.T) {
	f := newFixture(t)
	w := catalog.NewWriter("n5", 1)
	pointer(t, f.cat, w, "web-9", "web", "n2")
	rec := f.do(t, "GET", "/v1/rumor/moves", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	var got []MoveEntry
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := MoveEntry{Service: "web", From: "n5", ServiceID: "web-9", To: "n2", ToServiceID: "web-9",
		At: "2023-11-14T22:13:20Z", Until: "2123-10-21T22:13:20Z", Version: "1.1"}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("GET /v1/rumor/moves = %+v, want [%+v]", got, want)
	}
	if idx := rec.Header().Get("X-Consul-Index"); idx != strconv.FormatUint(f.cat.TopicIndex(catalog.TopicMoves), 10) {
		t.Errorf("X-Consul-Index %s, want the moves topic's %d", idx, f.cat.TopicIndex(catalog.TopicMoves))
	}
	if rec := f.do(t, "GET", "/v1/rumor/moves?service=db", ""); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("?service=db: %s, want []", rec.Body)
	}
	if rec := f.do(t, "GET", `/v1/rumor/moves?filter=To+==+"n3"`, ""); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("?filter: %s, want []", rec.Body)
	}

	// A blocking query wakes when a pointer is written.
	idx := f.cat.TopicIndex(catalog.TopicMoves)
	done := make(chan []MoveEntry, 1)
	go func() {
		rec := f.do(t, "GET", fmt.Sprintf("/v1/rumor/moves?index=%d&wait=5s", idx), "")
		var out []MoveEntry
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		done <- out
	}()
	pointer(t, f.cat, w, "db-1", "db", "n2")
	select {
	case out := <-done:
		if len(out) != 2 {
			t.Errorf("blocking query woke with %+v, want 2 pointers", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking query did not wake")
	}
}

// fakeMover answers MoveService as the agent would for its inputs.
type fakeMover struct{ calls []string }

func (m *fakeMover) MoveService(_ context.Context, id, toNode, toID string) (catalog.Move, error) {
	m.calls = append(m.calls, id+">"+toNode+"/"+toID)
	switch {
	case id == "nothing":
		return catalog.Move{}, fmt.Errorf("agent: move service %q: %w", id, catalog.ErrNotFound)
	case toNode == "":
		return catalog.Move{}, fmt.Errorf("agent: move service %q: %w", id, &catalog.FieldError{Field: "to", Reason: "missing"})
	}
	at := time.Unix(1_700_000_000, 0)
	return catalog.Move{Service: "web", ToNode: toNode, ToServiceID: cmpOr(toID, id), At: at, Until: at.Add(time.Hour), Explicit: true}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestRumorServiceMove(t *testing.T) {
	f := newFixture(t)
	if rec := f.do(t, "PUT", "/v1/rumor/service/move/web-1?to=n2", ""); rec.Code != http.StatusNotFound {
		t.Errorf("without a Mover: %d, want 404", rec.Code)
	}
	mv := &fakeMover{}
	h, err := New(Config{Catalog: f.cat, Agent: f.ag, Mover: mv})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	rec := f.do(t, "PUT", "/v1/rumor/service/move/web-1?to=n2&to-id=web-x", "")
	var got MoveEntry
	if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	if got.From != "n1" || got.ServiceID != "web-1" || got.To != "n2" || got.ToServiceID != "web-x" || !got.Explicit {
		t.Errorf("PUT answered %+v", got)
	}
	if len(mv.calls) != 1 || mv.calls[0] != "web-1>n2/web-x" {
		t.Errorf("MoveService calls %q", mv.calls)
	}
	f.checkErrors(t, []errorCase{
		{name: "unknown", method: "PUT", target: "/v1/rumor/service/move/nothing?to=n2", code: http.StatusNotFound, want: "Unknown service ID"},
		{name: "no target", method: "PUT", target: "/v1/rumor/service/move/web-1", code: http.StatusBadRequest, want: "to: missing"},
		{name: "GET", method: "GET", target: "/v1/rumor/service/move/web-1", code: http.StatusMethodNotAllowed, want: "not allowed"},
	})
}

// A service stream carries one "moved" event per pointer version of its services.
func TestWatchMovedEvents(t *testing.T) {
	f := newFixture(t)
	ws := newWatchServer(t, f.h)
	s := ws.open(t, "?service=web")
	s.next(t, "synced", isEvent("synced"))
	w := catalog.NewWriter("n5", 1)
	pointer(t, f.cat, w, "web-9", "web", "n2")
	m := s.next(t, "moved event", isEvent("moved"))
	var ev watchMovedEvent
	if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.From != "n5" || ev.ServiceID != "web-9" || ev.To != "n2" || ev.Version != "1.1" || ev.Index == 0 || m.id != strconv.FormatUint(ev.Index, 10) {
		t.Errorf("moved event id %s %+v", m.id, ev)
	}
	// Another service's pointer is not in this stream; a rewrite of this one is.
	pointer(t, f.cat, w, "db-1", "db", "n2")
	if _, err := f.cat.Apply(w.PutService(catalogtest.Service("web-10", "web", 1))); err != nil {
		t.Fatal(err)
	}
	s.next(t, "a service event after the db pointer", isEvent("service"))
	pointer(t, f.cat, w, "web-9", "web", "n3")
	m = s.next(t, "moved event of the rewrite", isEvent("moved"))
	if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ServiceID != "web-9" || ev.To != "n3" || ev.Version != "1.4" {
		t.Errorf("rewrite event %+v, want web-9 → n3 at 1.4 (the db pointer must not appear)", ev)
	}
}
