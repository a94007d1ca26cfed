package httpapi

import (
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
)

// GET /v1/health/service/{name}: instances with their node and checks (serfHealth
// first); ?passing keeps those whose every check passes. With a Reachability, the
// instances this agent can reach come first, and ?reachable leaves the others out.
func (h *Handler) healthService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q, idx, ok := h.readWith(w, r, catalog.ServiceTopic(name), serviceEntry{})
	if !ok {
		return
	}
	build := func() (any, error) {
		insts := h.cat.ServiceInstances(name, q.filter)
		out := make([]serviceEntry, 0, len(insts))
		for i := range insts {
			out = append(out, toServiceEntry(&insts[i], idx))
		}
		out, err := filterSlice(q.expr, out)
		if err != nil {
			return nil, err
		}
		sortNear(h, q, out, func(e *serviceEntry) string { return e.Node.Node })
		if h.reach != nil && (q.reachable || h.reach.Active()) {
			out = h.reachOrder(out, q.reachable)
		}
		return out, nil
	}
	if h.reach != nil && (q.reachable || h.reach.Active()) {
		// Reachability moves without the index: not from the answer cache.
		v, err := build()
		if err != nil {
			h.failQuery(w, r, err)
			return
		}
		readHeaders(w, idx)
		h.writeJSON(w, q, v)
		return
	}
	h.writeCached(w, r, q, idx, build)
}
