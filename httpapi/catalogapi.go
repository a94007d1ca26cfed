package httpapi

import (
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
)

// GET /v1/catalog/services: every service name with the union of its tags.
func (h *Handler) catalogServices(w http.ResponseWriter, r *http.Request) {
	q, idx, ok := h.read(w, r, catalog.TopicServices)
	if !ok {
		return
	}
	out := map[string][]string{}
	for _, s := range h.cat.Services(q.filter) {
		out[s.Name] = emptySlice(s.Tags)
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// GET /v1/catalog/service/{name}: every instance of a service, whatever its health.
// An unknown service is an empty list, as in Consul.
func (h *Handler) catalogService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q, idx, ok := h.read(w, r, catalog.ServiceTopic(name))
	if !ok {
		return
	}
	f := q.filter
	f.PassingOnly = false // the catalog view ignores health
	insts := h.cat.ServiceInstances(name, f)
	out := make([]catalogService, 0, len(insts))
	for i := range insts {
		out = append(out, toCatalogService(&insts[i], idx))
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// GET /v1/health/service/{name}: instances with their node and checks (serfHealth
// first); ?passing keeps those whose every check passes.
func (h *Handler) healthService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q, idx, ok := h.read(w, r, catalog.ServiceTopic(name))
	if !ok {
		return
	}
	insts := h.cat.ServiceInstances(name, q.filter)
	out := make([]serviceEntry, 0, len(insts))
	for i := range insts {
		out = append(out, toServiceEntry(&insts[i], idx))
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// GET /v1/catalog/nodes: every node with records, by name.
func (h *Handler) catalogNodes(w http.ResponseWriter, r *http.Request) {
	q, idx, ok := h.read(w, r, catalog.TopicNodes)
	if !ok {
		return
	}
	nodes := h.cat.Nodes(q.filter)
	out := make([]node, 0, len(nodes))
	for i := range nodes {
		out = append(out, toNode(&nodes[i].Node, idx))
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}
