package localstate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Source says who registered a local service, so a config reload touches only its
// own services and an API registration survives it.
type Source string

// The sources of local services.
const (
	SourceAPI    Source = "api"    // PUT /v1/agent/service/register or `rumor register`
	SourceConfig Source = "config" // a config file (--config-file, --config-dir), re-read by a reload
)

// Service is one entry of the local state: a service registered on this node with
// its checks, as the state file keeps it. The node's own entry (State.Node) holds the
// checks registered without a service, and its Service is zero.
type Service struct {
	Source Source `json:",omitempty"`
	// File is the config file that defines the service, for SourceConfig.
	File string `json:",omitempty"`
	// Service is the service record the entry publishes (normalized).
	Service catalog.Service
	// Checks are the entry's check definitions (normalized), in registration order.
	Checks []definition.Check
	// Status holds each check's last reported status and output, by check ID; a check
	// missing here is at its initial status. A restart re-adds checks at this status.
	Status map[string]CheckState `json:",omitempty"`
	// Maintenance is the reason the service (or, for the node's entry, the node) is in
	// maintenance mode; nil when it is not.
	Maintenance *string `json:",omitempty"`
	// Upstreams are the local proxy listeners the service's definition asks for.
	Upstreams []definition.Upstream `json:",omitempty"`
}

// CheckState is a check's reported status and output, as the health manager last
// told the agent.
type CheckState struct {
	Status catalog.Status
	Output string `json:",omitempty"`
}

// State is the whole local state, as a Store persists it and New restores it.
type State struct {
	// Services are the services registered on this node, by ID.
	Services map[string]*Service
	// Node holds the checks of the node itself and the node's maintenance mode.
	Node *Service
}

// Maintenance checks, named as Consul names them so tools recognise them.
const (
	NodeMaintenanceID        = "_node_maintenance"
	ServiceMaintenancePrefix = "_service_maintenance:"
	defaultMaintenanceReason = "Maintenance mode is enabled for this %s, but no reason was provided. This is a default message."
)

// maintenanceCheck is the check record that puts a service (or, with serviceID "",
// the node) in maintenance: its status hides the instance from passing queries.
func maintenanceCheck(serviceID, reason string) catalog.Check {
	c := catalog.Check{ID: NodeMaintenanceID, Name: "Node Maintenance Mode", Status: catalog.StatusMaintenance,
		Notes: reason, Type: "maintenance"}
	if serviceID != "" {
		c.ID, c.Name, c.ServiceID = ServiceMaintenancePrefix+serviceID, "Service Maintenance Mode", serviceID
	}
	return c
}

// reservedCheckID reports whether id is one rumor derives itself (serfHealth) or uses
// for maintenance mode, which a registration may not take.
func reservedCheckID(id string) bool {
	return id == catalog.SerfCheckID || id == NodeMaintenanceID || strings.HasPrefix(id, ServiceMaintenancePrefix)
}

// owner names, for messages, whose checks s holds.
func (s *Service) owner() string {
	if s.Service.ID == "" {
		return "a node check"
	}
	return fmt.Sprintf("service %q", s.Service.ID)
}

// check returns the definition of the check with this ID, or nil.
func (s *Service) check(id string) *definition.Check {
	if s == nil {
		return nil
	}
	for i := range s.Checks {
		if s.Checks[i].ID == id {
			return &s.Checks[i]
		}
	}
	return nil
}

// status is the last reported state of check id of s; zero if none was reported.
func (s *Service) status(id string) CheckState {
	if s == nil {
		return CheckState{}
	}
	return s.Status[id]
}

// checkRecord is the record published for check d of s: its definition at its last
// reported status.
func (s *Service) checkRecord(d *definition.Check) catalog.Check {
	c := d.Record()
	if st, ok := s.Status[d.ID]; ok {
		c.Status, c.Output = st.Status, st.Output
	}
	return c
}

// clone returns a copy of s whose lists and maps may be changed without touching s.
// Check definitions are immutable once stored, so they are shared.
func (s *Service) clone() *Service {
	c := *s
	c.Checks = slices.Clone(s.Checks)
	c.Status = maps.Clone(s.Status)
	return &c
}

// Definition is the definition s was registered with, as far as its record keeps it
// (a tagged address keeps no port of its own), for validating what a state file
// holds as a registration is validated and comparing definitions.
func (s *Service) Definition() definition.Service {
	r := s.Service
	d := definition.Service{ID: r.ID, Name: r.Name, Tags: r.Tags, Address: r.Address, Port: r.Port,
		Meta: r.Meta, Kind: r.Kind, Weights: r.Weights, Checks: s.Checks, Upstreams: s.Upstreams}
	for k, a := range r.TaggedAddresses {
		if d.TaggedAddresses == nil {
			d.TaggedAddresses = make(map[string]definition.ServiceAddress, len(r.TaggedAddresses))
		}
		d.TaggedAddresses[k] = definition.ServiceAddress{Address: a}
	}
	return d
}

// sameDefinition reports whether two entries are defined identically, their runtime
// state (statuses, maintenance, source) aside.
func sameDefinition(a, b *Service) bool {
	x, y := a.Definition(), b.Definition()
	return x.Equal(&y)
}

// carryOver is the one rule for what a new definition of an entry keeps of the old:
// its maintenance mode, and the last reported status of every check it keeps (same
// ID), so re-registering never bounces a healthy instance to critical.
func carryOver(old, next *Service) {
	if old == nil {
		return
	}
	next.Maintenance = old.Maintenance
	next.Status = nil
	for _, d := range next.Checks {
		if st, ok := old.Status[d.ID]; ok && old.check(d.ID) != nil {
			if next.Status == nil {
				next.Status = make(map[string]CheckState)
			}
			next.Status[d.ID] = st
		}
	}
}

// LocalCheck is a check of this node with what GET /v1/agent/checks shows of it.
type LocalCheck struct {
	Check       catalog.Check
	ServiceName string
	ServiceTags []string
	Definition  definition.Check // zero for maintenance checks
}

// localChecks lists the checks of s (and its maintenance check) at their current
// status.
func (s *Service) localChecks() []LocalCheck {
	tags := slices.Clone(s.Service.Tags)
	var out []LocalCheck
	for i := range s.Checks {
		d := s.Checks[i].Clone()
		out = append(out, LocalCheck{Check: s.checkRecord(&d), ServiceName: s.Service.Name, ServiceTags: tags, Definition: d})
	}
	if s.Maintenance != nil {
		out = append(out, LocalCheck{Check: maintenanceCheck(s.Service.ID, *s.Maintenance), ServiceName: s.Service.Name, ServiceTags: tags})
	}
	return out
}

func sortChecks(cs []LocalCheck) {
	slices.SortFunc(cs, func(x, y LocalCheck) int { return cmp.Compare(x.Check.ID, y.Check.ID) })
}
