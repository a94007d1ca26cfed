package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Checks registered on their own (PUT /v1/agent/check/register) belong to the node
// when they name no ServiceID, and are kept in Agent.nodeChecks; with a ServiceID
// they join that local service's checks, as if registered with it. Either way they
// are persisted, published and run like a service's checks, and a check ID is unique
// on the node.

// owner names, for messages, whose check set ls is.
func (ls *localService) owner() string {
	if ls.Service.ID == "" {
		return "a node check"
	}
	return fmt.Sprintf("service %q", ls.Service.ID)
}

// reservedCheckID reports whether id is one rumor derives itself (serfHealth) or
// uses for maintenance mode, which a registration may not take.
func reservedCheckID(id string) bool {
	return id == catalog.SerfCheckID || id == nodeMaintenanceID || strings.HasPrefix(id, serviceMaintenancePrefix)
}

// normalizeNodeCheck fills a standalone check's defaults (its ID is its name, as in
// Consul) and validates it under p. Errors wrap catalog.ErrInvalid and name the field.
func normalizeNodeCheck(d *definition.Check, p definition.Policy) error {
	d.Normalize()
	var errs []error
	if d.Name == "" {
		errs = append(errs, &catalog.FieldError{Field: "check.Name", Reason: "missing: every check needs a name"})
	}
	if reservedCheckID(d.ID) {
		errs = append(errs, &catalog.FieldError{Field: "check.ID",
			Reason: fmt.Sprintf("%q is reserved by rumor (liveness and maintenance mode); choose another", d.ID)})
	}
	return errors.Join(append(errs, d.Validate(p))...)
}

// RegisterCheck adds a check to this node, or replaces the one with the same ID
// (which keeps its reported status, as a re-registered service's checks do): a node
// check when d.ServiceID is "", else a check of that local service. It is persisted,
// published and run. Invalid input (a missing name, an unknown ServiceID, an ID
// taken by another owner, a kind rumor cannot run) yields an error wrapping
// catalog.ErrInvalid and changes nothing.
func (a *Agent) RegisterCheck(_ context.Context, d definition.Check) error {
	if err := normalizeNodeCheck(&d, a.policy()); err != nil {
		return fmt.Errorf("agent: register check %q: %w", d.ID, err)
	}
	if err := a.lockRunning(); err != nil {
		return err
	}
	defer a.regMu.Unlock()
	ls := &a.nodeChecks
	if d.ServiceID != "" {
		if ls = a.local[d.ServiceID]; ls == nil {
			a.mu.Unlock()
			return fmt.Errorf("agent: register check %q: %w", d.ID, &catalog.FieldError{Field: "check.ServiceID",
				Reason: fmt.Sprintf("no service with ID %q is registered on this node", d.ServiceID)})
		}
	}
	if other, _ := a.findCheckLocked(d.ID); other != nil && other != ls {
		a.mu.Unlock()
		return fmt.Errorf("agent: register check %q: %w", d.ID, &catalog.FieldError{Field: "check.ID",
			Reason: fmt.Sprintf("taken by %s: check IDs are unique per node; deregister it first", other.owner())})
	}
	oldChecks := ls.Checks
	ls.Checks = slices.Clone(ls.Checks)
	if i := slices.IndexFunc(ls.Checks, func(c definition.Check) bool { return c.ID == d.ID }); i >= 0 {
		ls.Checks[i] = d
	} else {
		ls.Checks = append(ls.Checks, d)
	}
	if err := a.persistLocked(); err != nil {
		ls.Checks = oldChecks
		a.mu.Unlock()
		return err
	}
	c := ls.checkRecord(&d)
	a.applyLocked([]catalog.Record{a.writer.PutCheck(&c)})
	def := startAt(d, ls.Status[d.ID].Status)
	hm := a.health
	a.mu.Unlock()

	if err := hm.Add(def); err != nil {
		a.log.Error("run check", "check", d.ID, "error", err)
	}
	a.log.Info("check registered", "id", d.ID, "service", d.ServiceID, "type", d.Type())
	return nil
}

// DeregisterCheck removes a check of this node, standalone or of a local service,
// persists that and stops running it. catalog.ErrNotFound if no check has this ID;
// catalog.ErrInvalid for a maintenance check (turn maintenance mode off instead).
func (a *Agent) DeregisterCheck(_ context.Context, id string) error {
	if reservedCheckID(id) {
		return fmt.Errorf("agent: deregister check %q: %w: it is rumor's own (liveness or maintenance mode); turn maintenance off with PUT /v1/agent/maintenance or /v1/agent/service/maintenance/<id>?enable=false", id, catalog.ErrInvalid)
	}
	if err := a.lockRunning(); err != nil {
		return err
	}
	defer a.regMu.Unlock()
	ls, _ := a.findCheckLocked(id)
	if ls == nil {
		a.mu.Unlock()
		return fmt.Errorf("agent: deregister check %q: %w: no check has this ID on this node", id, catalog.ErrNotFound)
	}
	oldChecks, oldStatus, hadStatus := ls.Checks, ls.Status[id], false
	if _, hadStatus = ls.Status[id]; hadStatus {
		delete(ls.Status, id)
	}
	ls.Checks = slices.DeleteFunc(slices.Clone(ls.Checks), func(c definition.Check) bool { return c.ID == id })
	if err := a.persistLocked(); err != nil {
		ls.Checks = oldChecks
		if hadStatus {
			ls.Status[id] = oldStatus
		}
		a.mu.Unlock()
		return err
	}
	a.applyLocked([]catalog.Record{a.writer.Delete(catalog.Key{Kind: catalog.KindCheck, ID: id})})
	hm := a.health
	a.mu.Unlock()
	_ = hm.Remove(id) // ErrUnknownCheck: it was never run (a restart without script checks)
	a.log.Info("check deregistered", "id", id)
	return nil
}
