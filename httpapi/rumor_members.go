package httpapi

import (
	"net/http"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// rumorMember is one member in GET /v1/rumor/members: what gossip knows of a node,
// in more detail than Consul's /v1/agent/members (which has no suspect state, no
// coordinates and no time of change).
type rumorMember struct {
	Name string
	// Addr and Port are the member's gossip address.
	Addr string
	Port uint16
	// State is alive, suspect, failed or left.
	State string
	// StateSince is when State last changed as this agent saw it (RFC 3339, UTC,
	// to the nanosecond); "" if never reported. A string, not null, so ?filter= can
	// compare it.
	StateSince string
	// Coordinate is its network coordinate; null until a probe brought one.
	Coordinate *Coordinate
	// RTT is the estimated round trip from this agent ("1.2ms"); "" when unknown
	// (and for this agent itself). RTTSeconds is the same in seconds, 0 if unknown.
	RTT        string
	RTTSeconds float64
}

// GET /v1/rumor/members: every gossip member this agent knows, by name, with its
// state, address, coordinate and the time of its last state change. A blocking query
// wakes when membership or liveness changes (the nodes topic); coordinates alone
// moving do not wake it.
func (h *Handler) rumorMembers(w http.ResponseWriter, r *http.Request) {
	q, idx, ok := h.readWith(w, r, catalog.TopicNodes, rumorMember{})
	if !ok {
		return
	}
	members := h.ag.Members()
	out := make([]rumorMember, 0, len(members))
	for i := range members {
		m := &members[i]
		rm := rumorMember{Name: m.Name, State: m.State.String(), Coordinate: m.Coordinate}
		if m.Addr.IsValid() {
			rm.Addr, rm.Port = m.Addr.Addr().String(), m.Addr.Port()
		}
		if !m.Since.IsZero() {
			rm.StateSince = m.Since.UTC().Format(time.RFC3339Nano)
		}
		if m.RTT > 0 {
			rm.RTT, rm.RTTSeconds = m.RTT.String(), m.RTT.Seconds()
		}
		out = append(out, rm)
	}
	out, err := filterSlice(q.expr, out)
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}
