package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Move is a forward pointer: the value of a KindMove record, which an instance's old
// origin publishes under the instance's old service ID when the instance reappears on
// another node (detected by the agent, or `rumor service move`). Consumers that still
// know the old instance (a DNS name, a proxy, a watch) are told where it went.
//
// Chains are collapsed to one hop by the old origin: when it learns that the target
// moved on (a newer pointer held by the target's origin), it rewrites its own pointer
// to the final target (see OwnMoveUpkeep). Pointers expire at Until: readers ignore
// them from then on and the old origin deletes them.
type Move struct {
	Service     string    // the service name of the instance that moved
	ToNode      string    // the node the instance is on now
	ToServiceID string    // its service ID there
	At          time.Time // when it moved, by the old origin's clock
	Until       time.Time // when the pointer expires (At + the origin's retention)
	Explicit    bool      // set by an operator (`rumor service move`), not detected
}

// Validate reports every problem with m, joined; each wraps ErrInvalid.
func (m *Move) Validate() error {
	var v validator
	v.name("move.service", m.Service)
	v.name("move.to_node", m.ToNode)
	v.name("move.to_service_id", m.ToServiceID)
	if m.At.IsZero() || m.At.UnixNano() <= 0 {
		v.addf("move.at", "must be set")
	}
	if !m.Until.After(m.At) {
		v.addf("move.until", "%s must be after move.at %s", m.Until.UTC().Format(time.RFC3339), m.At.UTC().Format(time.RFC3339))
	}
	return v.err()
}

// Live reports whether the pointer is still answered at now.
func (m *Move) Live(now time.Time) bool { return now.Before(m.Until) }

// MoveEntry is a pointer as the catalog holds it: which origin's instance moved, and
// the version of the record that says so.
type MoveEntry struct {
	From      string // the old origin (node name)
	ServiceID string // the instance's service ID on From
	Version   Version
	Move      Move
}

// String is e.g. "n1/web-1 → n2/web-1".
func (e *MoveEntry) String() string {
	return fmt.Sprintf("%s/%s → %s/%s", e.From, e.ServiceID, e.Move.ToNode, e.Move.ToServiceID)
}

// Moves returns the pointers live at the catalog's clock, of the named service or of
// every service when name is "", sorted by origin and service ID.
func (c *Catalog) Moves(name string) []MoveEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.cfg.Clock.Now()
	var out []MoveEntry
	for o := range c.moveOrigins {
		for k, s := range o.records {
			if s.move != nil && s.move.Live(now) && (name == "" || s.move.Service == name) {
				out = append(out, MoveEntry{From: o.name, ServiceID: k.ID, Version: s.version, Move: *s.move})
			}
		}
	}
	slices.SortFunc(out, func(a, b MoveEntry) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.ServiceID, b.ServiceID))
	})
	return out
}

// MoveFrom returns origin's live pointer for its instance serviceID, if any.
func (c *Catalog) MoveFrom(origin, serviceID string) (MoveEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.moveFromLocked(origin, serviceID, c.cfg.Clock.Now())
}

func (c *Catalog) moveFromLocked(origin, serviceID string, now time.Time) (MoveEntry, bool) {
	o := c.origins[origin]
	if o == nil {
		return MoveEntry{}, false
	}
	s := o.records[Key{Kind: KindMove, ID: serviceID}]
	if s.move == nil || !s.move.Live(now) {
		return MoveEntry{}, false
	}
	return MoveEntry{From: origin, ServiceID: serviceID, Version: s.version, Move: *s.move}, true
}

// maxMoveHops bounds how far OwnMoveUpkeep follows a chain of pointers: a chain is
// collapsed as soon as each origin learns of the next, so long chains are transient.
const maxMoveHops = 16

// MoveUpdate is a change an origin makes to its own pointer: a new value (a collapsed
// chain) or, with Move nil, its deletion (it expired, or the chain leads back here).
type MoveUpdate struct {
	ServiceID string
	Move      *Move
}

// OwnMoveUpkeep returns the changes origin self should make to its own pointers at
// the catalog's clock: delete those that expired, and collapse chains to one hop.
// A pointer to (B, id) is followed when B holds a live pointer for id written after
// this one (a pointer B wrote before is stale: the instance has moved to B since); a
// chain that leads back to self is deleted (the instance came back). The agent
// writes the updates with its Writer; the catalog changes nothing itself.
func (c *Catalog) OwnMoveUpkeep(self string) []MoveUpdate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.cfg.Clock.Now()
	o := c.origins[self]
	if o == nil || c.moveOrigins[o] == 0 {
		return nil
	}
	var out []MoveUpdate
	for k, s := range o.records {
		m := s.move
		if m == nil {
			continue
		}
		if !m.Live(now) {
			out = append(out, MoveUpdate{ServiceID: k.ID})
			continue
		}
		node, id, at := m.ToNode, m.ToServiceID, m.At
		for range maxMoveHops {
			next, ok := c.moveFromLocked(node, id, now)
			if !ok || !next.Move.At.After(at) || node == self {
				break
			}
			node, id, at = next.Move.ToNode, next.Move.ToServiceID, next.Move.At
		}
		switch {
		case node == self:
			out = append(out, MoveUpdate{ServiceID: k.ID})
		case node != m.ToNode || id != m.ToServiceID:
			n := *m
			n.ToNode, n.ToServiceID = node, id
			out = append(out, MoveUpdate{ServiceID: k.ID, Move: &n})
		}
	}
	slices.SortFunc(out, func(a, b MoveUpdate) int { return cmp.Compare(a.ServiceID, b.ServiceID) })
	return out
}

// ServiceOf returns origin's live service record with this ID, if any: a cheap
// lookup by key (the agent reads the name of a service it is about to delete).
func (c *Catalog) ServiceOf(origin, id string) (Service, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if o := c.origins[origin]; o != nil {
		if s := o.storedService(id); s != nil {
			return *s.clone(), true
		}
	}
	return Service{}, false
}

// MovesFrom returns origin's live pointers, sorted by service ID: what a view of one
// node shows of the instances that left it.
func (c *Catalog) MovesFrom(origin string) []MoveEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	o := c.origins[origin]
	if o == nil || c.moveOrigins[o] == 0 {
		return nil
	}
	now := c.cfg.Clock.Now()
	var out []MoveEntry
	for k, s := range o.records {
		if s.move != nil && s.move.Live(now) {
			out = append(out, MoveEntry{From: o.name, ServiceID: k.ID, Version: s.version, Move: *s.move})
		}
	}
	slices.SortFunc(out, func(a, b MoveEntry) int { return cmp.Compare(a.ServiceID, b.ServiceID) })
	return out
}
