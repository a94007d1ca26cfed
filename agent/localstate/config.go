package localstate

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// ConfigService is a service defined in a config file, as the config package reads
// it: the definition as written (the core normalizes and validates it) and the file,
// for messages and logs.
type ConfigService struct {
	Service definition.Service
	File    string
}

// ConfigResult says what applying the config files' services changed, by service
// ID, each list sorted.
type ConfigResult struct {
	Added     []string // defined in the files now, not before
	Changed   []string // defined differently: republished, kept checks keep their status
	Removed   []string // no longer defined: deregistered
	Unchanged []string // defined the same: untouched, not republished
}

// invalidConfig marks a configuration refused because it is wrong (not because
// saving failed): errors.Is(err, catalog.ErrInvalid) holds. Its message is the list
// of problems as they are, one per line, each naming its file: a prefix would label
// only the first line.
type invalidConfig struct{ err error }

func (e invalidConfig) Error() string   { return e.err.Error() }
func (e invalidConfig) Unwrap() []error { return []error{e.err, catalog.ErrInvalid} }

// InvalidConfig marks err, the config files' own problems (unreadable, invalid), as
// a configuration refused: errors.Is(err, catalog.ErrInvalid) holds and the message
// stays as it is.
func InvalidConfig(err error) error { return invalidConfig{err} }

// ApplyConfig makes the services from config files those defined in defs: added,
// changed and removed ones are published, started or deregistered; unchanged ones
// produce no record, so nothing is re-broadcast, and keep their checks' state.
// Services registered through the API are never touched. If a definition is invalid,
// is given twice, clashes with an API registration or takes a check ID another
// service holds, nothing changes and the error (wrapping catalog.ErrInvalid) names
// every problem by file and service.
func (c *Core) ApplyConfig(defs []ConfigService) (ConfigResult, Ready, error) {
	var errs []error
	want := map[string]*Service{}
	var order []string // wanted IDs in the files' order
	for _, def := range defs {
		s, err := prepare(def.Service, c.configPolicy)
		id := s.Service.ID
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: service %q: %w", def.File, id, err))
			continue
		}
		s.Source, s.File = SourceConfig, def.File
		if prev := want[id]; prev != nil {
			errs = append(errs, fmt.Errorf("%s: service %q is also defined in %s: service IDs are unique per node", def.File, id, prev.File))
			continue
		}
		old := c.st.Services[id]
		if old != nil && old.Source != SourceConfig {
			errs = append(errs, fmt.Errorf("%s: service %q: this ID is registered through the %s; deregister it (rumor deregister %s) or give the file's service another id", def.File, id, old.Source, id))
			continue
		}
		if err := c.perService(id, s, old); err != nil {
			errs = append(errs, fmt.Errorf("%s: service %q: %w", def.File, id, err))
			continue
		}
		want[id] = s
		order = append(order, id)
	}
	// The node's limits, counted in the files' order so that the error names the
	// service (and file) that goes past one.
	now := c.count()
	then := now
	for id, s := range c.st.Services {
		if s.Source == SourceConfig {
			then = then.add(id, s, -1)
		}
	}
	for _, id := range order {
		then = then.add(id, want[id], +1)
		if err := c.over(now, then); err != nil {
			errs = append(errs, fmt.Errorf("%s: service %q: %w", want[id].File, id, err))
			break
		}
	}
	// Check IDs are unique per node, among the wanted services and against every
	// entry the files do not own.
	fromFiles := func(s *Service) bool { return s.Source == SourceConfig }
	claimed := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		s := want[id]
		if cid, other := c.takenBy(s, fromFiles); other != nil {
			errs = append(errs, fmt.Errorf("%s: service %q: check ID %q is taken by %s: check IDs are unique per node", s.File, id, cid, other.owner()))
		}
		for _, d := range s.Checks {
			if o, taken := claimed[d.ID]; taken {
				errs = append(errs, fmt.Errorf("%s: service %q: check ID %q is taken by service %q: check IDs are unique per node", s.File, id, d.ID, o))
			}
			claimed[d.ID] = id
		}
	}
	if len(errs) > 0 {
		return ConfigResult{}, Ready{}, invalidConfig{errors.Join(errs...)}
	}

	var res ConfigResult
	var changes []change
	for _, id := range slices.Sorted(maps.Keys(want)) {
		next, old := want[id], c.st.Services[id]
		switch {
		case old == nil:
			res.Added = append(res.Added, id)
		case sameDefinition(old, next):
			res.Unchanged = append(res.Unchanged, id)
			if old.File == next.File {
				continue
			}
			moved := old.clone() // defined the same in another file: only the file changes
			moved.File = next.File
			changes = append(changes, change{id, moved})
			continue
		default:
			res.Changed = append(res.Changed, id)
		}
		carryOver(old, next)
		changes = append(changes, change{id, next})
	}
	for _, id := range slices.Sorted(maps.Keys(c.st.Services)) {
		if c.st.Services[id].Source == SourceConfig && want[id] == nil {
			res.Removed = append(res.Removed, id)
			changes = append(changes, change{id, nil})
		}
	}
	if len(changes) == 0 {
		return res, Ready{}, nil
	}
	rd, err := c.commit(false, changes...)
	if err != nil {
		return ConfigResult{}, Ready{}, err
	}
	return res, rd, nil
}
