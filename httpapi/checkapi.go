package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/rumor-sd/rumor/catalog"
)

// agentCheck is Consul's AgentCheck, as GET /v1/agent/checks returns it.
type agentCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Interval    string
	Timeout     string
	ExposedPort int
	Definition  agentCheckDefinition
	CreateIndex uint64
	ModifyIndex uint64
}

// agentCheckDefinition is Consul's HealthCheckDefinition. Its durations are strings
// ("0s" when unset, never ""), as Consul's ReadableDuration marshals them.
type agentCheckDefinition struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	TCPUseTLS                      bool                `json:",omitempty"`
	UDP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	OSService                      string              `json:",omitempty"`
	ScriptArgs                     []string            `json:",omitempty"`
	TTL                            string
	Interval                       string
	Timeout                        string
	DeregisterCriticalServiceAfter string
}

// GET /v1/agent/checks: this node's checks by ID, at their current status.
func (h *Handler) agentChecks(w http.ResponseWriter, r *http.Request) {
	self := h.ag.Self()
	q, idx, ok := h.readWith(w, r, catalog.NodeTopic(self.Node.Name), agentCheck{})
	if !ok {
		return
	}
	out := map[string]agentCheck{}
	for _, lc := range h.chk.LocalChecks() {
		c, d := &lc.Check, &lc.Definition
		out[c.ID] = agentCheck{
			Node: self.Node.Name, CheckID: c.ID, Name: c.Name, Status: c.Status.String(),
			Notes: c.Notes, Output: c.Output, ServiceID: c.ServiceID, ServiceName: lc.ServiceName,
			ServiceTags: emptySlice(lc.ServiceTags), Type: c.Type,
			Interval: c.Interval.String(), Timeout: c.Timeout.String(),
			Definition: agentCheckDefinition{
				HTTP: d.HTTP, Header: d.Header, Method: d.Method, Body: d.Body,
				TLSServerName: d.TLSServerName, TLSSkipVerify: d.TLSSkipVerify,
				TCP: d.TCP, TCPUseTLS: d.TCPUseTLS, UDP: d.UDP, GRPC: d.GRPC, GRPCUseTLS: d.GRPCUseTLS,
				OSService: d.OSService, ScriptArgs: d.ScriptArgs,
				TTL: d.TTL.String(), Interval: d.Interval.String(), Timeout: d.Timeout.String(),
				DeregisterCriticalServiceAfter: d.DeregisterCriticalServiceAfter.String(),
			},
			CreateIndex: idx, ModifyIndex: idx,
		}
	}
	if err := filterMap(q.expr, out); err != nil {
		h.failQuery(w, r, err)
		return
	}
	readHeaders(w, idx)
	h.writeJSON(w, q, out)
}

// checkHeartbeat serves PUT /v1/agent/check/pass|warn|fail/{id}?note=: a TTL
// heartbeat with the note as the check's output.
func (h *Handler) checkHeartbeat(status catalog.Status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.updateTTL(w, r, r.PathValue("id"), status, r.URL.Query().Get("note"))
	}
}

// checkUpdateBody is the body of PUT /v1/agent/check/update/{id}.
type checkUpdateBody struct {
	Status string
	Output string
}

// PUT /v1/agent/check/update/{id} with {"Status": "passing", "Output": "..."}.
func (h *Handler) checkUpdate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body checkUpdateBody
	raw, ok := h.readBody(w, r) // 413 beyond MaxBodyBytes
	if !ok {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		h.fail(w, r, http.StatusBadRequest, "Request decode failed: %v (want {\"Status\": \"passing\", \"Output\": \"...\"})", strings.TrimPrefix(err.Error(), "json: "))
		return
	}
	status, err := catalog.ParseStatus(body.Status)
	if err != nil || status == catalog.StatusMaintenance {
		h.fail(w, r, http.StatusBadRequest, "Invalid check status: %q: want passing, warning or critical", body.Status)
		return
	}
	h.updateTTL(w, r, id, status, body.Output)
}

// updateTTL forwards a heartbeat and maps its errors. An unknown check is 404, as in
// Consul. A check that is not a TTL check is 400: Consul answers 500 there, but the
// request is at fault and a 4xx says so, and clients treat both as failures.
func (h *Handler) updateTTL(w http.ResponseWriter, r *http.Request, id string, status catalog.Status, output string) {
	err := h.chk.UpdateTTL(r.Context(), id, status, output)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, catalog.ErrNotFound):
		h.fail(w, r, http.StatusNotFound, "Unknown check ID %q: %v", id, err)
	case errors.Is(err, catalog.ErrInvalid):
		h.fail(w, r, http.StatusBadRequest, "Invalid check update: %v", err)
	default:
		h.log.Error("update check", "check", id, "error", err)
		h.fail(w, r, http.StatusInternalServerError, "update check %q: %v", id, err)
	}
}

// parseEnable reads the required ?enable=true|false of the maintenance endpoints.
func parseEnable(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("enable")
	if v == "" {
		return false, errors.New("missing value for enable: give ?enable=true or ?enable=false")
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return false, errors.New("invalid value for enable: " + strconv.Quote(v) + ": want true or false")
	}
	return b, nil
}

// PUT /v1/agent/service/maintenance/{id}?enable=true|false&reason=...
func (h *Handler) serviceMaintenance(w http.ResponseWriter, r *http.Request) {
	h.maintenance(w, r, r.PathValue("id"))
}

// PUT /v1/agent/maintenance?enable=true|false&reason=...
func (h *Handler) nodeMaintenance(w http.ResponseWriter, r *http.Request) {
	h.maintenance(w, r, "")
}

func (h *Handler) maintenance(w http.ResponseWriter, r *http.Request, serviceID string) {
	enable, err := parseEnable(r)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, "%v", err)
		return
	}
	err = h.chk.SetMaintenance(r.Context(), serviceID, enable, r.URL.Query().Get("reason"))
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, catalog.ErrNotFound):
		h.fail(w, r, http.StatusNotFound, "Unknown service ID %q. Ensure that the service ID is passed, not the service name.", serviceID)
	case errors.Is(err, catalog.ErrInvalid):
		h.fail(w, r, http.StatusBadRequest, "%v", err)
	default:
		h.log.Error("maintenance", "service", serviceID, "error", err)
		h.fail(w, r, http.StatusInternalServerError, "maintenance: %v", err)
	}
}
