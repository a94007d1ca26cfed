package reachability

import (
	"errors"
	"syscall"
)

// isRefused reports whether err is a connection refused (RST): the host answered.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
