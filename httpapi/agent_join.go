package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Membership is how the API changes this node's place in the gossip pool. Calls run
// concurrently; each blocks at most until its context ends.
type Membership interface {
	// Join contacts addrs and joins their pool; it returns how many answered, and an
	// error only if none did (wrapping catalog.ErrInvalid for unusable input).
	Join(ctx context.Context, addrs []string) (int, error)
	// Leave leaves the pool gracefully; the agent then shuts down.
	Leave(ctx context.Context) error
	// ForceLeave marks a failed node left so its records go now. Errors:
	// catalog.ErrNotFound for a node not in the pool (404), catalog.ErrInvalid for a
	// node that has not failed (409).
	ForceLeave(ctx context.Context, node string, prune bool) error
}

// membershipTimeout bounds a join or leave request: memberlist waits up to its TCP
// timeout (10 s on a LAN) per unreachable address.
const membershipTimeout = 30 * time.Second

// membershipRoutes registers the join, leave and force-leave endpoints, when the
// handler has a Membership.
func (h *Handler) membershipRoutes() {
	if h.mem == nil {
		return
	}
	h.mux.HandleFunc("PUT /v1/agent/join/{address}", h.agentJoin)
	h.mux.HandleFunc("PUT /v1/agent/leave", h.agentLeave)
	h.mux.HandleFunc("PUT /v1/agent/force-leave/{node}", h.agentForceLeave)
}

// refuseWAN answers 501 for ?wan (Consul's WAN pool of servers, which rumor does not
// have) and 400 for a malformed value; it reports whether it answered.
func (h *Handler) refuseWAN(w http.ResponseWriter, r *http.Request) bool {
	vals, ok := r.URL.Query()["wan"]
	if !ok {
		return false
	}
	wan, err := parseFlag(vals[0])
	switch {
	case err != nil:
		h.fail(w, r, http.StatusBadRequest, "invalid wan %q: want true, false, 1 or 0 (or no value)", vals[0])
		return true
	case wan:
		h.fail(w, r, http.StatusNotImplemented, "rumor has no WAN pool: every agent is in one LAN pool; drop ?wan")
		return true
	}
	return false
}

// PUT /v1/agent/join/{address}: join the pool another agent is in ("ip", "ip:port"
// or "host:port").
func (h *Handler) agentJoin(w http.ResponseWriter, r *http.Request) {
	if h.refuseWAN(w, r) {
		return
	}
	addr := r.PathValue("address")
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
	defer cancel()
	_, err := h.mem.Join(ctx, []string{addr})
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, catalog.ErrInvalid):
		h.fail(w, r, http.StatusBadRequest, "invalid join address %q: %v", addr, err)
	default:
		// Consul answers 500 when the join fails; clients rely only on it not being 200.
		h.fail(w, r, http.StatusInternalServerError, "Failed to join: %v", err)
	}
}

// PUT /v1/agent/leave: leave the pool gracefully; the agent then shuts down, as
// Consul's does. The answer comes once the goodbye has gone out.
func (h *Handler) agentLeave(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
	defer cancel()
	if err := h.mem.Leave(ctx); err != nil {
		h.log.Error("leave", "error", err)
		h.fail(w, r, http.StatusInternalServerError, "leave: %v", err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// PUT /v1/agent/force-leave/{node}?prune: mark a failed node left so its records go
// now; ?prune also forgets it from the member list.
func (h *Handler) agentForceLeave(w http.ResponseWriter, r *http.Request) {
	if h.refuseWAN(w, r) {
		return
	}
	node := r.PathValue("node")
	prune := false
	if vals, ok := r.URL.Query()["prune"]; ok {
		p, err := parseFlag(vals[0])
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, "invalid prune %q: want true, false, 1 or 0 (or no value)", vals[0])
			return
		}
		prune = p
	}
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
	defer cancel()
	err := h.mem.ForceLeave(ctx, node, prune)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, catalog.ErrNotFound):
		h.fail(w, r, http.StatusNotFound, "Unknown node %q: it is not in the pool ('rumor members' lists the nodes)", node)
	case errors.Is(err, catalog.ErrInvalid):
		h.fail(w, r, http.StatusConflict, "Cannot force node %q to leave: it has not failed. Only failed nodes can be forced out; a live node leaves with 'rumor leave' on its host", node)
	default:
		h.log.Error("force-leave", "node", node, "error", err)
		h.fail(w, r, http.StatusInternalServerError, "force-leave %q: %v", node, err)
	}
}
