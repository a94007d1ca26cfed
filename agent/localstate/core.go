package localstate

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Store makes the local state durable. The core calls Save after every change,
// before the change is published, with the state as it now is and the keys of the
// entries the change touched (service IDs; "" for the node's own entry). When Save
// fails, the change is undone (a check's status change excepted, see
// Core.SetCheckStatus) and the error returned. A store whose cost per change must not
// grow with the number of services (an append-only log) writes only the touched
// entries; Save must not keep st or its entries, which the core goes on changing.
type Store interface {
	Save(st *State, touched []string) error
}

// Config configures a Core.
type Config struct {
	// Writer writes this node's records: it holds the node's name and generation.
	// Required.
	Writer *catalog.Writer
	// Store persists every change. Default: none, the state lives in memory.
	Store Store
	// Policy is what registrations may hold beyond their own rules (script checks):
	// those through the API, the Docker watcher and the node's own checks.
	Policy definition.Policy
	// ConfigPolicy is the same for the services of config files (ApplyConfig), which
	// only who can write the agent's files can change (Consul's
	// enable_local_script_checks). Default: no script checks.
	ConfigPolicy definition.Policy
	// State is the state to start from, as a Store saved it; New validates it as
	// registrations are validated (script checks allowed: they were accepted when
	// registered) and refuses a check ID held twice. Default: empty.
	State *State
	// Limits bound the services and checks of this node. Default: see Limits.
	Limits Limits
	// Moves are this node's forward pointers to start from, by old service ID, as
	// the agent saved them (moves.go). A pointer whose service is registered is
	// dropped: the instance came back. Default: none.
	Moves map[string]catalog.Move
}

// Ready is what a change asks of its caller, in the manner of etcd raft's Ready: the
// records to apply to the catalog and broadcast, in order, and the checks to start
// (each at its current status; a running check with the same ID is replaced) and to
// stop, by ID.
type Ready struct {
	Records []catalog.Record
	Start   []definition.Check
	Stop    []string
	// UpstreamsChanged says a service's upstreams (local proxy listeners) changed:
	// the caller reads Upstreams again.
	UpstreamsChanged bool
	// MovesChanged says this node's forward pointers changed (moves.go): the caller
	// persists Moves again.
	MovesChanged bool
}

// Core is the agent's local state: the services and checks registered on this node,
// maintenance mode and their persistence. Its methods are synchronous and do no I/O
// but through the Store; each returns what the change means for the catalog, gossip
// and the health checks, for the agent to carry out. It is not safe for concurrent
// use: the agent serialises calls.
type Core struct {
	w      *catalog.Writer
	store  Store
	policy definition.Policy
	limits Limits
	st     State
	node   catalog.Node
	// owners maps every check ID to the key of the entry holding it, so that
	// finding a check and the uniqueness rule cost the same at 10 services as at
	// 10,000 (setEntry keeps it).
	owners map[string]string

	configPolicy definition.Policy       // policy for SourceConfig services
	moves        map[string]catalog.Move // this node's forward pointers, by old service ID (moves.go)
}

// persisted is the policy a saved state is checked under: its checks were accepted
// when registered, and a script check kept while script checks are off stays, unrun.
var persisted = definition.Policy{EnableScriptChecks: true}

// New returns a core holding cfg.State. A state that does not validate is an error
// naming the entry: starting without it would deregister what it holds.
func New(cfg Config) (*Core, error) {
	if cfg.Writer == nil {
		return nil, errors.New("localstate: Config.Writer is required")
	}
	limits, err := cfg.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Core{w: cfg.Writer, store: cfg.Store, policy: cfg.Policy, configPolicy: cfg.ConfigPolicy, limits: limits,
		st: State{Services: map[string]*Service{}, Node: &Service{}}, owners: map[string]string{}}
	s := cfg.State
	if s == nil {
		return c, nil
	}
	if s.Node != nil {
		node := s.Node.clone()
		for i := range node.Checks {
			if err := prepareNodeCheck(&node.Checks[i], persisted); err != nil {
				return nil, fmt.Errorf("node check %q: %w", node.Checks[i].ID, err)
			}
		}
		if err := c.restore("", node); err != nil {
			return nil, err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.Services)) {
		ls := s.Services[id]
		n, err := prepare(ls.Definition(), persisted)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", id, err)
		}
		n.Source, n.File, n.Status, n.Maintenance = ls.Source, ls.File, ls.Status, ls.Maintenance
		if err := c.restore(n.Service.ID, n); err != nil {
			return nil, err
		}
	}
	for id, m := range cfg.Moves {
		if c.st.Services[id] == nil {
			if c.moves == nil {
				c.moves = map[string]catalog.Move{}
			}
			c.moves[id] = m
		}
	}
	return c, nil
}

// restore puts a saved entry in the state, refusing a check ID that another entry
// (or the same one) already holds: the core never saves that, so it is damage, and
// keeping either check would silently drop the other.
func (c *Core) restore(key string, s *Service) error {
	for i, d := range s.Checks {
		if okey, taken := c.owners[d.ID]; taken {
			return fmt.Errorf("check ID %q is held by both %s and %s: check IDs are unique per node", d.ID, c.entry(okey).owner(), s.owner())
		}
		if slices.ContainsFunc(s.Checks[:i], func(o definition.Check) bool { return o.ID == d.ID }) {
			return fmt.Errorf("check ID %q appears twice in %s: check IDs are unique per node", d.ID, s.owner())
		}
	}
	c.setEntry(key, s)
	return nil
}

// prepare normalizes and validates a service definition under p, returning the
// entry it becomes (registered through the API unless the caller says otherwise).
func prepare(def definition.Service, p definition.Policy) (*Service, error) {
	def = def.Clone()
	def.Normalize()
	err := def.Validate(p)
	return &Service{Source: SourceAPI, Service: def.Record(), Checks: def.Checks, Upstreams: def.Upstreams}, err
}

// prepareNodeCheck fills the defaults of a check registered without a service (its ID
// is its name) and validates it under p: a name is required, as Consul requires it,
// and rumor's own check IDs are reserved.
func prepareNodeCheck(d *definition.Check, p definition.Policy) error {
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

// entry returns the entry under key: a service by ID, or the node's for "".
func (c *Core) entry(key string) *Service {
	if key == "" {
		return c.st.Node
	}
	return c.st.Services[key]
}

// setEntry replaces the entry under key with s (nil: removes the service) and
// keeps the check index.
func (c *Core) setEntry(key string, s *Service) {
	if old := c.entry(key); old != nil {
		for _, d := range old.Checks {
			if c.owners[d.ID] == key { // another entry may have taken it over already
				delete(c.owners, d.ID)
			}
		}
	}
	if s != nil {
		for _, d := range s.Checks {
			c.owners[d.ID] = key
		}
	}
	switch {
	case key == "":
		c.st.Node = s
	case s == nil:
		delete(c.st.Services, key)
	default:
		c.st.Services[key] = s
	}
}

// change replaces the entry under key with next (nil: removes the service).
type change struct {
	key  string
	next *Service
}

// commit applies changes, saves them and returns what they mean: the records that
// differ and the checks to start and stop. Changes that would take the node past its
// Limits are refused first. If saving fails the changes are undone, unless keep says
// a change stands unsaved.
func (c *Core) commit(keep bool, changes ...change) (Ready, error) {
	if err := c.fits(changes); err != nil {
		return Ready{}, err
	}
	olds := make([]*Service, len(changes))
	touched := make([]string, len(changes))
	for i, ch := range changes {
		olds[i], touched[i] = c.entry(ch.key), ch.key
		c.setEntry(ch.key, ch.next)
	}
	var err error
	if c.store != nil {
		if err = c.store.Save(&c.st, touched); err != nil && !keep {
			for i, ch := range changes {
				c.setEntry(ch.key, olds[i])
			}
			return Ready{}, fmt.Errorf("save local state: %w", err)
		}
	}
	var rd Ready
	for i, ch := range changes {
		c.diff(&rd, ch.key, olds[i], ch.next)
	}
	c.clearMoves(&rd, changes)
	return rd, err
}

// diff adds to rd what replacing old with next under key means: records for what
// differs (the service, each check whose definition or status changed, the
// maintenance check), deletions for what went, checks to start where their definition
// is new or changed, and checks to stop that went.
func (c *Core) diff(rd *Ready, key string, old, next *Service) {
	if (old != nil && len(old.Upstreams) > 0) || (next != nil && len(next.Upstreams) > 0) {
		rd.UpstreamsChanged = rd.UpstreamsChanged || old == nil || next == nil || !slices.Equal(old.Upstreams, next.Upstreams)
	}
	if next == nil {
		next = &Service{}
		rd.Records = append(rd.Records, c.w.Delete(catalog.Key{Kind: catalog.KindService, ID: key}))
	} else if key != "" && (old == nil || !reflect.DeepEqual(old.Service, next.Service)) {
		rd.Records = append(rd.Records, c.w.PutService(&next.Service))
	}
	for i := range next.Checks {
		d := &next.Checks[i]
		prev := old.check(d.ID)
		changed := prev == nil || !reflect.DeepEqual(*prev, *d)
		if changed || old.status(d.ID) != next.status(d.ID) {
			r := next.checkRecord(d)
			rd.Records = append(rd.Records, c.w.PutCheck(&r))
		}
		if changed && c.runnable(next, d) {
			rd.Start = append(rd.Start, startAt(*d, next.status(d.ID).Status))
		}
	}
	if old != nil {
		for _, d := range old.Checks {
			if next.check(d.ID) == nil {
				rd.Records = append(rd.Records, c.w.Delete(catalog.Key{Kind: catalog.KindCheck, ID: d.ID}))
				rd.Stop = append(rd.Stop, d.ID)
			}
		}
	}
	var was, is *string
	if old != nil {
		was = old.Maintenance
	}
	is = next.Maintenance
	switch {
	case is != nil && (was == nil || *was != *is):
		m := maintenanceCheck(key, *is)
		rd.Records = append(rd.Records, c.w.PutCheck(&m))
	case is == nil && was != nil:
		rd.Records = append(rd.Records, c.w.Delete(catalog.Key{Kind: catalog.KindCheck, ID: maintenanceCheck(key, "").ID}))
	}
}

// runnable reports whether the health manager runs d, a check of s, here: its kind
// is one rumor runs, and script checks only when the policy of s's source allows
// them (a persisted one is kept, unrun, after a restart without them).
func (c *Core) runnable(s *Service, d *definition.Check) bool {
	p := c.policy
	if s.Source == SourceConfig {
		p = c.configPolicy
	}
	return d.Runnable() && (d.Type() != definition.TypeScript || p.EnableScriptChecks)
}

// startAt is d as the health manager runs it: starting at status st (its initial
// status when st is zero).
func startAt(d definition.Check, st catalog.Status) definition.Check {
	if st != 0 {
		d.Status = st
	}
	return d
}

// takenBy is the one rule for check IDs: unique on the node, across services and the
// node's own checks. It returns the first check of s whose ID an entry other than s
// (and than those skip names) holds, and that entry; "" and nil when there is none.
func (c *Core) takenBy(s *Service, skip func(*Service) bool) (string, *Service) {
	for _, d := range s.Checks {
		key, taken := c.owners[d.ID]
		if !taken || key == s.Service.ID {
			continue
		}
		if other := c.entry(key); skip == nil || !skip(other) {
			return d.ID, other
		}
	}
	return "", nil
}

// entries lists every entry, the node's first, then services by ID.
func (c *Core) entries() []*Service {
	out := []*Service{c.st.Node}
	for _, id := range slices.Sorted(maps.Keys(c.st.Services)) {
		out = append(out, c.st.Services[id])
	}
	return out
}

// findCheck returns the entry holding the check with this ID and the entry's key.
func (c *Core) findCheck(id string) (*Service, string) {
	key, ok := c.owners[id]
	if !ok {
		return nil, ""
	}
	return c.entry(key), key
}
