package httpapi

import (
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
)

// GET /v1/health/service/{name}: instances with their node and checks (serfHealth
// first); ?passing keeps those whose every check passes.
func (h *Handler) healthService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q, idx, ok := h.readWith(w, r, catalog.ServiceTopic(name), serviceEntry{})
	if !ok {
		return
	}
	h.writeCached(w, r, q, idx, func() (any, error) {
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
		return out, nil
	})
}
