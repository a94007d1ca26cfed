package config

import (
	"errors"
	"strings"
)

// Error is one problem in a config file: the file, the field (a path such as
// "services[1].checks[0].interval"; empty when the whole file is at fault) and why.
type Error struct {
	File   string `json:"file"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// Error implements error: "web.json: services[1].checks[0].interval: reason".
func (e *Error) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Reason
	}
	return e.File + ": " + e.Field + ": " + e.Reason
}

// Errors is every problem Load found, in file order. Load returns it as its error
// when it is not empty.
type Errors []*Error

// Error implements error: one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// AsErrors returns the problems err reports: those of an Errors, or err as a single
// problem without a file.
func AsErrors(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	if err == nil {
		return nil
	}
	return Errors{{Reason: err.Error()}}
}
