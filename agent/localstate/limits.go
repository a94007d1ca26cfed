package localstate

import (
	"errors"
	"fmt"

	"github.com/rumor-sd/rumor/catalog"
)

// Defaults of Limits. A node of a Docker host may well run thousands of services (one
// per container port, as registrator registers them); a service rarely has more than a
// few checks. Each check runs in a goroutine of its own, so the caps also bound the
// goroutines a client can make the agent start: one request once registered 25,000
// checks.
const (
	DefaultMaxServices         = 10000
	DefaultMaxChecks           = 20000
	DefaultMaxChecksPerService = 100
)

// Limits bound what this node holds, whatever the source of a registration (HTTP API,
// config files, Docker). A change that would take a count past its limit is refused
// with a *LimitError. A state already past a limit (one saved before the limit was
// lowered) is kept as it is: only changes that add are refused.
type Limits struct {
	// MaxServices caps the services registered on this node. Default 10,000
	// (DefaultMaxServices).
	MaxServices int
	// MaxChecks caps the checks on this node, the services' and the node's own
	// (maintenance checks aside). Default 20,000 (DefaultMaxChecks).
	MaxChecks int
	// MaxChecksPerService caps the checks of one service. Default 100
	// (DefaultMaxChecksPerService).
	MaxChecksPerService int
}

// Validate reports the limits that are negative, by the name of the flag that sets
// them (rumor agent --max-services, …).
func (l Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"max-services", l.MaxServices}, {"max-checks", l.MaxChecks}, {"max-checks-per-service", l.MaxChecksPerService}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("limit --%s %d: must not be negative (0 means the default)", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills in the zero fields; a negative one is an error.
func (l Limits) withDefaults() (Limits, error) {
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("localstate: %w", err)
	}
	if l.MaxServices == 0 {
		l.MaxServices = DefaultMaxServices
	}
	if l.MaxChecks == 0 {
		l.MaxChecks = DefaultMaxChecks
	}
	if l.MaxChecksPerService == 0 {
		l.MaxChecksPerService = DefaultMaxChecksPerService
	}
	return l, nil
}

// LimitError is a change refused because it would take this node past one of its
// Limits. It wraps catalog.ErrInvalid: the HTTP API answers it 400, naming the limit.
type LimitError struct {
	// Field is what is over the limit: "service.checks" (one service's checks),
	// "services" or "checks" (the node's).
	Field string
	// Count is what the change would make; Limit what is allowed.
	Count, Limit int
}

// Error says what is over which limit and how to raise it.
func (e *LimitError) Error() string {
	var what, setting string
	switch e.Field {
	case "service.checks":
		what, setting = "checks in one service", "max-checks-per-service"
	case "services":
		what, setting = "services on this node", "max-services"
	default:
		what, setting = "checks on this node", "max-checks"
	}
	return fmt.Sprintf("%s: %d %s, over the agent's limit of %d (rumor agent --%s)", e.Field, e.Count, what, e.Limit, setting)
}

// Unwrap lets errors.Is(err, catalog.ErrInvalid) hold.
func (e *LimitError) Unwrap() error { return catalog.ErrInvalid }

// counts is how many services and checks the node holds.
type counts struct{ services, checks int }

// count is what the node holds now.
func (c *Core) count() counts { return counts{len(c.st.Services), len(c.owners)} }

// perService refuses an entry with more checks than a service may have, unless it
// has no more than old, the entry it replaces (a state loaded past the limit).
func (c *Core) perService(key string, next, old *Service) error {
	if key == "" || next == nil || len(next.Checks) <= c.limits.MaxChecksPerService || old != nil && len(next.Checks) <= len(old.Checks) {
		return nil
	}
	return &LimitError{Field: "service.checks", Count: len(next.Checks), Limit: c.limits.MaxChecksPerService}
}

// over refuses to go from counts now to counts then when then is past a limit and
// above now.
func (c *Core) over(now, then counts) error {
	switch {
	case then.services > c.limits.MaxServices && then.services > now.services:
		return &LimitError{Field: "services", Count: then.services, Limit: c.limits.MaxServices}
	case then.checks > c.limits.MaxChecks && then.checks > now.checks:
		return &LimitError{Field: "checks", Count: then.checks, Limit: c.limits.MaxChecks}
	}
	return nil
}

// fits refuses changes that would take the node past its limits: a service with
// too many checks, or too many services or checks in all.
func (c *Core) fits(changes []change) error {
	now := c.count()
	then := now
	var errs []error
	for _, ch := range changes {
		old := c.entry(ch.key)
		errs = append(errs, c.perService(ch.key, ch.next, old))
		then = then.add(ch.key, old, -1).add(ch.key, ch.next, +1)
	}
	return errors.Join(append(errs, c.over(now, then))...)
}

// add is n with entry s (under key) counted sign times; nil counts nothing.
func (n counts) add(key string, s *Service, sign int) counts {
	if s == nil {
		return n
	}
	if key != "" {
		n.services += sign
	}
	n.checks += sign * len(s.Checks)
	return n
}
