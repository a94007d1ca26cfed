package definition

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// ParseDuration reads a duration as Consul's config files and HTTP API write it: Go
// syntax with a unit ("10s", "1m30s", "500ms"). The empty string means unset and
// yields 0; a number without a unit and negative durations are refused. Errors wrap
// catalog.ErrInvalid, say what was expected and leave the field to the caller.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(t)
	switch {
	case err == nil && d < 0:
		return 0, invalidf("%q must not be negative", s)
	case err == nil:
		return d, nil
	}
	if _, nerr := strconv.ParseFloat(t, 64); nerr == nil {
		return 0, invalidf("%q is not a duration (use %ss)", s, t)
	}
	return 0, invalidf("%q is not a duration (use e.g. 10s, 500ms or 1m30s)", s)
}

// ParseInitialStatus reads a check's initial status by name: passing, warning or
// critical (maintenance is an operator's act, not a check's state).
func ParseInitialStatus(s string) (catalog.Status, error) {
	st, err := catalog.ParseStatus(s)
	if err != nil || st == catalog.StatusMaintenance {
		return 0, invalidf("%q is not an initial status: want passing, warning or critical", s)
	}
	return st, nil
}

// invalid is an error in the user's words that wraps catalog.ErrInvalid.
type invalid struct{ msg string }

func (e *invalid) Error() string { return e.msg }
func (e *invalid) Unwrap() error { return catalog.ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalid{msg: fmt.Sprintf(format, args...)}
}
