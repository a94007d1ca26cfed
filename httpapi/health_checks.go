package httpapi

import (
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
)

// GET /v1/health/node/{node}: every check of a node, serfHealth included. An unknown
// node has none: an empty list, as in Consul.
func (h *Handler) healthNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("node")
	q, idx, ok := h.readWith(w, r, catalog.NodeTopic(name), healthCheck{})
	if !ok {
		return
	}
	h.writeChecks(w, r, q, idx, h.cat.NodeChecks(name))
}

// GET /v1/health/checks/{service}: the checks of every instance of a service (its
// own checks, not its nodes'), as in Consul. An unknown service is an empty list.
func (h *Handler) healthChecks(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	q, idx, ok := h.readWith(w, r, catalog.ServiceTopic(name), healthCheck{})
	if !ok {
		return
	}
	f := catalog.Filter{NodeMeta: q.filter.NodeMeta}
	insts := h.cat.ServiceInstances(name, f)
	out := []healthCheck{}
	for i := range insts {
		inst := &insts[i]
		for j := range inst.Checks {
			if c := &inst.Checks[j]; c.ServiceID == inst.Service.ID {
				out = append(out, toHealthCheck(inst.Node.Node.Name, c, &inst.Service, idx))
			}
		}
	}
	h.writeCheckList(w, r, q, idx, out)
}

// GET /v1/health/state/{state}: every check in a state (any, passing, warning,
// critical or maintenance), serfHealth included. It depends on every node, so it
// blocks on the whole catalog's index.
func (h *Handler) healthState(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("state")
	var state catalog.Status // 0: any
	if raw != "any" {
		st, err := catalog.ParseStatus(raw)
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, "invalid state %q: want any, passing, warning, critical or maintenance", raw)
			return
		}
		state = st
	}
	q, idx, ok := h.readWith(w, r, catalog.TopicAll, healthCheck{})
	if !ok {
		return
	}
	h.writeChecks(w, r, q, idx, h.cat.ChecksInState(state, catalog.Filter{NodeMeta: q.filter.NodeMeta}))
}

// writeChecks answers with checks in Consul's HealthCheck shape, each with the name
// and tags of the service it checks (looked up once per node).
func (h *Handler) writeChecks(w http.ResponseWriter, r *http.Request, q query, idx uint64, entries []catalog.CheckEntry) {
	services := map[string]map[string]*catalog.Service{} // node → service ID → service
	out := make([]healthCheck, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		var svc *catalog.Service
		if e.Check.ServiceID != "" {
			byID, seen := services[e.Node]
			if !seen {
				byID = map[string]*catalog.Service{}
				if _, svcs, err := h.cat.NodeServices(e.Node); err == nil {
					for j := range svcs {
						byID[svcs[j].ID] = &svcs[j]
					}
				}
				services[e.Node] = byID
			}
			svc = byID[e.Check.ServiceID]
		}
		hc := toHealthCheck(e.Node, &e.Check, svc, idx)
		if hc.ServiceName == "" {
			hc.ServiceName = e.ServiceName
		}
		out = append(out, hc)
	}
	h.writeCheckList(w, r, q, idx, out)
}

// writeCheckList filters, orders and sends a list of checks.
func (h *Handler) writeCheckList(w http.ResponseWriter, r *http.Request, q query, idx uint64, out []healthCheck) {
	out, err := filterSlice(q.expr, out)
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	sortNear(h, q, out, func(c *healthCheck) string { return c.Node })
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}
