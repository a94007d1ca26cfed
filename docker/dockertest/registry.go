package dockertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Registry is an in-memory stand-in for the agent's local state as the watcher's
// Registry: the services the watcher registered, the IDs other sources hold (which
// it must refuse), and the checks' statuses; it counts the changes made, so a test
// can tell a reconcile that wrote nothing.
type Registry struct {
	mu       sync.Mutex
	owned    map[string]definition.Service
	foreign  map[string]bool
	status   map[string]Status
	changes  int      // Register and Deregister calls that changed something
	writes   int      // status changes (what the agent would save and publish)
	register int      // Register calls
	dereg    []string // every ID Deregister was asked for
}

// Status is a check's status and output as last set.
type Status struct {
	Status catalog.Status
	Output string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{owned: map[string]definition.Service{}, foreign: map[string]bool{}, status: map[string]Status{}}
}

// Foreign marks a service ID as registered by another source (the API, a file).
func (r *Registry) Foreign(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.foreign[id] = true
}

// Owned implements the watcher's Registry.
func (r *Registry) Owned() []definition.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []definition.Service
	for _, id := range slices.Sorted(maps.Keys(r.owned)) {
		out = append(out, r.owned[id].Clone())
	}
	return out
}

// Register implements the watcher's Registry: it normalizes and validates each
// service, refuses foreign IDs, and keeps the statuses of the checks a replacement
// keeps.
func (r *Registry) Register(_ context.Context, svcs []definition.Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.register++
	var errs []error
	changed := false
	for _, s := range svcs {
		s = s.Clone()
		s.Normalize()
		if err := s.Validate(definition.Policy{}); err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", s.ID, err))
			continue
		}
		if r.foreign[s.ID] {
			errs = append(errs, fmt.Errorf("service %q: registered by another source", s.ID))
			continue
		}
		old, had := r.owned[s.ID]
		keep := map[string]bool{}
		for _, c := range s.Checks {
			keep[c.ID] = true
			if _, ok := r.status[c.ID]; !ok || !had {
				st := c.Status
				if st == 0 {
					st = catalog.StatusCritical
				}
				r.status[c.ID] = Status{Status: st}
			}
		}
		for _, c := range old.Checks {
			if !keep[c.ID] {
				delete(r.status, c.ID)
			}
		}
		r.owned[s.ID] = s
		changed = true
	}
	if changed {
		r.changes++
	}
	return errors.Join(errs...)
}

// Deregister implements the watcher's Registry.
func (r *Registry) Deregister(_ context.Context, ids []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	changed := false
	r.dereg = append(r.dereg, ids...)
	for _, id := range ids {
		s, ok := r.owned[id]
		if !ok {
			errs = append(errs, fmt.Errorf("deregister %q: %w", id, catalog.ErrNotFound))
			continue
		}
		for _, c := range s.Checks {
			delete(r.status, c.ID)
		}
		delete(r.owned, id)
		changed = true
	}
	if changed {
		r.changes++
	}
	return errors.Join(errs...)
}

// SetCheckStatus implements the watcher's Registry; a change counts as a write.
func (r *Registry) SetCheckStatus(id string, status catalog.Status, output string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	found := false
	for _, s := range r.owned {
		for _, c := range s.Checks {
			found = found || c.ID == id
		}
	}
	if _, ok := r.status[id]; !found && !ok && id != "_rumor_docker" {
		return fmt.Errorf("check %q: %w", id, catalog.ErrNotFound)
	}
	st := Status{Status: status, Output: output}
	if r.status[id] != st {
		r.status[id] = st
		r.writes++
	}
	return nil
}

// Drop removes an owned service behind the watcher's back, as a deregistration
// through the API would.
func (r *Registry) Drop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.owned, id)
}

// Put adds an owned service behind the watcher's back, as one registered by an
// earlier run would be.
func (r *Registry) Put(s definition.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.Normalize()
	r.owned[s.ID] = s
}

// Service returns an owned service by ID.
func (r *Registry) Service(id string) (definition.Service, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.owned[id]
	return s.Clone(), ok
}

// IDs returns the IDs of the owned services, sorted.
func (r *Registry) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.owned))
}

// CheckStatus returns a check's status as last set.
func (r *Registry) CheckStatus(id string) Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status[id]
}

// Counts returns how many Register and Deregister calls changed something, how
// many status changes were made, and how many Register calls came.
func (r *Registry) Counts() (changes, writes, registerCalls int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes, r.writes, r.register
}

// Deregistered returns every ID Deregister was asked to remove, in order.
func (r *Registry) Deregistered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dereg)
}
