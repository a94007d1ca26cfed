package httpapi

import (
	"errors"
	"io"
	"net/http"
	"time"
)

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
