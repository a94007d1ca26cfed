package definition

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rumor-sd/rumor/catalog"
)

// ErrScriptChecksDisabled is why a script check is refused when Policy does not
// enable them (Consul answers the same with 400).
var ErrScriptChecksDisabled = errors.New("script checks are disabled: start the agent with --enable-script-checks to run them")

// ErrScriptChecksNeedToken is why a script check registered through the HTTP API is
// refused by an agent that enables script checks but has no write token: anyone who
// can reach the API could make it run any program as its user.
var ErrScriptChecksNeedToken = errors.New("script checks through the HTTP API need a write token: start the agent with --http-token as well as --enable-script-checks, or define the check in a config file with --enable-local-script-checks")

// Policy is what the agent allows beyond a definition's own rules.
type Policy struct {
	// EnableScriptChecks allows script checks, which run any program as the agent's
	// user (Consul's --enable-script-checks). Default off.
	EnableScriptChecks bool
	// ScriptChecksRefused is the reason given for a script check when
	// EnableScriptChecks is off. Default ErrScriptChecksDisabled.
	ScriptChecksRefused error
}

// Validate reports every problem with a normalized service and its checks, joined;
// each is a *catalog.FieldError, so errors.Is(err, catalog.ErrInvalid) holds. Fields
// are paths such as "service.name" or "service.checks[1].interval", checks[i] being
// the i-th of the normalized Checks. Problems of the service record and of each
// check are all reported, so a user fixes a definition in one go.
func (s *Service) Validate(p Policy) error {
	var errs []error
	r := s.Record()
	if err := r.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, k := range slices.Sorted(maps.Keys(s.TaggedAddresses)) {
		if a := s.TaggedAddresses[k]; a.Port != 0 && a.Port != s.Port {
			errs = append(errs, &catalog.FieldError{Field: fmt.Sprintf("service.tagged_addresses[%q].port", k),
				Reason: fmt.Sprintf("%d differs from the service's port %d; rumor keeps one port per service", a.Port, s.Port)})
		}
	}
	if s.Check != nil {
		errs = append(errs, &catalog.FieldError{Field: "service.check", Reason: "not normalized: call Normalize first"})
	}
	if err := ValidateUpstreams("service.upstreams", s.Upstreams); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i := range s.Checks {
		c := &s.Checks[i]
		field := fmt.Sprintf("service.checks[%d]", i)
		if c.ServiceID != s.ID {
			errs = append(errs, &catalog.FieldError{Field: field + ".service_id",
				Reason: fmt.Sprintf("%q: a service's check belongs to that service (%q)", c.ServiceID, s.ID)})
		}
		if seen[c.ID] {
			errs = append(errs, &catalog.FieldError{Field: field + ".id", Reason: fmt.Sprintf("%q is used twice", c.ID)})
		}
		seen[c.ID] = true
		errs = append(errs, c.problems(field, p)...)
	}
	return errors.Join(errs...)
}

// Validate reports every problem with c, joined, each a *catalog.FieldError rooted
// at "check" ("check.interval", …): a kind of check that is missing, ambiguous or not
// run by rumor, options rumor does not support, a target that is not a URL or
// host:port, a missing interval, a timeout beyond it, negative thresholds, and a
// script check that p does not allow. A check registered on its own is normalized
// first (its ID defaults to its name).
func (c *Check) Validate(p Policy) error { return errors.Join(c.problems("check", p)...) }

// problems returns what is wrong with c, each a *catalog.FieldError rooted at field.
func (c *Check) problems(field string, p Policy) []error {
	var errs []error
	bad := func(sub, format string, args ...any) {
		errs = append(errs, &catalog.FieldError{Field: field + sub, Reason: fmt.Sprintf(format, args...)})
	}
	n := c.numKinds()
	switch {
	case n == 0:
		bad("", "says nothing to check: give one of HTTP, TCP, UDP, GRPC, H2PING, OSService, ScriptArgs (Args), TTL or AliasService")
	case n > 1:
		bad("", "gives %d kinds of check at once; give exactly one", n)
	}
	if c.DockerContainerID != "" && len(c.ScriptArgs) == 0 {
		bad("", "DockerContainerID needs ScriptArgs, the command to run in the container")
	}
	if c.Status == catalog.StatusMaintenance || c.Status != 0 && !c.Status.Valid() {
		bad("", "Status: initial status must be passing, warning or critical")
	}
	r := c.Record()
	errs = append(errs, reroot(field, r.Validate())...)
	if n != 1 {
		return errs
	}
	switch {
	case !c.Runnable():
		bad("", "rumor does not run %s checks; use http, tcp, grpc, script (Args) or ttl", c.Type())
		return errs
	case c.DockerContainerID != "" || c.Shell != "" || c.TCPUseTLS || c.DisableRedirects || c.TLSServerName != "":
		bad("", "DockerContainerID, Shell, TCPUseTLS, DisableRedirects and TLSServerName are not supported by rumor's checks")
		return errs
	}
	switch typ := c.Type(); typ {
	case TypeHTTP:
		if err := checkHTTPTarget(c.HTTP); err != nil {
			bad(".http", "%v", err)
		}
		if c.Method != "" && !isToken(c.Method) {
			bad(".method", "%q is not an HTTP method", c.Method)
		}
		for _, k := range slices.Sorted(maps.Keys(c.Header)) {
			if !isToken(k) {
				bad(".header", "%q is not a valid header name", k)
			}
		}
	case TypeTCP:
		if err := checkHostPort(c.TCP); err != nil {
			bad(".tcp", "%v", err)
		}
	case TypeGRPC:
		hostPort, _, _ := strings.Cut(c.GRPC, "/")
		if err := checkHostPort(hostPort); err != nil {
			bad(".grpc", "%v (want host:port or host:port/service)", err)
		}
	case TypeScript:
		if c.ScriptArgs[0] == "" {
			bad(".args", "the program (args[0]) must not be empty")
		}
	}
	if c.Type() != TypeTTL {
		switch {
		case c.Interval == 0:
			bad(".interval", "is required for %s checks: how often to run it, e.g. \"10s\"", c.Type())
		case c.Interval > 0 && c.Timeout > c.Interval:
			bad(".timeout", "%s is longer than the interval %s: a run would still be going when the next one starts", c.Timeout, c.Interval)
		}
	}
	for _, th := range []struct {
		sub string
		n   int
	}{
		{".success_before_passing", c.SuccessBeforePassing},
		{".failures_before_warning", c.FailuresBeforeWarning},
		{".failures_before_critical", c.FailuresBeforeCritical},
	} {
		if th.n < 0 {
			bad(th.sub, "%d must not be negative", th.n)
		}
	}
	switch {
	case c.DeregisterCriticalServiceAfter < 0:
		bad(".deregister_critical_service_after", "%s must not be negative", c.DeregisterCriticalServiceAfter)
	case c.DeregisterCriticalServiceAfter > 0 && c.ServiceID == "":
		bad(".deregister_critical_service_after", "applies only to service checks: set service_id")
	}
	if c.TTL < 0 {
		bad(".ttl", "%s must not be negative", c.TTL)
	}
	if c.Type() == TypeScript && !p.EnableScriptChecks {
		why := p.ScriptChecksRefused
		if why == nil {
			why = ErrScriptChecksDisabled
		}
		bad(".args", "%s", why)
	}
	return errs
}

// reroot re-roots the catalog's "check.<x>" errors at field, so every error names
// its place in the definition ("service.checks[1].name").
func reroot(field string, err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
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
		f := field + strings.TrimPrefix(fe.Field, "check")
		if !strings.HasPrefix(fe.Field, "check") {
			f = field + "." + fe.Field
		}
		out = append(out, &catalog.FieldError{Field: f, Reason: fe.Reason})
	}
	walk(err)
	return out
}

// checkHTTPTarget accepts an absolute http or https URL with a host.
func checkHTTPTarget(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

// checkHostPort accepts host:port with a port number or service name; the host may be
// empty (the local host), as net.Dial allows.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", s)
	}
	if n, err := strconv.Atoi(port); err == nil && (n < 1 || n > 65535) {
		return fmt.Errorf("%q: port %d is outside 1–65535", s, n)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of methods and header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
