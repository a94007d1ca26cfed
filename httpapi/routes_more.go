package httpapi

// routesExtra registers the catalog, health, status and rumor endpoints beyond the
// Must set (kept apart from routes so branches adding endpoints merge cleanly).
func (h *Handler) routesExtra() {
	m := h.mux
	m.HandleFunc("GET /v1/catalog/node/{node}", h.catalogNode)
	m.HandleFunc("GET /v1/catalog/datacenters", h.catalogDatacenters)
	m.HandleFunc("GET /v1/health/node/{node}", h.healthNode)
	m.HandleFunc("GET /v1/health/checks/{service}", h.healthChecks)
	m.HandleFunc("GET /v1/health/state/{state}", h.healthState)
	m.HandleFunc("GET /v1/status/leader", h.statusLeader)
	m.HandleFunc("GET /v1/status/peers", h.statusPeers)
	m.HandleFunc("GET /v1/rumor/members", h.rumorMembers)
}
