package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

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
	if err := h.chk.SetMaintenance(r.Context(), serviceID, enable, r.URL.Query().Get("reason")); err != nil {
		h.failErr(w, r, err, "maintenance", map[int]string{http.StatusNotFound: unknownService(serviceID)})
		return
	}
	w.WriteHeader(http.StatusOK)
}
