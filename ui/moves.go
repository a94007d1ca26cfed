package ui

import (
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Moves (forward pointers, catalog.Move) in the UI: the service page lists where
// instances of the service went, and the event log says "moved" when a node's
// pointer appears or is rewritten. Both read the catalog through movesReader, which
// *catalog.Catalog has; a Catalog without it shows no moves.

// movesReader is what the UI reads of forward pointers.
type movesReader interface {
	// Moves returns the live pointers of the named service.
	Moves(name string) []catalog.MoveEntry
	// MovesFrom returns the live pointers of one node.
	MovesFrom(origin string) []catalog.MoveEntry
}

var _ movesReader = (*catalog.Catalog)(nil)

// moveView is one pointer of a node, as the model keeps it for the event log.
type moveView struct {
	ServiceID, Service, To, ToID string
	Version                      catalog.Version
}

// readMoves returns a node's pointers, if the catalog keeps them.
func (m *model) readMoves(name string) []moveView {
	mr, ok := m.cat.(movesReader)
	if !ok {
		return nil
	}
	var out []moveView
	for _, e := range mr.MovesFrom(name) {
		out = append(out, moveView{ServiceID: e.ServiceID, Service: e.Move.Service, To: e.Move.ToNode,
			ToID: e.Move.ToServiceID, Version: e.Version})
	}
	return out
}

// diffMoves logs the pointers of a node that are new or rewritten; mu is held.
func (m *model) diffMoves(now time.Time, old, nv *nodeView) {
	for _, mv := range nv.Moves {
		var was *moveView
		if old != nil {
			for i := range old.Moves {
				if old.Moves[i].ServiceID == mv.ServiceID {
					was = &old.Moves[i]
				}
			}
		}
		if was != nil && was.Version == mv.Version {
			continue
		}
		m.event(now, "moved", nv.Name, mv.Service, "service "+mv.Service+" ("+mv.ServiceID+") moved from "+nv.Name+" to "+mv.To+" ("+mv.ToID+")")
	}
}

// moveRow is one pointer on the service page.
type moveRow struct {
	From, ServiceID, To, ToServiceID string
	At, Until                        time.Time
	Explicit                         bool
}

// serviceMoves returns the service page's pointers of a service.
func (u *UI) serviceMoves(name string) []moveRow {
	mr, ok := u.cfg.Catalog.(movesReader)
	if !ok {
		return nil
	}
	var out []moveRow
	for _, e := range mr.Moves(name) {
		out = append(out, moveRow{From: e.From, ServiceID: e.ServiceID, To: e.Move.ToNode, ToServiceID: e.Move.ToServiceID,
			At: e.Move.At, Until: e.Move.Until, Explicit: e.Move.Explicit})
	}
	return out
}
