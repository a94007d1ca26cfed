package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// checkRegistrationOnly are the fields of Consul's AgentCheckRegistration beyond its
// embedded AgentServiceCheck (whose fields serviceCheck holds; "ID" is its alias of
// CheckID). Namespace and Partition are accepted only empty or "default".
type checkRegistrationOnly struct {
	ServiceID string
	Namespace string
	Partition string
}

// ParseCheckRegistration decodes the body of PUT /v1/agent/check/register (Consul's
// AgentCheckRegistration: ID, Name, Notes, ServiceID and a check's fields, in the
// API's or config files' spelling) into a CheckDefinition. Errors name the field.
func ParseCheckRegistration(body []byte) (CheckDefinition, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return CheckDefinition{}, errors.New("the body is empty: send a JSON check such as {\"Name\": \"mem\", \"TTL\": \"30s\"}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return CheckDefinition{}, describeJSONError(err)
	}
	if obj == nil {
		return CheckDefinition{}, errors.New("the body is null: send a JSON object")
	}
	// Split off the registration's own fields; the rest is a check.
	own := map[string]json.RawMessage{}
	for k, v := range obj {
		if _, ok := fieldFor(reflect.TypeFor[checkRegistrationOnly](), k); ok {
			own[k] = v
			delete(obj, k)
		}
	}
	var reg checkRegistrationOnly
	if err := decodeStrict(own, &reg); err != nil {
		return CheckDefinition{}, err
	}
	var sc serviceCheck
	if err := decodeStrict(obj, &sc); err != nil {
		return CheckDefinition{}, err
	}
	if reg.Namespace != "" && reg.Namespace != "default" || reg.Partition != "" && reg.Partition != "default" {
		return CheckDefinition{}, errors.New("Namespace/Partition: rumor has no namespaces or partitions; leave them empty or \"default\"")
	}
	def, err := sc.convert("check")
	if err != nil {
		return CheckDefinition{}, err
	}
	def.ServiceID = reg.ServiceID
	return def, nil
}

// decodeStrict decodes a JSON object, given as its members, into the struct dst
// points to, matching keys as registrations do and refusing unknown ones.
func decodeStrict(obj map[string]json.RawMessage, dst any) error {
	raw, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	canon, err := canonicalKeys(raw, reflect.TypeOf(dst))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return describeJSONError(err)
	}
	return nil
}

// readBody reads a request body of at most MaxBodyBytes, answering 413 beyond it.
// ok is false when it has already answered.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	// The server has no read timeout (it would cut blocking queries): bound the body
	// read here. Test recorders do not support deadlines; that is fine.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(writeSlack))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.fail(w, r, http.StatusRequestEntityTooLarge, "Request body too large: the limit is %d bytes", tooBig.Limit)
		return nil, false
	case err != nil:
		h.fail(w, r, http.StatusBadRequest, "Request decode failed: read the body: %v", err)
		return nil, false
	}
	return body, true
}

// PUT /v1/agent/check/register: add or replace a check of this node, standalone or
// of a local service (ServiceID).
func (h *Handler) checkRegister(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	def, err := ParseCheckRegistration(body)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, "Request decode failed: %v", err)
		return
	}
	err = h.chk.RegisterCheck(r.Context(), def)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, catalog.ErrInvalid):
		h.fail(w, r, http.StatusBadRequest, "Invalid check registration: %v", err)
	default:
		h.log.Error("register check", "check", def.ID, "error", err)
		h.fail(w, r, http.StatusInternalServerError, "register check %q: %v", def.ID, err)
	}
}

// PUT /v1/agent/check/deregister/{id}: remove a check of this node.
func (h *Handler) checkDeregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := h.chk.DeregisterCheck(r.Context(), id)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, catalog.ErrNotFound):
		h.fail(w, r, http.StatusNotFound, "Unknown check ID %q: %v", id, err)
	case errors.Is(err, catalog.ErrInvalid):
		h.fail(w, r, http.StatusBadRequest, "%v", err)
	default:
		h.log.Error("deregister check", "check", id, "error", err)
		h.fail(w, r, http.StatusInternalServerError, "deregister check %q: %v", id, err)
	}
}
