package httpapi

import (
	"context"
	"fmt"
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
	// catalog.ErrNotFound for a node not in the pool (404), ErrConflict for a node
	// that has not failed (409).
	ForceLeave(ctx context.Context, node string, prune bool) error
}

// membershipTimeout bounds a join or leave request: memberlist waits up to its TCP
// timeout (10 s on a LAN) per unreachable address.
const membershipTimeout = 30 * time.Second

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
	if _, err := h.mem.Join(ctx, []string{addr}); err != nil {
		// Consul answers 500 when the join fails; clients rely only on it not being 200.
		h.failErr(w, r, err, "", map[int]string{
			http.StatusBadRequest:          fmt.Sprintf("invalid join address %q: %v", addr, err),
			http.StatusInternalServerError: "Failed to join: " + err.Error()})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// PUT /v1/agent/leave: leave the pool gracefully; the agent then shuts down, as
// Consul's does. The answer comes once the goodbye has gone out.
func (h *Handler) agentLeave(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
	defer cancel()
	if err := h.mem.Leave(ctx); err != nil {
		h.failErr(w, r, err, "leave", nil)
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
	if err := h.mem.ForceLeave(ctx, node, prune); err != nil {
		h.failErr(w, r, err, fmt.Sprintf("force-leave %q", node), map[int]string{
			http.StatusNotFound: fmt.Sprintf("Unknown node %q: it is not in the pool ('rumor members' lists the nodes)", node),
			http.StatusConflict: fmt.Sprintf("Cannot force node %q to leave: it has not failed. Only failed nodes can be forced out; a live node leaves with 'rumor leave' on its host", node)})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// GET /v1/agent/members: the gossip pool as this node sees it. Tags carry the node's
// datacenter and ID when its node record has arrived.
func (h *Handler) agentMembers(w http.ResponseWriter, r *http.Request) {
	q, ok := h.query(w, r, agentMember{})
	if !ok {
		return
	}
	known := map[string]*catalog.Node{}
	nodes := h.cat.Nodes(catalog.Filter{})
	for i := range nodes {
		known[nodes[i].Node.Name] = &nodes[i].Node
	}
	members := h.ag.Members()
	out := make([]agentMember, 0, len(members))
	for i := range members {
		tags := map[string]string{"role": "node"}
		if n := known[members[i].Name]; n != nil {
			tags["dc"], tags["id"] = n.Datacenter, n.ID
		}
		out = append(out, toMember(&members[i], tags))
	}
	out, err := filterSlice(q.expr, out)
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, h.cat.TopicIndex(catalog.TopicNodes))
	h.writeJSON(w, q, out)
}

func toMember(m *Member, tags map[string]string) agentMember {
	return agentMember{
		Name: m.Name, Addr: m.Addr.Addr().String(), Port: m.Addr.Port(),
		Tags: tags, Status: memberStatus(m.State),
		ProtocolMin: protocolMin, ProtocolMax: protocolMax, ProtocolCur: protocolCur,
		DelegateMin: delegateMin, DelegateMax: delegateMax, DelegateCur: delegateCur,
	}
}
