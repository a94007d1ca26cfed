package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
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
	Definition  checkDefinition
	CreateIndex uint64
	ModifyIndex uint64
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
			Definition:  checkDefinitionOf(d),
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
	if err := h.chk.UpdateTTL(r.Context(), id, status, output); err != nil {
		h.failErr(w, r, err, fmt.Sprintf("update check %q", id), map[int]string{
			http.StatusNotFound:   unknownCheck(id, err),
			http.StatusBadRequest: "Invalid check update: " + err.Error()})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// PUT /v1/agent/check/register: add or replace a check of this node, standalone or
// of a local service (ServiceID).
func (h *Handler) checkRegister(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	def, err := definition.DecodeCheck(body)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, "Request decode failed: %v", err)
		return
	}
	if err := h.chk.RegisterCheck(r.Context(), def); err != nil {
		h.failErr(w, r, err, fmt.Sprintf("register check %q", def.ID),
			map[int]string{http.StatusBadRequest: "Invalid check registration: " + err.Error()})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// PUT /v1/agent/check/deregister/{id}: remove a check of this node.
func (h *Handler) checkDeregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.chk.DeregisterCheck(r.Context(), id); err != nil {
		h.failErr(w, r, err, fmt.Sprintf("deregister check %q", id), map[int]string{http.StatusNotFound: unknownCheck(id, err)})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// unknownCheck answers a check ID this node does not have.
func unknownCheck(id string, err error) string {
	return fmt.Sprintf("Unknown check ID %q: %v", id, err)
}
