package httpapi

import (
	"errors"
	"maps"
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// GET /v1/agent/self. consul/api decodes it as map[string]map[string]any, so every
// top-level value is an object; Config.Datacenter and Config.NodeName must be strings
// (Agent().NodeName and Prometheus read them).
func (h *Handler) agentSelf(w http.ResponseWriter, r *http.Request) {
	q, ok := h.query(w, r, nil)
	if !ok {
		return
	}
	self := h.ag.Self()
	n := &self.Node
	out := map[string]any{
		"Config": map[string]any{
			"Datacenter":        n.Datacenter,
			"PrimaryDatacenter": n.Datacenter,
			"NodeName":          n.Name,
			"NodeID":            n.ID,
			"Revision":          "",
			"Server":            false,
			"Version":           ConsulVersion,
			"BuildDate":         "",
		},
		"DebugConfig": map[string]any{
			"Datacenter":       n.Datacenter,
			"NodeName":         n.Name,
			"NodeID":           n.ID,
			"AdvertiseAddrLAN": n.Address,
			"ServerMode":       false,
		},
		"Member": h.selfMember(&self),
		"Meta":   emptyMap(maps.Clone(n.Meta)),
		"Stats": map[string]map[string]string{
			"rumor": {"version": self.Version, "consul_api": ConsulVersion},
		},
	}
	readHeaders(w, h.cat.TopicIndex(catalog.NodeTopic(n.Name)))
	h.writeJSON(w, q, out)
}

// selfMember is this node's AgentMember, from its own view of membership.
func (h *Handler) selfMember(self *Self) agentMember {
	m := Member{Name: self.Node.Name, Addr: self.GossipAddr, State: catalog.LivenessAlive}
	for _, x := range h.ag.Members() {
		if x.Name == m.Name {
			m = x
			break
		}
	}
	tags := map[string]string{"role": "node", "dc": self.Node.Datacenter, "id": self.Node.ID}
	return toMember(&m, tags)
}

func toMember(m *Member, tags map[string]string) agentMember {
	return agentMember{
		Name: m.Name, Addr: m.Addr.Addr().String(), Port: m.Addr.Port(),
		Tags: tags, Status: memberStatus(m.State),
		ProtocolMin: protocolMin, ProtocolMax: protocolMax, ProtocolCur: protocolCur,
		DelegateMin: delegateMin, DelegateMax: delegateMax, DelegateCur: delegateCur,
	}
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

// GET /v1/agent/services: the services registered on this node, by ID. It blocks on
// the node's own topic, which moves whenever its records do.
func (h *Handler) agentServices(w http.ResponseWriter, r *http.Request) {
	self := h.ag.Self()
	q, idx, ok := h.readWith(w, r, catalog.NodeTopic(self.Node.Name), agentService{})
	if !ok {
		return
	}
	out := map[string]agentService{}
	for _, s := range h.ag.LocalServices() {
		out[s.ID] = toAgentService(&s, self.Node.Datacenter)
	}
	if err := filterMap(q.expr, out); err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// PUT /v1/agent/service/register: add or replace a service on this node.
func (h *Handler) serviceRegister(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r) // 413 beyond MaxBodyBytes
	if !ok {
		return
	}
	svc, err := definition.DecodeService(body)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, "Request decode failed: %v", err)
		return
	}
	if err := h.ag.RegisterService(r.Context(), svc); err != nil {
		if errors.Is(err, catalog.ErrInvalid) {
			h.fail(w, r, http.StatusBadRequest, "Invalid service registration: %v", err)
			return
		}
		h.log.Error("register service", "service", svc.Name, "error", err)
		h.fail(w, r, http.StatusInternalServerError, "register service %q: %v", svc.Name, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// PUT /v1/agent/service/deregister/{id}: remove a service of this node.
func (h *Handler) serviceDeregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.ag.DeregisterService(r.Context(), id); err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			h.fail(w, r, http.StatusNotFound, "Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)
			return
		}
		h.log.Error("deregister service", "id", id, "error", err)
		h.fail(w, r, http.StatusInternalServerError, "deregister service %q: %v", id, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
