package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Mover moves a service instance of this node to another node explicitly
// (`rumor service move`). Calls may block briefly (the change is persisted).
type Mover interface {
	// MoveService deregisters the local instance id (if registered) and publishes a
	// forward pointer to toNode, where its ID is toID ("" means id). Errors:
	// catalog.ErrNotFound when this node has no such instance nor pointer (404),
	// catalog.ErrInvalid for a bad target (400).
	MoveService(ctx context.Context, id, toNode, toID string) (catalog.Move, error)
}

// movesCatalog is what the moves endpoints and events read; *catalog.Catalog has it.
// It is not part of Catalog so that catalogs without moves still serve the rest.
type movesCatalog interface {
	Moves(name string) []catalog.MoveEntry
}

// MoveEntry is one forward pointer in GET /v1/rumor/moves and in "moved" watch
// events: the instance ServiceID of service Service on node From is now ToServiceID
// on node To.
type MoveEntry struct {
	Service     string
	From        string
	ServiceID   string
	To          string
	ToServiceID string
	// At is when it moved and Until when the pointer expires (RFC 3339, UTC), by
	// the old node's clock.
	At    string
	Until string
	// Explicit is true for `rumor service move`, false for a detected move.
	Explicit bool
	// Version is the pointer record's version ("gen.counter"): it grows when the
	// old node rewrites the pointer (a chain collapsed to one hop).
	Version string
}

func toMoveEntry(e *catalog.MoveEntry) MoveEntry {
	return MoveEntry{Service: e.Move.Service, From: e.From, ServiceID: e.ServiceID, To: e.Move.ToNode,
		ToServiceID: e.Move.ToServiceID, At: e.Move.At.UTC().Format(time.RFC3339Nano),
		Until: e.Move.Until.UTC().Format(time.RFC3339Nano), Explicit: e.Move.Explicit, Version: e.Version.String()}
}

// moves returns the live pointers of a service ("" for all), or none when the
// catalog keeps no pointers.
func (h *Handler) moves(name string) []catalog.MoveEntry {
	if mc, ok := h.cat.(movesCatalog); ok {
		return mc.Moves(name)
	}
	return nil
}

// GET /v1/rumor/moves[?service=web]: the forward pointers this agent knows (live
// ones: not past Until), sorted by old node and service ID. A blocking query
// (?index=) wakes when a pointer is written, rewritten or deleted.
func (h *Handler) rumorMoves(w http.ResponseWriter, r *http.Request) {
	q, idx, ok := h.readWith(w, r, catalog.TopicMoves, MoveEntry{})
	if !ok {
		return
	}
	ms := h.moves(r.URL.Query().Get("service"))
	out := make([]MoveEntry, 0, len(ms))
	for i := range ms {
		out = append(out, toMoveEntry(&ms[i]))
	}
	out, err := filterSlice(q.expr, out)
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// PUT /v1/rumor/service/move/{id}?to=<node>[&to-id=<service ID>]: moves this node's
// instance id to node to (see Mover) and answers the pointer.
func (h *Handler) rumorServiceMove(w http.ResponseWriter, r *http.Request) {
	id, v := r.PathValue("id"), r.URL.Query()
	m, err := h.mover.MoveService(r.Context(), id, v.Get("to"), v.Get("to-id"))
	if err != nil {
		h.failErr(w, r, err, fmt.Sprintf("move service %q", id), map[int]string{http.StatusNotFound: unknownService(id)})
		return
	}
	e := catalog.MoveEntry{From: h.ag.Self().Node.Name, ServiceID: id, Move: m}
	q := query{gzip: acceptsGzip(r.Header)}
	h.writeJSON(w, q, toMoveEntry(&e))
}
