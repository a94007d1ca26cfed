package definition

import (
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// The kinds of check, spelled as Consul spells a check's Type. rumor runs http, tcp,
// grpc, script and ttl checks ([Check.Runnable]); the others are understood so that a
// definition written for Consul is refused with a reason rather than as unknown.
const (
	TypeHTTP      = "http"
	TypeTCP       = "tcp"
	TypeGRPC      = "grpc"
	TypeScript    = "script"
	TypeTTL       = "ttl"
	TypeDocker    = "docker"
	TypeUDP       = "udp"
	TypeH2Ping    = "h2ping"
	TypeOSService = "os_service"
	TypeAlias     = "alias"
)

// Check is one health check as Consul defines it: a service's check (AgentServiceCheck,
// the "check"/"checks" of a service definition) or a check registered on its own
// (AgentCheckRegistration, PUT /v1/agent/check/register). Exactly one of ScriptArgs,
// HTTP, TCP, UDP, GRPC, H2PING, OSService, TTL or AliasNode/AliasService says what kind
// of check it is ([Check.Type]); DockerContainerID goes with ScriptArgs.
//
// Field names are Consul's CamelCase, so encoding/json writes and reads a Check as the
// HTTP API and the agent's state file hold it (durations in nanoseconds, Status by
// name); [DecodeCheck] reads every spelling Consul accepts. A new field added here is
// decoded from JSON and config files, validated, stored and persisted without
// another change.
type Check struct {
	// ID is unique per node. A service's check defaults to "service:<service id>"
	// (numbered ":1", ":2", … when the service has several); a check registered on its
	// own defaults to its Name. Consul's JSON spells it CheckID too.
	ID string
	// Name is human-readable. A service's check defaults to "Service '<name>' check".
	Name string
	// Notes are free-form operator notes, copied into the check record.
	Notes string
	// ServiceID is the service the check belongs to; "" for a check of the node.
	// Normalize sets it on a service's checks.
	ServiceID string
	// Status is the initial status: passing, warning or critical; zero means critical,
	// as in Consul.
	Status catalog.Status `json:",omitempty"`

	ScriptArgs        []string            `json:",omitempty"` // script: program and arguments, no shell (Consul's "args")
	DockerContainerID string              `json:",omitempty"` // docker: container to run ScriptArgs in (not run by rumor)
	Shell             string              `json:",omitempty"` // docker: shell (not supported)
	HTTP              string              `json:",omitempty"` // http: URL, http:// or https://
	Method            string              `json:",omitempty"` // http: request method; default GET
	Header            map[string][]string `json:",omitempty"` // http: extra request headers ("Host" sets the Host)
	Body              string              `json:",omitempty"` // http: request body
	DisableRedirects  bool                `json:",omitempty"` // http: (not supported)
	TLSServerName     string              `json:",omitempty"` // http, grpc: (not supported)
	TLSSkipVerify     bool                `json:",omitempty"` // http, grpc: do not verify the server's certificate
	TCP               string              `json:",omitempty"` // tcp: host:port to connect to
	TCPUseTLS         bool                `json:",omitempty"` // tcp: (not supported)
	UDP               string              `json:",omitempty"` // udp: (not run by rumor)
	GRPC              string              `json:",omitempty"` // grpc: host:port, optionally "/service"
	GRPCUseTLS        bool                `json:",omitempty"` // grpc: speak TLS
	H2PING            string              `json:",omitempty"` // h2ping: (not run by rumor)
	H2PingUseTLS      bool                `json:",omitempty"` // h2ping: (not run by rumor)
	OSService         string              `json:",omitempty"` // os_service: (not run by rumor)
	AliasNode         string              `json:",omitempty"` // alias: (not run by rumor)
	AliasService      string              `json:",omitempty"` // alias: (not run by rumor)

	// TTL makes a ttl check: critical unless a heartbeat came within the last TTL.
	TTL time.Duration `json:",omitempty"`
	// Interval is how often http, tcp, grpc and script checks run; required for them.
	Interval time.Duration `json:",omitempty"`
	// Timeout bounds one run; default 10s (30s for scripts), at most Interval.
	Timeout time.Duration `json:",omitempty"`
	// DeregisterCriticalServiceAfter deregisters the check's service once the check
	// has been critical this long; 0 never does.
	DeregisterCriticalServiceAfter time.Duration `json:",omitempty"`

	// Anti-flapping thresholds, with Consul's semantics (see package health): the
	// reported status turns passing (or warning) after SuccessBeforePassing consecutive
	// successes, warning after FailuresBeforeWarning and critical after
	// FailuresBeforeCritical consecutive failures. 0 means at once;
	// FailuresBeforeWarning 0 means the same as FailuresBeforeCritical.
	SuccessBeforePassing   int `json:",omitempty"`
	FailuresBeforeWarning  int `json:",omitempty"`
	FailuresBeforeCritical int `json:",omitempty"`
	// OutputMaxSize is accepted and ignored: rumor caps output at catalog.MaxOutputLen.
	OutputMaxSize int `json:",omitempty"`
}

// kind is one kind of check and whether a definition selects it.
type kind struct {
	name string
	set  func(*Check) bool
}

// kinds lists the kinds of check in the order Type reports them. DockerContainerID
// makes a script check a docker check, so docker comes first.
var kinds = []kind{
	{TypeDocker, func(c *Check) bool { return c.DockerContainerID != "" }},
	{TypeScript, func(c *Check) bool { return len(c.ScriptArgs) > 0 }},
	{TypeHTTP, func(c *Check) bool { return c.HTTP != "" }},
	{TypeTCP, func(c *Check) bool { return c.TCP != "" }},
	{TypeUDP, func(c *Check) bool { return c.UDP != "" }},
	{TypeGRPC, func(c *Check) bool { return c.GRPC != "" }},
	{TypeH2Ping, func(c *Check) bool { return c.H2PING != "" }},
	{TypeOSService, func(c *Check) bool { return c.OSService != "" }},
	{TypeTTL, func(c *Check) bool { return c.TTL != 0 }},
	{TypeAlias, func(c *Check) bool { return c.AliasNode != "" || c.AliasService != "" }},
}

// Type names the kind of check (TypeHTTP, …), as Consul's check Type; "" when the
// definition selects none. With several, it names the first: Validate refuses those.
func (c *Check) Type() string {
	for _, k := range kinds {
		if k.set(c) {
			return k.name
		}
	}
	return ""
}

// numKinds counts the kinds c selects; a docker check (DockerContainerID with
// ScriptArgs) counts as one.
func (c *Check) numKinds() int {
	n := 0
	for _, k := range kinds[1:] { // docker is script run elsewhere: not a kind of its own
		if k.set(c) {
			n++
		}
	}
	return n
}

// Runnable reports whether rumor runs checks of c's kind: http, tcp, grpc, script and
// ttl. Others are refused at registration.
func (c *Check) Runnable() bool {
	switch c.Type() {
	case TypeHTTP, TypeTCP, TypeGRPC, TypeScript, TypeTTL:
		return true
	}
	return false
}

// Record returns the check record c starts as: its initial status (critical unless
// Status says otherwise), no output.
func (c *Check) Record() catalog.Check {
	st := c.Status
	if st == 0 {
		st = catalog.StatusCritical
	}
	return catalog.Check{
		ID: c.ID, Name: c.Name, ServiceID: c.ServiceID, Status: st, Notes: c.Notes,
		Type: c.Type(), Interval: c.Interval, Timeout: c.Timeout,
	}
}

// Clone returns a deep copy of c.
func (c Check) Clone() Check {
	if c.Header != nil {
		h := make(map[string][]string, len(c.Header))
		for k, v := range c.Header {
			h[k] = append([]string(nil), v...)
		}
		c.Header = h
	}
	if c.ScriptArgs != nil {
		c.ScriptArgs = append([]string(nil), c.ScriptArgs...)
	}
	return c
}

// Normalize fills the defaults of a check registered on its own (not with a
// service), as Consul does: its ID is its Name.
func (c *Check) Normalize() {
	if c.ID == "" {
		c.ID = c.Name
	}
}
