package localstate

import (
	"fmt"
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// SourceDocker marks a service the Docker watcher registered for a container. Like
// a config file's services, the watcher owns them: it adds, replaces and removes
// them in batches through ApplyOwned, sees them through Owned, and nothing else
// replaces them (an API registration with the same ID is refused; an API
// deregistration is allowed, and the watcher adds the service back if its container
// still runs).
const SourceDocker Source = "docker"

// Owned returns the definitions of the services src registered, sorted by ID,
// normalized, each with its checks at their definitions' initial status (the
// reported statuses are the health manager's).
func (c *Core) Owned(src Source) []definition.Service {
	var out []definition.Service
	for _, id := range slices.Sorted(maps.Keys(c.st.Services)) {
		if s := c.st.Services[id]; s.Source == src {
			d := s.Definition()
			out = append(out, d.Clone())
		}
	}
	return out
}

// ApplyOwned registers (adds or replaces) the services in put and deregisters the
// services in del for src, which owns them, in one change: one save, one Ready, so
// a thousand containers started at once cost one write of the state. A replaced
// service keeps its maintenance mode and its kept checks' statuses (carryOver).
//
// A registration that is invalid, whose ID another source holds, that is given
// twice, or whose check IDs another entry holds is refused, and so is a
// deregistration of a service src does not hold; so is a registration that would
// take the node past its Limits (deregistrations count first, then the
// registrations in order, as long as they fit); the others go ahead. refused says
// why, by service ID. err is only a failed save, which undoes the whole change.
func (c *Core) ApplyOwned(src Source, put []definition.Service, del []string) (refused map[string]error, rd Ready, err error) {
	refuse := func(id string, err error) {
		if refused == nil {
			refused = map[string]error{}
		}
		if refused[id] == nil { // the first reason stands
			refused[id] = err
		}
	}
	next := map[string]*Service{}
	var changes []change
	for _, def := range put {
		s, err := prepare(def, c.policy)
		id := s.Service.ID
		switch old := c.st.Services[id]; {
		case err != nil:
			refuse(id, err)
			continue
		case next[id] != nil:
			refuse(id, fmt.Errorf("service %q is given twice: service IDs are unique per node", id))
			continue
		case old != nil && old.Source != src:
			refuse(id, &catalog.FieldError{Field: "service.id",
				Reason: fmt.Sprintf("%q is already registered by the %s; choose another ID", id, old.registeredBy())})
			continue
		}
		s.Source = src
		next[id] = s
	}
	// Check IDs are unique per node: against every other entry, and within the batch.
	claimed := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(next)) {
		s := next[id]
		cid, other := c.takenBy(s, func(o *Service) bool { return next[o.Service.ID] != nil })
		for _, d := range s.Checks {
			if o, taken := claimed[d.ID]; taken && other == nil {
				cid, other = d.ID, next[o]
			}
		}
		if other != nil {
			refuse(id, &catalog.FieldError{Field: "service.checks.id",
				Reason: fmt.Sprintf("check ID %q is taken by %s: check IDs are unique per node", cid, other.owner())})
			continue
		}
		for _, d := range s.Checks {
			claimed[d.ID] = id
		}
		carryOver(c.st.Services[id], s)
		changes = append(changes, change{id, s})
	}
	for _, id := range del {
		switch old := c.st.Services[id]; {
		case next[id] != nil:
		case old == nil:
			refuse(id, fmt.Errorf("deregister service %q: %w", id, catalog.ErrNotFound))
		case old.Source != src:
			refuse(id, fmt.Errorf("deregister service %q: it is registered by the %s", id, old.registeredBy()))
		default:
			next[id] = &Service{} // claimed: a second del of the same ID is a no-op
			changes = append(changes, change{id, nil})
		}
	}
	changes = c.fitting(changes, refuse)
	if len(changes) == 0 {
		return refused, Ready{}, nil
	}
	rd, err = c.commit(false, changes...)
	if err != nil {
		return nil, Ready{}, err
	}
	return refused, rd, nil
}

// registeredBy names, for messages, who registered s: "API", "config file x.json" or the
// source's name.
func (s *Service) registeredBy() string {
	switch s.Source {
	case SourceAPI, "":
		return "API"
	case SourceConfig:
		return "config file " + s.File
	}
	return string(s.Source) + " watcher"
}

// fitting returns the changes that fit the node's Limits together: all of them when
// they do, else the deregistrations (which only free room) and then each
// registration that still fits, in order; refuse is told of every other one.
func (c *Core) fitting(changes []change, refuse func(id string, err error)) []change {
	if c.fits(changes) == nil {
		return changes
	}
	var kept []change
	for _, ch := range changes {
		if ch.next == nil {
			kept = append(kept, ch)
		}
	}
	for _, ch := range changes {
		if ch.next == nil {
			continue
		}
		if err := c.fits(append(kept[:len(kept):len(kept)], ch)); err != nil {
			refuse(ch.key, err)
			continue
		}
		kept = append(kept, ch)
	}
	return kept
}
