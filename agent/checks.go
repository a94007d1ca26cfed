package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/health"
)

// Maintenance checks, named as Consul names them so tools recognise them.
const (
	nodeMaintenanceID        = "_node_maintenance"
	serviceMaintenancePrefix = "_service_maintenance:"
	defaultMaintenanceReason = "Maintenance mode is enabled for this %s, but no reason was provided. This is a default message."
)

// maintenanceCheck is the check record that puts a service (or, with serviceID "",
// the node) in maintenance: its status hides the instance from passing queries.
func maintenanceCheck(serviceID, reason string) catalog.Check {
	c := catalog.Check{ID: nodeMaintenanceID, Name: "Node Maintenance Mode", Status: catalog.StatusMaintenance,
		Notes: reason, Type: "maintenance"}
	if serviceID != "" {
		c.ID, c.Name, c.ServiceID = serviceMaintenancePrefix+serviceID, "Service Maintenance Mode", serviceID
	}
	return c
}

// startAt is d as the health manager runs it: starting at status st (its initial
// status when st is zero).
func startAt(d definition.Check, st catalog.Status) definition.Check {
	if st != 0 {
		d.Status = st
	}
	return d
}

// checkRecord is the record published for check d of ls: its definition at its last
// reported status.
func (ls *localService) checkRecord(d *definition.Check) catalog.Check {
	c := d.Record()
	if st, ok := ls.Status[d.ID]; ok {
		c.Status, c.Output = st.Status, st.Output
	}
	return c
}

// healthDefsLocked returns the definitions of ls's runnable checks, each starting at
// its last reported status.
func (a *Agent) healthDefsLocked(ls *localService) []definition.Check {
	var defs []definition.Check
	for i := range ls.Checks {
		d := &ls.Checks[i]
		if !d.Runnable() || (d.Type() == definition.TypeScript && !a.cfg.EnableScriptChecks) {
			continue
		}
		defs = append(defs, startAt(*d, ls.Status[d.ID].Status))
	}
	return defs
}

// startChecksLocked adds every persisted check to the health manager, at its
// persisted status. Add never waits for a Sink call, so holding a.mu is safe here.
func (a *Agent) startChecksLocked() {
	for _, id := range slices.Sorted(maps.Keys(a.local)) {
		for _, d := range a.healthDefsLocked(a.local[id]) {
			if err := a.health.Add(d); err != nil {
				a.log.Error("run check", "check", d.ID, "error", err)
			}
		}
	}
	for _, d := range a.healthDefsLocked(&a.nodeChecks) {
		if err := a.health.Add(d); err != nil {
			a.log.Error("run check", "check", d.ID, "error", err)
		}
	}
}

// findCheckLocked returns the service holding the check with this ID (&a.nodeChecks
// for a standalone node check) and its definition, or nils.
func (a *Agent) findCheckLocked(id string) (*localService, *definition.Check) {
	for i := range a.nodeChecks.Checks {
		if a.nodeChecks.Checks[i].ID == id {
			return &a.nodeChecks, &a.nodeChecks.Checks[i]
		}
	}
	for _, ls := range a.local {
		for i := range ls.Checks {
			if ls.Checks[i].ID == id {
				return ls, &ls.Checks[i]
			}
		}
	}
	return nil, nil
}

// checkSink is the agent's local state as the health manager's Sink.
type checkSink struct{ a *Agent }

var _ health.Sink = checkSink{}

// SetCheckStatus records a check's new status and output in the local state,
// persists it and publishes the check record. The manager calls it only on changes
// (output changes rate-limited), so each call is one gossiped record.
func (s checkSink) SetCheckStatus(id string, status catalog.Status, output string) {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	ls, d := a.findCheckLocked(id)
	if ls == nil || a.writer == nil {
		return // deregistered meanwhile
	}
	st := checkState{Status: status, Output: output}
	if cur, ok := ls.Status[id]; ok && cur == st {
		return
	}
	if ls.Status == nil {
		ls.Status = make(map[string]checkState)
	}
	ls.Status[id] = st
	if err := a.persistLocked(); err != nil {
		a.log.Warn("persist check status", "check", id, "error", err)
	}
	c := ls.checkRecord(d)
	a.applyLocked([]catalog.Record{a.writer.PutCheck(&c)})
}

// deregisterCritical is the health manager's OnDeregister: a check of the service
// has been critical for its DeregisterCriticalServiceAfter.
func (a *Agent) deregisterCritical(serviceID string) {
	err := a.DeregisterService(a.ctx, serviceID)
	switch {
	case err == nil:
		a.log.Info("deregistered a service critical for too long", "service", serviceID)
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, ErrNotRunning):
	default:
		a.log.Error("deregister critical service", "service", serviceID, "error", err)
	}
}

// UpdateTTL records a heartbeat of a ttl check (PUT /v1/agent/check/pass|warn|fail|
// update/<id>). Errors: catalog.ErrNotFound for an unknown check; catalog.ErrInvalid
// for a check of another type or a status other than passing, warning or critical.
func (a *Agent) UpdateTTL(_ context.Context, id string, status catalog.Status, output string) error {
	a.mu.Lock()
	running := a.started && !a.stopped
	_, d := a.findCheckLocked(id)
	var typ string
	if d != nil {
		typ = d.Type()
	}
	hm := a.health
	a.mu.Unlock()
	switch {
	case !running:
		return ErrNotRunning
	case d == nil:
		return fmt.Errorf("agent: update check %q: %w: no check has this ID on this node", id, catalog.ErrNotFound)
	case typ != definition.TypeTTL:
		return fmt.Errorf("agent: update check %q: %w: it is a %s check, not a TTL check; only TTL checks take heartbeats", id, catalog.ErrInvalid, typ)
	}
	err := hm.UpdateTTL(id, status, output)
	if errors.Is(err, health.ErrUnknownCheck) {
		return fmt.Errorf("agent: update check %q: %w", id, catalog.ErrNotFound) // deregistered meanwhile
	}
	return err
}

// SetMaintenance turns maintenance mode on or off for a local service, or for the
// node when serviceID is "": a check record with status maintenance and the reason as
// Notes, which hides the instance (or every instance of the node) from passing
// queries. It is persisted. catalog.ErrNotFound for an unknown service.
func (a *Agent) SetMaintenance(_ context.Context, serviceID string, enable bool, reason string) error {
	if err := a.lockRunning(); err != nil {
		return err
	}
	defer a.regMu.Unlock()
	defer a.mu.Unlock()
	what := "node"
	slot := &a.nodeMaint
	if serviceID != "" {
		ls := a.local[serviceID]
		if ls == nil {
			return fmt.Errorf("agent: maintenance of service %q: %w", serviceID, catalog.ErrNotFound)
		}
		what, slot = "service", &ls.Maintenance
	}
	if reason == "" {
		reason = fmt.Sprintf(defaultMaintenanceReason, what)
	}
	old := *slot
	if enable {
		*slot = &reason
	} else {
		if old == nil {
			return nil
		}
		*slot = nil
	}
	if err := a.persistLocked(); err != nil {
		*slot = old
		return err
	}
	c := maintenanceCheck(serviceID, reason)
	if enable {
		a.applyLocked([]catalog.Record{a.writer.PutCheck(&c)})
	} else {
		a.applyLocked([]catalog.Record{a.writer.Delete(catalog.Key{Kind: catalog.KindCheck, ID: c.ID})})
	}
	a.log.Info("maintenance mode", "service", serviceID, "enabled", enable, "reason", reason)
	return nil
}

// LocalCheck is a check of this node with what GET /v1/agent/checks shows of it.
type LocalCheck struct {
	Check       catalog.Check
	ServiceName string
	ServiceTags []string
	Definition  definition.Check // zero for maintenance checks
}

// LocalChecks returns the checks of this node at their current status, the
// maintenance checks included, sorted by ID.
func (a *Agent) LocalChecks() []LocalCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []LocalCheck
	if a.nodeMaint != nil {
		out = append(out, LocalCheck{Check: maintenanceCheck("", *a.nodeMaint)})
	}
	for i := range a.nodeChecks.Checks {
		d := a.nodeChecks.Checks[i]
		d.Header, d.ScriptArgs = maps.Clone(d.Header), slices.Clone(d.ScriptArgs)
		out = append(out, LocalCheck{Check: a.nodeChecks.checkRecord(&d), Definition: d})
	}
	for _, ls := range a.local {
		tags := slices.Clone(ls.Service.Tags)
		for i := range ls.Checks {
			d := ls.Checks[i]
			d.Header, d.ScriptArgs = maps.Clone(d.Header), slices.Clone(d.ScriptArgs)
			out = append(out, LocalCheck{Check: ls.checkRecord(&d), ServiceName: ls.Service.Name, ServiceTags: tags, Definition: d})
		}
		if ls.Maintenance != nil {
			out = append(out, LocalCheck{Check: maintenanceCheck(ls.Service.ID, *ls.Maintenance),
				ServiceName: ls.Service.Name, ServiceTags: tags})
		}
	}
	slices.SortFunc(out, func(x, y LocalCheck) int { return cmp.Compare(x.Check.ID, y.Check.ID) })
	return out
}
