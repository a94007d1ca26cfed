package httpapi

import (
	"errors"
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

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
