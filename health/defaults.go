package health

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// The check types, spelled as Consul spells them in a check's Type.
const (
	TypeHTTP   = "http"
	TypeTCP    = "tcp"
	TypeGRPC   = "grpc"
	TypeScript = "script"
	TypeTTL    = "ttl"
)

// Default probe timeouts, used when a Definition sets none; like Consul's. Either is
// lowered to the interval when the interval is shorter, so runs never overlap.
const (
	DefaultTimeout       = 10 * time.Second // http, tcp and grpc checks
	DefaultScriptTimeout = 30 * time.Second // script checks
)

// HTTPBodyLimit is how much of an HTTP check's response body ends up in its output.
const HTTPBodyLimit = 4 << 10

// Definition is one check as Consul's agent defines it. The config and HTTP layers
// decode Consul's JSON/HCL into it (durations through [ParseDuration]); Manager.Add
// runs it. Exactly one of HTTP, TCP, GRPC, Args and TTL selects the check's type.
type Definition struct {
	ID        string // unique per node; required (the caller defaults it from Name)
	Name      string // human-readable name
	ServiceID string // the service it checks, or "" for a node-level check
	Notes     string // operator notes, copied into the catalog record

	HTTP          string              // http: URL to request, http:// or https://
	Method        string              // http: request method; default GET
	Header        map[string][]string // http: extra request headers ("Host" sets the Host)
	Body          string              // http: request body
	TLSSkipVerify bool                // http, grpc: do not verify the server certificate

	TCP string // tcp: host:port to connect to

	GRPC       string // grpc: host:port, optionally "/service" for the service to ask about
	GRPCUseTLS bool   // grpc: speak TLS

	Args []string // script: the program and its arguments (no shell involved)

	TTL time.Duration // ttl: the check turns critical without a heartbeat for this long

	Interval time.Duration // http, tcp, grpc, script: how often to run; required
	Timeout  time.Duration // per run; default DefaultTimeout or DefaultScriptTimeout, ≤ Interval

	// InitialStatus is the status until the first result; 0 means critical, as in
	// Consul. An agent restoring persisted checks sets the status it persisted.
	InitialStatus catalog.Status

	// Anti-flapping thresholds, Consul's semantics (see the package doc): the reported
	// status turns passing (or warning) after SuccessBeforePassing consecutive
	// passing/warning results, warning after FailuresBeforeWarning and critical after
	// FailuresBeforeCritical consecutive critical results. 0 means "at once";
	// FailuresBeforeWarning 0 means "same as FailuresBeforeCritical". Ignored by ttl
	// checks, whose status is what the heartbeat says.
	SuccessBeforePassing   int
	FailuresBeforeWarning  int
	FailuresBeforeCritical int

	// DeregisterCriticalServiceAfter: when the check has been critical this long,
	// Config.OnDeregister is called with ServiceID. 0 disables it.
	DeregisterCriticalServiceAfter time.Duration
}

// Type returns the check's type (TypeHTTP, ...) or "" when the definition selects no
// type or more than one.
func (d *Definition) Type() string {
	types := d.types()
	if len(types) != 1 {
		return ""
	}
	return types[0]
}

// types lists every type the definition selects, in a fixed order.
func (d *Definition) types() []string {
	var t []string
	if d.HTTP != "" {
		t = append(t, TypeHTTP)
	}
	if d.TCP != "" {
		t = append(t, TypeTCP)
	}
	if d.GRPC != "" {
		t = append(t, TypeGRPC)
	}
	if len(d.Args) > 0 {
		t = append(t, TypeScript)
	}
	if d.TTL != 0 {
		t = append(t, TypeTTL)
	}
	return t
}

// Check returns the catalog record the check starts as: InitialStatus (default
// critical), no output. The agent writes it into its local state before Manager.Add,
// and the Manager reports every change after that through its Sink.
func (d *Definition) Check() catalog.Check {
	n := d.withDefaults()
	return catalog.Check{
		ID:        n.ID,
		Name:      n.Name,
		ServiceID: n.ServiceID,
		Status:    n.InitialStatus,
		Notes:     n.Notes,
		Type:      n.Type(),
		Interval:  n.Interval,
		Timeout:   n.Timeout,
	}
}

// Validate reports every problem with d, joined; each is a *catalog.FieldError and so
// wraps catalog.ErrInvalid (an HTTP layer answers 400 with the text). It does not know
// whether script checks are enabled: Manager.Add refuses those with
// ErrScriptChecksDisabled.
func (d *Definition) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}

	// The identity fields follow the catalog's rules, so a valid definition always
	// yields a valid record.
	rec := catalog.Check{ID: d.ID, Name: d.Name, ServiceID: d.ServiceID, Notes: d.Notes, Status: catalog.StatusCritical}
	if err := rec.Validate(); err != nil {
		errs = append(errs, err)
	}

	types := d.types()
	switch len(types) {
	case 0:
		add("check", "no check type: set exactly one of http, tcp, grpc, args (script) or ttl")
	case 1:
	default:
		add("check", "ambiguous check type: %s are all set; set exactly one", strings.Join(types, ", "))
	}
	for _, t := range types {
		switch t {
		case TypeHTTP:
			if err := checkHTTPTarget(d.HTTP); err != nil {
				add("check.http", "%v", err)
			}
			if d.Method != "" && !isToken(d.Method) {
				add("check.method", "%q is not an HTTP method", d.Method)
			}
			for k := range d.Header {
				if !isToken(k) {
					add("check.header", "%q is not a valid header name", k)
				}
			}
		case TypeTCP:
			if err := checkHostPort(d.TCP); err != nil {
				add("check.tcp", "%v", err)
			}
		case TypeGRPC:
			hostPort, _, _ := strings.Cut(d.GRPC, "/")
			if err := checkHostPort(hostPort); err != nil {
				add("check.grpc", "%v (want host:port or host:port/service)", err)
			}
		case TypeScript:
			if d.Args[0] == "" {
				add("check.args", "the program (args[0]) must not be empty")
			}
		case TypeTTL:
			if d.TTL < 0 {
				add("check.ttl", "%s must not be negative", d.TTL)
			}
		}
	}

	interval := len(types) == 1 && types[0] != TypeTTL
	switch {
	case d.Interval < 0:
		add("check.interval", "%s must not be negative", d.Interval)
	case interval && d.Interval == 0:
		add("check.interval", "is required for %s checks: how often to run it, e.g. \"10s\"", types[0])
	}
	switch {
	case d.Timeout < 0:
		add("check.timeout", "%s must not be negative", d.Timeout)
	case interval && d.Interval > 0 && d.Timeout > d.Interval:
		add("check.timeout", "%s is longer than the interval %s: a run would still be going when the next one starts", d.Timeout, d.Interval)
	}

	if d.InitialStatus != 0 && d.InitialStatus != catalog.StatusPassing &&
		d.InitialStatus != catalog.StatusWarning && d.InitialStatus != catalog.StatusCritical {
		add("check.status", "initial status %s: want passing, warning or critical", d.InitialStatus)
	}
	for _, th := range []struct {
		field string
		n     int
	}{
		{"check.success_before_passing", d.SuccessBeforePassing},
		{"check.failures_before_warning", d.FailuresBeforeWarning},
		{"check.failures_before_critical", d.FailuresBeforeCritical},
	} {
		if th.n < 0 {
			add(th.field, "%d must not be negative", th.n)
		}
	}
	switch {
	case d.DeregisterCriticalServiceAfter < 0:
		add("check.deregister_critical_service_after", "%s must not be negative", d.DeregisterCriticalServiceAfter)
	case d.DeregisterCriticalServiceAfter > 0 && d.ServiceID == "":
		add("check.deregister_critical_service_after", "applies only to service checks: set service_id")
	}
	return errors.Join(errs...)
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

// withDefaults returns a deep copy of d with every default filled in: the form the
// Manager runs and compares. It assumes d is valid.
func (d *Definition) withDefaults() Definition {
	n := *d
	n.Header = maps.Clone(d.Header)
	for k, v := range n.Header {
		n.Header[k] = slices.Clone(v)
	}
	if len(n.Header) == 0 {
		n.Header = nil
	}
	n.Args = slices.Clone(d.Args)
	if n.InitialStatus == 0 {
		n.InitialStatus = catalog.StatusCritical
	}
	if n.FailuresBeforeWarning == 0 {
		n.FailuresBeforeWarning = n.FailuresBeforeCritical
	}
	switch n.Type() {
	case TypeHTTP:
		if n.Method == "" {
			n.Method = "GET"
		}
		n.Method = strings.ToUpper(n.Method)
		n.Timeout = defaultTimeout(n.Timeout, DefaultTimeout, n.Interval)
	case TypeTCP, TypeGRPC:
		n.Timeout = defaultTimeout(n.Timeout, DefaultTimeout, n.Interval)
	case TypeScript:
		n.Timeout = defaultTimeout(n.Timeout, DefaultScriptTimeout, n.Interval)
	case TypeTTL:
		n.Interval, n.Timeout = 0, 0 // meaningless for ttl checks; Consul ignores them too
	}
	return n
}

func defaultTimeout(set, def, interval time.Duration) time.Duration {
	if set > 0 {
		return set
	}
	if interval > 0 && interval < def {
		return interval
	}
	return def
}

// ParseDuration parses a duration as Consul's configuration and HTTP API write it:
// Go syntax ("10s", "1m30s", "500ms"). The empty string means "unset" and yields 0.
// Errors wrap catalog.ErrInvalid and say what was expected; negative durations are
// refused. Callers add the field name.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("%w: duration %q has no unit: write e.g. \"%ss\" or \"%sms\"", catalog.ErrInvalid, s, s, s)
		}
		return 0, fmt.Errorf("%w: duration %q: want a number with a unit, e.g. \"10s\", \"1m30s\" or \"500ms\"", catalog.ErrInvalid, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: duration %q must not be negative", catalog.ErrInvalid, s)
	}
	return d, nil
}
