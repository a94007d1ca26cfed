package httpapi

import (
	"maps"
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
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
