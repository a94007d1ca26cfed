package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/health"
)

// Checks registered on their own (PUT /v1/agent/check/register) belong to the node
// when they name no ServiceID, else they join that local service's checks; either
// way they are persisted, published and run like a service's checks (see
// localstate.Core.RegisterCheck).

// RegisterCheck adds a check to this node, or replaces the one with the same ID:
// a node check when d.ServiceID is "", else a check of that local service. It is
// persisted, published and run. Invalid input yields an error wrapping
// catalog.ErrInvalid and changes nothing.
func (a *Agent) RegisterCheck(_ context.Context, d definition.Check) error {
	err := a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.RegisterCheck(d) })
	if err == nil {
		a.log.Info("check registered", "id", d.ID, "name", d.Name, "service", d.ServiceID, "type", d.Type())
	}
	return err
}

// DeregisterCheck removes a check of this node, standalone or of a local service,
// persists that and stops running it. catalog.ErrNotFound if no check has this ID;
// catalog.ErrInvalid for a maintenance check (turn maintenance mode off instead).
func (a *Agent) DeregisterCheck(_ context.Context, id string) error {
	err := a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.DeregisterCheck(id) })
	if err == nil {
		a.log.Info("check deregistered", "id", id)
	}
	return err
}

// SetMaintenance turns maintenance mode on or off for a local service, or for the
// node when serviceID is "": a check record with status maintenance and the reason as
// Notes, which hides the instance (or every instance of the node) from passing
// queries. It is persisted. catalog.ErrNotFound for an unknown service.
func (a *Agent) SetMaintenance(_ context.Context, serviceID string, enable bool, reason string) error {
	err := a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.SetMaintenance(serviceID, enable, reason) })
	if err == nil {
		a.log.Info("maintenance mode", "service", serviceID, "enabled", enable, "reason", reason)
	}
	return err
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
	if a.local == nil || a.stopped {
		return
	}
	rd, err := a.local.SetCheckStatus(id, status, output)
	if err != nil {
		a.log.Warn("persist check status", "check", id, "error", err)
	}
	a.applyLocked(rd.Records)
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
	running := a.started && !a.stopped && a.local != nil
	var typ string
	var found bool
	if running {
		typ, found = a.local.CheckType(id)
	}
	hm := a.health
	a.mu.Unlock()
	switch {
	case !running:
		return ErrNotRunning
	case !found:
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

// LocalChecks returns the checks of this node at their current status, the
// maintenance checks included, sorted by ID.
func (a *Agent) LocalChecks() []localstate.LocalCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.local == nil {
		return nil
	}
	return a.local.Checks()
}
