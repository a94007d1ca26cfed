package httpapi

import (
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/rumor-sd/rumor/catalog"
)

// rumor has no servers, no Raft and so no leader: every agent holds a full replica
// and is the only writer of its own records. Consul's /v1/status endpoints still get
// answers that keep their callers working, because "is there a leader?" is how
// scripts and tools (consul/api's Status().Leader(), readiness probes that curl
// /v1/status/leader) ask "is the agent ready?", and an empty string would mean "no
// leader, not ready":
//
//   - /v1/status/leader names the agent asked, at its gossip address ("ip:port", a
//     quoted JSON string as Consul sends): for a client the local agent is
//     authoritative, just as a leader is in Consul.
//   - /v1/status/peers lists the gossip addresses of the members this agent sees
//     alive or suspect (itself included), sorted: the nodes that together hold the
//     catalog, as the Raft peers do in Consul.

// GET /v1/status/leader.
func (h *Handler) statusLeader(w http.ResponseWriter, r *http.Request) {
	q, ok := h.query(w, r, nil)
	if !ok {
		return
	}
	self := h.ag.Self()
	readHeaders(w, h.cat.TopicIndex(catalog.TopicNodes))
	h.writeJSON(w, q, selfAddr(&self))
}

// selfAddr is this agent's gossip address, or its node address with the gossip port
// when it binds a wildcard address.
func selfAddr(self *Self) string {
	a := self.GossipAddr
	if !a.IsValid() {
		return self.Node.Address
	}
	if a.Addr().IsUnspecified() && self.Node.Address != "" {
		return net.JoinHostPort(self.Node.Address, strconv.Itoa(int(a.Port())))
	}
	return a.String()
}

// GET /v1/status/peers.
func (h *Handler) statusPeers(w http.ResponseWriter, r *http.Request) {
	q, ok := h.query(w, r, nil)
	if !ok {
		return
	}
	self := h.ag.Self()
	out := []string{}
	for _, m := range h.ag.Members() {
		switch {
		case m.Name == self.Node.Name:
			out = append(out, selfAddr(&self))
		case (m.State == catalog.LivenessAlive || m.State == catalog.LivenessSuspect) && m.Addr.IsValid():
			out = append(out, m.Addr.String())
		}
	}
	if !slices.Contains(out, selfAddr(&self)) {
		out = append(out, selfAddr(&self))
	}
	slices.Sort(out)
	readHeaders(w, h.cat.TopicIndex(catalog.TopicNodes))
	h.writeJSON(w, q, out)
}
