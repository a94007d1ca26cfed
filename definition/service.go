package definition

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
)

// Service is a service definition in Consul's shape: the body of PUT
// /v1/agent/service/register (AgentServiceRegistration), a config file's "service",
// and what the Docker watcher and mDNS import build. [Service.Normalize] fills
// Consul's defaults, [Service.Validate] reports every problem, and [Service.Record]
// is the service record the agent publishes: the one change of representation
// between a registration and gossip.
//
// Field names are Consul's, so encoding/json writes a Service as the HTTP API takes
// it, and the agent persists it as it is.
type Service struct {
	// ID is unique per node; default: the Name.
	ID string
	// Name is the logical name consumers look up. Required.
	Name string
	// Tags are free-form, filterable in queries.
	Tags []string `json:",omitempty"`
	// Address is where the service listens; "" means the node's address.
	Address string `json:",omitempty"`
	// Port is the service's port, 0–65535; 0 means none.
	Port int `json:",omitempty"`
	// Meta is free-form metadata.
	Meta map[string]string `json:",omitempty"`
	// Kind is "" for a typical service; Consul's proxy kinds are kept as given.
	Kind string `json:",omitempty"`
	// Weights steer weighted load balancing; zero means catalog.DefaultWeights.
	Weights catalog.Weights
	// TaggedAddresses are alternative addresses by name ("lan", "wan", …). rumor keeps
	// one port per service: each port must be 0 or the service's own.
	TaggedAddresses map[string]ServiceAddress `json:",omitempty"`
	// Check is Consul's single "check"; Normalize makes it the first of Checks.
	Check *Check `json:",omitempty"`
	// Checks are the checks registered with the service.
	Checks []Check `json:",omitempty"`
	// EnableTagOverride is accepted and ignored: it lets Consul servers' anti-entropy
	// keep tags changed through the catalog API, and rumor has neither.
	EnableTagOverride bool `json:",omitempty"`
	// Upstreams are local proxy listeners this service's instance wants on its node
	// (see Upstream); they live as long as the service is registered here.
	Upstreams []Upstream `json:",omitempty"`
}

// ServiceAddress is one tagged address of a service.
type ServiceAddress struct {
	Address string
	Port    int `json:",omitempty"`
}

// Normalize fills a service's defaults as Consul does: the ID is the name, zero
// weights are catalog.DefaultWeights, Check becomes the first of Checks, and each
// check gets the service's ID as ServiceID (unless it names another, which Validate
// refuses), an ID ("service:<id>", numbered from 1 when there are several) and a
// name ("Service '<name>' check"). It is idempotent.
func (s *Service) Normalize() {
	if s.ID == "" {
		s.ID = s.Name
	}
	if s.Weights == (catalog.Weights{}) {
		s.Weights = catalog.DefaultWeights
	}
	if s.Check != nil {
		s.Checks = append([]Check{*s.Check}, s.Checks...)
		s.Check = nil
	}
	for i := range s.Checks {
		c := &s.Checks[i]
		if c.ServiceID == "" {
			c.ServiceID = s.ID
		}
		if c.ID == "" {
			c.ID = "service:" + s.ID
			if len(s.Checks) > 1 {
				c.ID = fmt.Sprintf("service:%s:%d", s.ID, i+1)
			}
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("Service '%s' check", s.Name)
		}
	}
}

// Record returns the service record s publishes. s must be normalized.
func (s *Service) Record() catalog.Service {
	r := catalog.Service{
		ID: s.ID, Name: s.Name, Tags: slices.Clone(s.Tags), Address: s.Address, Port: s.Port,
		Meta: maps.Clone(s.Meta), Weights: s.Weights, Kind: s.Kind,
	}
	if len(s.TaggedAddresses) > 0 {
		r.TaggedAddresses = make(map[string]string, len(s.TaggedAddresses))
		for k, a := range s.TaggedAddresses {
			r.TaggedAddresses[k] = a.Address
		}
	}
	return r
}

// Clone returns a deep copy of s.
func (s Service) Clone() Service {
	s.Tags = slices.Clone(s.Tags)
	s.Meta = maps.Clone(s.Meta)
	s.TaggedAddresses = maps.Clone(s.TaggedAddresses)
	if s.Check != nil {
		c := s.Check.Clone()
		s.Check = &c
	}
	if s.Checks != nil {
		checks := make([]Check, len(s.Checks))
		for i := range s.Checks {
			checks[i] = s.Checks[i].Clone()
		}
		s.Checks = checks
	}
	s.Upstreams = slices.Clone(s.Upstreams)
	return s
}

// Equal reports whether two definitions are the same, treating empty and absent
// lists and maps as equal (a definition read back from the state file must equal the
// same one read from its config file).
func (s *Service) Equal(o *Service) bool {
	x, y := s.Clone(), o.Clone()
	for _, d := range []*Service{&x, &y} {
		d.Tags, d.Meta, d.TaggedAddresses = nilIfEmpty(d.Tags), nilIfEmptyMap(d.Meta), nilIfEmptyMap(d.TaggedAddresses)
		d.Upstreams = nilIfEmpty(d.Upstreams)
		if len(d.Checks) == 0 {
			d.Checks = nil
		}
		for i := range d.Checks {
			c := &d.Checks[i]
			c.ScriptArgs, c.Header = nilIfEmpty(c.ScriptArgs), nilIfEmptyMap(c.Header)
			for k, v := range c.Header {
				c.Header[k] = nilIfEmpty(v)
			}
		}
	}
	return reflect.DeepEqual(x, y)
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfEmptyMap[V any](m map[string]V) map[string]V {
	if len(m) == 0 {
		return nil
	}
	return m
}
