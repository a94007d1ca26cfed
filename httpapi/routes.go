package httpapi

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// route is one endpoint: its ServeMux pattern (method and path) and handler.
// Endpoints served through an optional interface of Config are left out without it,
// so their paths answer 404 (as no Checks, no Membership) or 501 (no Keyring, like
// the other operator endpoints).
type route struct {
	pattern string
	handle  http.HandlerFunc
	serve   bool // false: left out
}

// routes is the API's one route table, by URL prefix. Patterns carry their method,
// so other methods get 405 with an Allow header (see notFound).
func (h *Handler) routes(metrics prometheus.Gatherer) []route {
	chk, mem, keys, ui := h.chk != nil, h.mem != nil, h.keys != nil, h.ui != nil
	return []route{
		{"GET /v1/agent/self", h.agentSelf, true},
		{"PUT /v1/agent/reload", h.agentReload, true},
		{"GET /v1/agent/members", h.agentMembers, true},
		{"PUT /v1/agent/join/{address}", h.agentJoin, mem},
		{"PUT /v1/agent/leave", h.agentLeave, mem},
		{"PUT /v1/agent/force-leave/{node}", h.agentForceLeave, mem},
		{"GET /v1/agent/services", h.agentServices, true},
		{"PUT /v1/agent/service/register", h.serviceRegister, true},
		{"PUT /v1/agent/service/deregister/{id}", h.serviceDeregister, true},
		{"PUT /v1/agent/service/maintenance/{id}", h.serviceMaintenance, chk},
		{"PUT /v1/agent/maintenance", h.nodeMaintenance, chk},
		{"GET /v1/agent/checks", h.agentChecks, chk},
		{"PUT /v1/agent/check/register", h.checkRegister, chk},
		{"PUT /v1/agent/check/deregister/{id...}", h.checkDeregister, chk},
		{"PUT /v1/agent/check/pass/{id...}", h.checkHeartbeat(catalog.StatusPassing), chk},
		{"PUT /v1/agent/check/warn/{id...}", h.checkHeartbeat(catalog.StatusWarning), chk},
		{"PUT /v1/agent/check/fail/{id...}", h.checkHeartbeat(catalog.StatusCritical), chk},
		{"PUT /v1/agent/check/update/{id...}", h.checkUpdate, chk},
		{"GET /v1/catalog/services", h.catalogServices, true},
		{"GET /v1/catalog/service/{name}", h.catalogService, true},
		{"GET /v1/catalog/nodes", h.catalogNodes, true},
		{"GET /v1/catalog/node/{node}", h.catalogNode, true},
		{"GET /v1/catalog/datacenters", h.catalogDatacenters, true},
		{"GET /v1/health/service/{name}", h.healthService, true},
		{"GET /v1/health/node/{node}", h.healthNode, true},
		{"GET /v1/health/checks/{service}", h.healthChecks, true},
		{"GET /v1/health/state/{state}", h.healthState, true},
		{"GET /v1/status/leader", h.statusLeader, true},
		{"GET /v1/status/peers", h.statusPeers, true},
		{"GET /v1/operator/keyring", h.keyringList, keys},
		{"POST /v1/operator/keyring", h.keyringOp(KeyInstall), keys},
		{"PUT /v1/operator/keyring", h.keyringOp(KeyUse), keys},
		{"DELETE /v1/operator/keyring", h.keyringOp(KeyRemove), keys},
		{"GET /v1/rumor/members", h.rumorMembers, true},
		{"GET /v1/rumor/watch", h.watch, true},
		{"GET /v1/rumor/upstreams", h.rumorUpstreams, h.proxy != nil},
		{"GET /v1/rumor/reachability", h.rumorReachability, h.reach != nil},
		{"GET /v1/rumor/moves", h.rumorMoves, true},
		{"PUT /v1/rumor/service/move/{id}", h.rumorServiceMove, h.mover != nil},
		{"GET /metrics", h.metricsHandler(metrics), metrics != nil},
		{"/ui/", h.serveUI, ui}, // the web UI, which applies the token rules itself (Config.UI)
		{"GET /ui", h.serveUI, ui},
		{"GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) }, ui},
		{"/", h.notFound, true},
	}
}

// outOfScope names the Consul features rumor does not do, by path prefix, so a client
// calling them learns why rather than seeing a bare 404.
var outOfScope = []struct{ prefix, what string }{
	{"/v1/kv/", "a key/value store"},
	{"/v1/session/", "sessions"},
	{"/v1/acl/", "ACLs"},
	{"/v1/connect/", "Connect (service mesh)"},
	{"/v1/query", "prepared queries"},
	{"/v1/txn", "transactions"},
	{"/v1/snapshot", "snapshots (there is no server state to snapshot)"},
	{"/v1/operator/", "operator endpoints (there are no servers)"},
	{"/v1/agent/connect/", "Connect (service mesh)"},
	{"/v1/catalog/connect/", "Connect (service mesh)"},
	{"/v1/health/connect/", "Connect (service mesh)"},
	{"/v1/config", "config entries (they configure Connect and servers)"},
	{"/v1/peering", "cluster peering"},
	{"/v1/namespace", "namespaces"},
	{"/v1/partition", "admin partitions"},
	{"/v1/event/", "user events"},
}

// notFound answers paths no pattern matches: 405 when the path exists for another
// method (the catch-all would otherwise hide ServeMux's own 405), 501 for Consul
// features rumor leaves out, else 404.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.fail(w, r, http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))
		return
	}
	for _, o := range outOfScope {
		if strings.HasPrefix(r.URL.Path, o.prefix) || r.URL.Path == strings.TrimSuffix(o.prefix, "/") {
			h.fail(w, r, http.StatusNotImplemented, "rumor does not implement %s: %s is a Consul feature rumor leaves out", r.URL.Path, o.what)
			return
		}
	}
	h.fail(w, r, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
}
