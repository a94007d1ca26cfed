package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/rumor-sd/rumor/catalog"
)

// ErrConflict is wrapped by errors of a request that conflicts with the state of
// what it acts on (force-leave of a node that has not failed): 409.
var ErrConflict = errors.New("conflict")

// statusOf is the one mapping from errors to HTTP statuses: the errors of the
// interfaces the API calls (catalog.ErrNotFound 404, catalog.ErrInvalid 400,
// ErrConflict 409), of reading a request (a body over MaxBodyBytes 413) and of
// parsing a query (400; an unreachable ?dc= 500, as Consul answers it). Anything
// else is the server's fault: 500.
func statusOf(err error) int {
	var tooBig *http.MaxBytesError
	var bad *badRequest
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, catalog.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, catalog.ErrInvalid), errors.As(err, &bad):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// failErr answers a failed call with statusOf(err). The client reads the endpoint's
// own words for that status, if words has them; else, for a server error, op and the
// error (and the error is logged); else the error as it is.
func (h *Handler) failErr(w http.ResponseWriter, r *http.Request, err error, op string, words map[int]string) {
	code := statusOf(err)
	msg, ok := words[code]
	switch {
	case ok:
	case code >= 500 && op != "":
		h.log.Error(op, "error", err)
		msg = op + ": " + err.Error()
	default:
		msg = err.Error()
	}
	h.fail(w, r, code, "%s", msg)
}

// failQuery answers an error of parsing or evaluating a read's query (400), of
// reaching its ?dc= or encoding its answer (500).
func (h *Handler) failQuery(w http.ResponseWriter, r *http.Request, err error) {
	h.failErr(w, r, err, "", nil)
}

// fail answers with a plain-text error, as Consul does.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.log.Debug("http request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", msg)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
