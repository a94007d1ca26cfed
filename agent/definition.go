package agent

import (
	"errors"
	"strings"

	"github.com/rumor-sd/rumor/catalog"
)

// ServiceDefinition is a service and its checks as a config file defines them (the
// config package decodes files into these). The agent owns every definition it is
// given through Config.ConfigServices: Reload adds, replaces and removes them.
type ServiceDefinition struct {
	Service catalog.Service
	Checks  []CheckDefinition
	// File names the file that defines the service, for messages and logs.
	File string
}

// ValidateService checks a service and its checks exactly as RegisterService does
// (defaults filled in first: an empty ID is the name), with script checks allowed
// only if enableScriptChecks. It reports every problem, each a *catalog.FieldError
// wrapping catalog.ErrInvalid whose Field is a path such as "service.name" or
// "service.checks[1].interval" (checks[i] is the i-th check of the list given).
func ValidateService(svc catalog.Service, checks []CheckDefinition, enableScriptChecks bool) error {
	ls, err := normalize(svc, checks)
	return errors.Join(err, checkRunnable(&ls, enableScriptChecks))
}

// within re-roots the errors of a check's validation at field: the catalog's and the
// health package's "check.<x>" become "<field>.<x>", so every error names its place
// in the registration. Errors that name no field are attributed to field itself.
func within(field string, err error) error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *catalog.FieldError
		if !errors.As(err, &fe) {
			out = append(out, &catalog.FieldError{Field: field, Reason: err.Error()})
			return
		}
		f := field
		switch {
		case fe.Field == "check":
		case strings.HasPrefix(fe.Field, "check."):
			f = field + strings.TrimPrefix(fe.Field, "check")
		case strings.HasPrefix(fe.Field, "check["):
			f = field + strings.TrimPrefix(fe.Field, "check")
		default:
			f = field + "." + fe.Field
		}
		out = append(out, &catalog.FieldError{Field: f, Reason: fe.Reason})
	}
	walk(err)
	return errors.Join(out...)
}

// ValidateEncryptKey checks a gossip encryption key as Config.EncryptKey takes it:
// base64 of 16, 24 or 32 bytes.
func ValidateEncryptKey(key string) error {
	_, err := (&Config{EncryptKey: key}).keys()
	return err
}
