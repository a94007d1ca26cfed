package httpapi

import (
	"net/http"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
)

// GET /v1/catalog/services: every service name with the union of its tags. With
// ?filter= (evaluated, as in Consul, on each instance as /v1/catalog/service shows
// it), a service is listed when some instance matches, with the tags of those that do.
func (h *Handler) catalogServices(w http.ResponseWriter, r *http.Request) {
	q, idx, ok := h.readWith(w, r, catalog.TopicServices, catalogService{})
	if !ok {
		return
	}
	out := map[string][]string{}
	for _, s := range h.cat.Services(q.filter) {
		if q.expr == nil {
			out[s.Name] = emptySlice(s.Tags)
			continue
		}
		insts := h.cat.ServiceInstances(s.Name, catalog.Filter{NodeMeta: q.filter.NodeMeta})
		entries := make([]catalogService, 0, len(insts))
		for i := range insts {
			entries = append(entries, toCatalogService(&insts[i], idx))
		}
		kept, err := filterSlice(q.expr, entries)
		if err != nil {
			h.failQuery(w, r, err)
			return
		}
		if len(kept) == 0 {
			continue
		}
		tags := []string{}
		for _, e := range kept {
			tags = append(tags, e.ServiceTags...)
		}
		slices.Sort(tags)
		out[s.Name] = slices.Compact(tags)
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// GET /v1/catalog/service/{name}: every instance of a service, whatever its health.
// An unknown service is an empty list, as in Consul.
func (h *Handler) catalogService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q, idx, ok := h.readWith(w, r, catalog.ServiceTopic(name), catalogService{})
	if !ok {
		return
	}
	h.writeCached(w, r, q, idx, func() (any, error) {
		f := q.filter
		f.PassingOnly = false // the catalog view ignores health
		insts := h.cat.ServiceInstances(name, f)
		out := make([]catalogService, 0, len(insts))
		for i := range insts {
			out = append(out, toCatalogService(&insts[i], idx))
		}
		out, err := filterSlice(q.expr, out)
		if err != nil {
			return nil, err
		}
		sortNear(h, q, out, func(s *catalogService) string { return s.Node })
		return out, nil
	})
}
