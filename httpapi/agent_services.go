package httpapi

import (
	"fmt"
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

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
		h.failErr(w, r, err, fmt.Sprintf("register service %q", svc.Name),
			map[int]string{http.StatusBadRequest: "Invalid service registration: " + err.Error()})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// PUT /v1/agent/service/deregister/{id}: remove a service of this node.
func (h *Handler) serviceDeregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.ag.DeregisterService(r.Context(), id); err != nil {
		h.failErr(w, r, err, fmt.Sprintf("deregister service %q", id), map[int]string{http.StatusNotFound: unknownService(id)})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// unknownService is Consul's answer for a service ID this node does not have.
func unknownService(id string) string {
	return fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)
}
