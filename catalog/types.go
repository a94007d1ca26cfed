package catalog

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Status is a health status. Only the four values below exist; Consul clients reject
// anything else.
type Status uint8

// The health statuses, ordered from best to worst: aggregating several checks keeps
// the worst one, and maintenance outranks everything because an operator asked for it.
const (
	// StatusPassing means every probe succeeded.
	StatusPassing Status = iota + 1
	// StatusWarning means the instance works but degraded (HTTP 429, script exit 1).
	StatusWarning
	// StatusCritical means the instance must not receive traffic.
	StatusCritical
	// StatusMaintenance means an operator took the instance out of rotation.
	StatusMaintenance
)

var statusNames = [...]string{
	StatusPassing:     "passing",
	StatusWarning:     "warning",
	StatusCritical:    "critical",
	StatusMaintenance: "maintenance",
}

// String returns the Consul spelling of s ("passing", ...), or "invalid(N)".
func (s Status) String() string {
	if s.Valid() {
		return statusNames[s]
	}
	return fmt.Sprintf("invalid(%d)", uint8(s))
}

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool { return s >= StatusPassing && s <= StatusMaintenance }

// ParseStatus turns "passing", "warning", "critical" or "maintenance" into a Status.
func ParseStatus(s string) (Status, error) {
	for st := StatusPassing; st <= StatusMaintenance; st++ {
		if statusNames[st] == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("%w: status %q: want passing, warning, critical or maintenance", ErrInvalid, s)
}

// MarshalText implements encoding.TextMarshaler so statuses appear as strings in JSON.
func (s Status) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("%w: status %d", ErrInvalid, uint8(s))
	}
	return []byte(statusNames[s]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	st, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// Worse returns the worse of two statuses; an invalid status counts as best so it can
// seed an aggregation.
func Worse(a, b Status) Status {
	if b > a {
		return b
	}
	return a
}

// Liveness is what failure detection says about a node. It is local knowledge fed by
// the gossip layer, not part of any origin's records.
type Liveness uint8

// The liveness states of a node.
const (
	// LivenessAlive: the node answers probes. It is also the state of an origin that no
	// failure detector speaks for (an external origin, or a node not yet seen).
	LivenessAlive Liveness = iota
	// LivenessSuspect: probes failed and the node has not yet refuted it.
	LivenessSuspect
	// LivenessFailed: the suspicion timed out; the node is considered dead.
	LivenessFailed
	// LivenessLeft: the node said goodbye; its records are dropped at once.
	LivenessLeft
)

var livenessNames = [...]string{"alive", "suspect", "failed", "left"}

// String returns "alive", "suspect", "failed" or "left".
func (l Liveness) String() string {
	if int(l) < len(livenessNames) {
		return livenessNames[l]
	}
	return fmt.Sprintf("invalid(%d)", uint8(l))
}

// Weights steer weighted load balancing: an instance is picked in proportion to
// Passing while all its checks pass, and to Warning while one warns.
type Weights struct {
	Passing int // relative weight when passing; ≥ 1, default 1
	Warning int // relative weight when warning; ≥ 0, default 1
}

// DefaultWeights is what an instance gets when its definition sets none (Consul's).
var DefaultWeights = Weights{Passing: 1, Warning: 1}

// Node is a node's own description of itself: the value of the one node record an
// origin publishes.
type Node struct {
	ID              string            // stable UUID, persisted in the data dir
	Name            string            // unique node name; equals the record's origin
	Address         string            // address other nodes and clients reach it at
	Datacenter      string            // datacenter name, lower case
	Meta            map[string]string // free-form node metadata, bounded by validation
	TaggedAddresses map[string]string // e.g. "lan" → 10.0.0.1, "wan" → public IP
}

// Service is one service instance registered on a node.
type Service struct {
	ID              string            // unique per node; defaults to Name at registration
	Name            string            // the logical service name queried by consumers
	Tags            []string          // free-form tags, filterable in queries
	Address         string            // empty means the node's address
	Port            int               // 0–65535; 0 means "no port"
	Meta            map[string]string // free-form metadata, bounded by validation
	Weights         Weights           // load-balancing weights
	TaggedAddresses map[string]string // alternative addresses by name
	Kind            string            // "" for a typical service, else e.g. "connect-proxy"
}

// Check is one health check: either of a whole node (ServiceID == "") or of one service
// instance on that node.
type Check struct {
	ID        string        // unique per node
	Name      string        // human-readable name
	ServiceID string        // the service it checks, or "" for a node-level check
	Status    Status        // current status
	Output    string        // last probe output, truncated to MaxOutputLen
	Notes     string        // operator notes
	Type      string        // "http", "tcp", "grpc", "script", "ttl", "serf", ...
	Interval  time.Duration // probe interval, 0 for TTL and externally fed checks
	Timeout   time.Duration // probe timeout, 0 if not applicable
}

// SerfCheckID is the ID of the node-level check every query adds for a node, derived
// from its liveness; the name matches Consul's so existing tools recognise it.
const SerfCheckID = "serfHealth"

// clone returns a deep copy so callers can never alias catalog-owned maps and slices.
func (n *Node) clone() *Node {
	c := *n
	c.Meta = maps.Clone(n.Meta)
	c.TaggedAddresses = maps.Clone(n.TaggedAddresses)
	return &c
}

func (s *Service) clone() *Service {
	c := *s
	c.Tags = slices.Clone(s.Tags)
	c.Meta = maps.Clone(s.Meta)
	c.TaggedAddresses = maps.Clone(s.TaggedAddresses)
	return &c
}

func (c *Check) clone() *Check {
	d := *c
	return &d
}

// HasTag reports whether the service carries tag (case-sensitive, like Consul).
func (s *Service) HasTag(tag string) bool { return slices.Contains(s.Tags, tag) }
