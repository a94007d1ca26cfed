package httpapi

import (
	"net"
	"net/http"
	"strconv"

	"github.com/rumor-sd/rumor/catalog"
)

// Reachability is this agent's knowledge of which instances it can reach (the
// firewall problem). Calls may run concurrently and never block on the network.
type Reachability interface {
	// Reachable reports whether an "ip:port" is reachable from here (unknown counts
	// as reachable); asking may schedule a probe.
	Reachable(addr string) bool
	// Active reports whether answers may need reordering: probes are on or some
	// address is known unreachable.
	Active() bool
	// Unreachable lists what this agent cannot reach.
	Unreachable() []UnreachableEntry
}

// UnreachableEntry is one address this agent cannot reach, in
// GET /v1/rumor/reachability.
type UnreachableEntry struct {
	Addr    string
	Since   string // RFC 3339: when it became unreachable from here
	Checked string // RFC 3339: the last result
	Source  string // "proxy" (a connect of the local proxy) or "probe"
}

// GET /v1/rumor/reachability: the addresses this agent knows it cannot reach, and
// since when. Local knowledge: no other agent is told.
func (h *Handler) rumorReachability(w http.ResponseWriter, r *http.Request) {
	q, ok := h.query(w, r, UnreachableEntry{})
	if !ok {
		return
	}
	out, err := filterSlice(q.expr, h.reach.Unreachable())
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, h.cat.TopicIndex(catalog.TopicAll))
	h.writeJSON(w, q, out)
}

// reachOrder puts the entries this agent can reach first (stably) and, when drop is
// set (?reachable), leaves the others out. Instances without a port are kept as they
// are: there is nothing to connect to.
func (h *Handler) reachOrder(out []serviceEntry, drop bool) []serviceEntry {
	reach := make([]bool, len(out))
	for i := range out {
		e := &out[i]
		addr := e.Service.Address
		if addr == "" {
			addr = e.Node.Address
		}
		reach[i] = e.Service.Port == 0 || addr == "" || h.reach.Reachable(net.JoinHostPort(addr, strconv.Itoa(e.Service.Port)))
	}
	sorted := make([]serviceEntry, 0, len(out))
	for i := range out {
		if reach[i] {
			sorted = append(sorted, out[i])
		}
	}
	if !drop {
		for i := range out {
			if !reach[i] {
				sorted = append(sorted, out[i])
			}
		}
	}
	return sorted
}
