package localstate

import (
	"fmt"
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// SetNode sets the node record this node publishes (with All).
func (c *Core) SetNode(n catalog.Node) { c.node = n }

// Generation is the generation of this node's records.
func (c *Core) Generation() uint64 { return c.w.Generation() }

// All returns records publishing everything this node holds: the node, its
// maintenance and checks, every service with its checks, and its forward pointers
// (moves.go). Start publishes them,
// and so does Supersede, whose new generation replaces the whole previous set
// everywhere.
func (c *Core) All() []catalog.Record {
	recs := []catalog.Record{c.w.PutNode(&c.node)}
	var rd Ready
	for _, s := range c.entries() {
		c.diff(&rd, s.Service.ID, nil, s)
	}
	return append(append(recs, rd.Records...), c.moveRecords()...)
}

// Runnable returns every check the health manager runs, each at its last reported
// status: Start adds them.
func (c *Core) Runnable() []definition.Check {
	var out []definition.Check
	for _, s := range c.entries() {
		for i := range s.Checks {
			if d := &s.Checks[i]; c.runnable(s, d) {
				out = append(out, startAt(*d, s.status(d.ID).Status))
			}
		}
	}
	return out
}

// Supersede moves the generation past v, the version of records of an older
// incarnation of this node found with a newer generation (its data dir lost and the
// clock set back), and returns everything republished at the new generation; ok is
// false, and nothing changes, unless v's generation is above ours.
func (c *Core) Supersede(v catalog.Version) (recs []catalog.Record, ok bool) {
	if v.Gen <= c.w.Generation() {
		return nil, false
	}
	c.w.Supersede(v)
	return c.All(), true
}

// Repair moves the generation past v, a version of this node's origin seen elsewhere,
// when v is above the last version this node issued: a newer generation (an older
// incarnation), or a higher counter in the current one (a forged record, which would
// otherwise pin its value pool-wide). It returns everything republished at the new
// generation, which replaces every copy of the old set. ok is false, and nothing
// changes, when v is not above what was issued.
func (c *Core) Repair(v catalog.Version) (recs []catalog.Record, ok bool) {
	if !c.w.Issued().Less(v) {
		return nil, false
	}
	if !c.w.Supersede(catalog.Version{Gen: max(v.Gen, c.w.Generation())}) {
		return nil, false
	}
	return c.All(), true
}

// RegisterService adds or replaces a service registered through the API, with its
// checks. A replaced service keeps its maintenance mode and the status of the checks
// it keeps (carryOver); its other checks stop. Invalid input (a check rumor cannot
// run, a script check the policy does not allow, a check ID another service holds,
// the ID of a service from a config file) wraps catalog.ErrInvalid and changes
// nothing.
func (c *Core) RegisterService(def definition.Service) (Ready, error) {
	next, err := prepare(def, c.policy)
	if err != nil {
		return Ready{}, fmt.Errorf("register service %q: %w", def.Name, err)
	}
	id := next.Service.ID
	old := c.st.Services[id]
	if old != nil && old.Source == SourceConfig {
		return Ready{}, fmt.Errorf("register service %q: %w", def.Name, &catalog.FieldError{Field: "service.id",
			Reason: fmt.Sprintf("%q is defined in config file %s: edit the file and run `rumor reload`, or choose another ID", id, old.File)})
	}
	if old != nil && old.Source != SourceAPI && old.Source != "" {
		return Ready{}, fmt.Errorf("register service %q: %w", def.Name, &catalog.FieldError{Field: "service.id",
			Reason: fmt.Sprintf("%q is registered by the %s; choose another ID", id, old.registeredBy())})
	}
	if cid, other := c.takenBy(next, nil); other != nil {
		return Ready{}, fmt.Errorf("register service %q: %w", def.Name, &catalog.FieldError{Field: "service.checks.id",
			Reason: fmt.Sprintf("check ID %q is taken by %s: check IDs are unique per node", cid, other.owner())})
	}
	carryOver(old, next)
	return c.commit(false, change{id, next})
}

// DeregisterService removes a service and its checks; catalog.ErrNotFound if there is
// none with that ID.
func (c *Core) DeregisterService(id string) (Ready, error) {
	if c.st.Services[id] == nil {
		return Ready{}, fmt.Errorf("deregister service %q: %w", id, catalog.ErrNotFound)
	}
	return c.commit(false, change{id, nil})
}

// RegisterCheck adds a check on its own, or replaces the one with the same ID (which
// keeps its reported status, as a re-registered service's checks do): a node check
// when d.ServiceID is "", else a check of that local service. Invalid input (a
// missing name, an unknown ServiceID, an ID another owner holds, a kind rumor cannot
// run) wraps catalog.ErrInvalid and changes nothing.
func (c *Core) RegisterCheck(d definition.Check) (Ready, error) {
	if err := prepareNodeCheck(&d, c.policy); err != nil {
		return Ready{}, fmt.Errorf("register check %q: %w", d.ID, err)
	}
	old := c.entry(d.ServiceID)
	if old == nil {
		return Ready{}, fmt.Errorf("register check %q: %w", d.ID, &catalog.FieldError{Field: "check.ServiceID",
			Reason: fmt.Sprintf("no service with ID %q is registered on this node", d.ServiceID)})
	}
	if _, other := c.takenBy(&Service{Service: old.Service, Checks: []definition.Check{d}}, nil); other != nil {
		return Ready{}, fmt.Errorf("register check %q: %w", d.ID, &catalog.FieldError{Field: "check.ID",
			Reason: fmt.Sprintf("taken by %s: check IDs are unique per node; deregister it first", other.owner())})
	}
	next := old.clone()
	if i := slices.IndexFunc(next.Checks, func(o definition.Check) bool { return o.ID == d.ID }); i >= 0 {
		next.Checks[i] = d
	} else {
		next.Checks = append(next.Checks, d)
	}
	carryOver(old, next)
	return c.commit(false, change{d.ServiceID, next})
}

// DeregisterCheck removes a check, standalone or of a local service.
// catalog.ErrNotFound if no check has this ID; catalog.ErrInvalid for rumor's own
// (maintenance mode is turned off, not deregistered).
func (c *Core) DeregisterCheck(id string) (Ready, error) {
	if reservedCheckID(id) {
		return Ready{}, fmt.Errorf("deregister check %q: %w: it is rumor's own (liveness or maintenance mode); turn maintenance off with PUT /v1/agent/maintenance or /v1/agent/service/maintenance/<id>?enable=false", id, catalog.ErrInvalid)
	}
	old, key := c.findCheck(id)
	if old == nil {
		return Ready{}, fmt.Errorf("deregister check %q: %w: no check has this ID on this node", id, catalog.ErrNotFound)
	}
	next := old.clone()
	next.Checks = slices.DeleteFunc(next.Checks, func(d definition.Check) bool { return d.ID == id })
	carryOver(old, next)
	return c.commit(false, change{key, next})
}

// SetMaintenance turns maintenance mode on or off for a local service, or for the
// node when serviceID is "": a check record with status maintenance and the reason
// (a default one if empty) as its notes. catalog.ErrNotFound for an unknown service.
func (c *Core) SetMaintenance(serviceID string, enable bool, reason string) (Ready, error) {
	old := c.entry(serviceID)
	if old == nil {
		return Ready{}, fmt.Errorf("maintenance of service %q: %w", serviceID, catalog.ErrNotFound)
	}
	if !enable && old.Maintenance == nil {
		return Ready{}, nil // not in maintenance: nothing to save or publish
	}
	what := "node"
	if serviceID != "" {
		what = "service"
	}
	if reason == "" {
		reason = fmt.Sprintf(defaultMaintenanceReason, what)
	}
	next := old.clone()
	next.Maintenance = nil
	if enable {
		next.Maintenance = &reason
	}
	return c.commit(false, change{serviceID, next})
}

// SetCheckStatus records a check's new status and output, as the health manager
// reported it, and returns the check record to publish; nothing for an unknown check
// (deregistered meanwhile) or an unchanged one. A status is the truth about the
// check whether or not it could be saved: if saving fails it stands, is published,
// and the error is returned for the caller to log.
func (c *Core) SetCheckStatus(id string, status catalog.Status, output string) (Ready, error) {
	old, key := c.findCheck(id)
	st := CheckState{Status: status, Output: output}
	if old == nil || old.status(id) == st {
		return Ready{}, nil
	}
	next := old.clone()
	if next.Status == nil {
		next.Status = make(map[string]CheckState)
	}
	next.Status[id] = st
	return c.commit(true, change{key, next})
}

// CheckType returns the type of the check with this ID ("ttl", "http", …), and false
// if this node has no such check.
func (c *Core) CheckType(id string) (string, bool) {
	s, _ := c.findCheck(id)
	if s == nil {
		return "", false
	}
	return s.check(id).Type(), true
}

// Services returns the service records registered on this node, sorted by ID.
func (c *Core) Services() []catalog.Service {
	out := make([]catalog.Service, 0, len(c.st.Services))
	for _, id := range slices.Sorted(maps.Keys(c.st.Services)) {
		s := c.st.Services[id].Service
		s.Tags, s.Meta, s.TaggedAddresses = slices.Clone(s.Tags), maps.Clone(s.Meta), maps.Clone(s.TaggedAddresses)
		out = append(out, s)
	}
	return out
}

// Len is how many services are registered on this node.
func (c *Core) Len() int { return len(c.st.Services) }

// Checks returns the checks of this node at their current status, the maintenance
// checks included, sorted by ID.
func (c *Core) Checks() []LocalCheck {
	var out []LocalCheck
	for _, s := range c.entries() {
		out = append(out, s.localChecks()...)
	}
	sortChecks(out)
	return out
}
