package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
)

// TestStatusOf: the one mapping from errors to statuses, through wrapping.
func TestStatusOf(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("agent: %w", catalog.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("agent: register: %w", &catalog.FieldError{Field: "service.name", Reason: "empty"}), http.StatusBadRequest},
		{badf("invalid index"), http.StatusBadRequest},
		{fmt.Errorf("%w: %w", ErrConflict, catalog.ErrInvalid), http.StatusConflict},
		{fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 1}), http.StatusRequestEntityTooLarge},
		{&noDatacenter{dc: "dc9"}, http.StatusInternalServerError},
		{&encodeError{err: errors.New("x")}, http.StatusInternalServerError},
		{errors.New("disk full"), http.StatusInternalServerError},
	} {
		if got := statusOf(tt.err); got != tt.want {
			t.Errorf("statusOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
