package localstate

import (
	"fmt"
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
)

// This node's forward pointers (catalog.Move): one per service ID that moved away
// from here. The core writes them with the node's Writer, so they are records of this
// node like its services: republished by All (a new generation keeps them) and
// deleted when a service with the same ID registers here again. The core keeps them
// in memory; the agent persists them apart from the services' log (Ready.MovesChanged,
// Moves), since they change rarely.

// PutMove records that this node's instance serviceID moved as m says, replacing a
// pointer it had. The instance itself must be gone from here: a registered service
// with that ID is an error, since the pointer would then contradict it.
func (c *Core) PutMove(serviceID string, m catalog.Move) (Ready, error) {
	if c.st.Services[serviceID] != nil {
		return Ready{}, fmt.Errorf("move service %q: %w", serviceID, &catalog.FieldError{Field: "service.id",
			Reason: fmt.Sprintf("%q is still registered on this node: deregister it first (rumor service move does both)", serviceID)})
	}
	r := c.w.PutMove(serviceID, &m)
	if err := r.Validate(); err != nil {
		return Ready{}, fmt.Errorf("move service %q: %w", serviceID, err)
	}
	if c.moves == nil {
		c.moves = map[string]catalog.Move{}
	}
	c.moves[serviceID] = m
	return Ready{Records: []catalog.Record{r}, MovesChanged: true}, nil
}

// DeleteMove deletes this node's pointer for serviceID; catalog.ErrNotFound if there
// is none.
func (c *Core) DeleteMove(serviceID string) (Ready, error) {
	if _, ok := c.moves[serviceID]; !ok {
		return Ready{}, fmt.Errorf("delete the pointer of %q: %w", serviceID, catalog.ErrNotFound)
	}
	delete(c.moves, serviceID)
	return Ready{Records: []catalog.Record{c.w.Delete(catalog.Key{Kind: catalog.KindMove, ID: serviceID})}, MovesChanged: true}, nil
}

// Moves returns this node's pointers by old service ID (a copy).
func (c *Core) Moves() map[string]catalog.Move { return maps.Clone(c.moves) }

// moveRecords publishes every pointer, for All.
func (c *Core) moveRecords() []catalog.Record {
	var out []catalog.Record
	for _, id := range slices.Sorted(maps.Keys(c.moves)) {
		m := c.moves[id]
		out = append(out, c.w.PutMove(id, &m))
	}
	return out
}

// clearMoves deletes the pointers of the services a change registers here: an
// instance that is back is no longer elsewhere.
func (c *Core) clearMoves(rd *Ready, changes []change) {
	for _, ch := range changes {
		if ch.key == "" || ch.next == nil {
			continue
		}
		if _, ok := c.moves[ch.key]; ok {
			delete(c.moves, ch.key)
			rd.Records = append(rd.Records, c.w.Delete(catalog.Key{Kind: catalog.KindMove, ID: ch.key}))
			rd.MovesChanged = true
		}
	}
}
