package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
)

// Moves: when a service instance leaves this node and the same service (same ID and
// name) appears on another node within Config.MoveWindow, or an operator says so
// (`rumor service move`, MoveService), this node publishes a forward pointer
// (catalog.Move, a KindMove record of its own origin), kept for Config.MoveRetention.
// The local state writes and republishes the pointers like the node's other records;
// this file detects moves, collapses chains (catalog.OwnMoveUpkeep), expires
// pointers and persists them in the data dir's moves.json.

// movesFile holds this node's forward pointers, rewritten whole at every change
// (they change rarely).
const movesFile = "moves.json"

// movesState is moves.json.
type movesState struct {
	Moves map[string]catalog.Move // by old service ID
}

// loadMoves reads moves.json; a pointer that does not validate is dropped with a
// warning (pointers are advisory: losing one costs a client a retry, not data).
func (d *dataDir) loadMoves(self string, warn func(msg string, args ...any)) (map[string]catalog.Move, error) {
	var st movesState
	if _, err := readJSON(d.file(movesFile), &st); err != nil {
		return nil, fmt.Errorf("agent: load forward pointers: %w", err)
	}
	for id, m := range st.Moves {
		r := catalog.Record{Origin: self, Key: catalog.Key{Kind: catalog.KindMove, ID: id}, Version: catalog.Version{Gen: 1, Counter: 1}, Move: &m}
		if err := r.Validate(); err != nil {
			warn("dropping a saved forward pointer that does not validate", "file", d.file(movesFile), "service_id", id, "error", err)
			delete(st.Moves, id)
		}
	}
	return st.Moves, nil
}

func (d *dataDir) saveMoves(m map[string]catalog.Move) error {
	b, err := json.MarshalIndent(movesState{Moves: m}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.file(movesFile), append(b, '\n')); err != nil {
		return fmt.Errorf("agent: save forward pointers: %w", err)
	}
	return nil
}

// pendingMove is a service instance deregistered here, watched for reappearing
// elsewhere until the window ends.
type pendingMove struct {
	name   string
	at     time.Time
	before map[string]bool // the other nodes that held the same ID and name then
}

// moveWatch is the set of pending moves. Its own lock: applyLocked notes
// deregistrations under a.mu, the moves loop reads them without it.
type moveWatch struct {
	mu      sync.Mutex
	pending map[string]pendingMove // by service ID
	wake    chan struct{}          // capacity 1: a new pending move
	// recorded counts the moves this node recorded, by how ("detected", "explicit").
	recorded *prometheus.CounterVec
}

func newMoveWatch() *moveWatch {
	return &moveWatch{pending: map[string]pendingMove{}, wake: make(chan struct{}, 1),
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rumor", Subsystem: "agent", Name: "moves_total",
			Help: "Moves of this node's service instances to other nodes that it recorded as forward pointers, by how: detected (same service ID elsewhere) or explicit (rumor service move).",
		}, []string{"how"})}
}

func (w *moveWatch) add(id string, p pendingMove) {
	w.mu.Lock()
	w.pending[id] = p
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *moveWatch) drop(id string) {
	w.mu.Lock()
	delete(w.pending, id)
	w.mu.Unlock()
}

func (w *moveWatch) snapshot() map[string]pendingMove {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.pending)
}

func (w *moveWatch) get(id string) (pendingMove, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.pending[id]
	return p, ok
}

// noteDeregistered notes the services a batch of this node's records deletes, before
// the catalog applies it (it still holds their names), as pending moves. A service
// the same batch points elsewhere (an explicit move) is not pending. Called with a.mu.
func (a *Agent) noteDeregistered(recs []catalog.Record) {
	if a.cfg.MoveWindow < 0 {
		return
	}
	for i := range recs {
		r := &recs[i]
		if r.Key.Kind == catalog.KindMove || r.Key.Kind == catalog.KindService && !r.Deleted {
			a.moves.drop(r.Key.ID) // pointed elsewhere already, or back here
		}
		if r.Key.Kind != catalog.KindService || !r.Deleted {
			continue
		}
		if slices.ContainsFunc(recs, func(o catalog.Record) bool { return o.Key.Kind == catalog.KindMove && o.Key.ID == r.Key.ID }) {
			continue
		}
		svc, ok := a.cat.ServiceOf(a.cfg.NodeName, r.Key.ID)
		if !ok {
			continue
		}
		before := map[string]bool{}
		for _, in := range a.cat.ServiceInstances(svc.Name, catalog.Filter{}) {
			if in.Service.ID == svc.ID {
				before[in.Node.Node.Name] = true
			}
		}
		a.moves.add(svc.ID, pendingMove{name: svc.Name, at: a.cfg.Clock.Now(), before: before})
	}
}

// movesLoop detects moves, collapses chains and expires pointers until the agent
// stops: at once when a deregistration is noted, when the catalog changes while a
// move is pending, when a pointer anywhere changes, and every MaintenanceInterval.
func (a *Agent) movesLoop() {
	t := time.NewTicker(a.cfg.MaintenanceInterval)
	defer t.Stop()
	for {
		var anything <-chan struct{}
		if len(a.moves.snapshot()) > 0 {
			_, anything = a.cat.Watch(catalog.TopicAll)
		}
		_, pointers := a.cat.Watch(catalog.TopicMoves)
		a.detectMoves()
		a.upkeepMoves()
		select {
		case <-a.ctx.Done():
			return
		case <-anything:
		case <-pointers:
		case <-a.moves.wake:
		case <-t.C:
		}
	}
}

// detectMoves records a move for each pending instance that now shows on a node that
// did not hold it when it left here, and forgets those whose window ended.
func (a *Agent) detectMoves() {
	now := a.cfg.Clock.Now()
	for _, id := range slices.Sorted(maps.Keys(a.moves.snapshot())) {
		p, ok := a.moves.get(id)
		if !ok {
			continue
		}
		if now.Sub(p.at) > a.cfg.MoveWindow {
			a.moves.drop(id)
			continue
		}
		for _, in := range a.cat.ServiceInstances(p.name, catalog.Filter{}) {
			node := in.Node.Node.Name
			if node == a.cfg.NodeName || in.Service.ID != id || p.before[node] {
				continue
			}
			m := catalog.Move{Service: p.name, ToNode: node, ToServiceID: id, At: now, Until: now.Add(a.cfg.MoveRetention)}
			a.moves.drop(id)
			err := a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.PutMove(id, m) })
			if err != nil {
				a.log.Warn("record a detected move", "service_id", id, "to", node, "error", err)
			} else {
				a.moves.recorded.WithLabelValues("detected").Inc()
				a.log.Info("service moved", "service_id", id, "name", p.name, "to", node, "detected", true)
			}
			break
		}
	}
}

// upkeepMoves collapses chains of this node's pointers to one hop and deletes the
// expired ones.
func (a *Agent) upkeepMoves() {
	for _, u := range a.cat.OwnMoveUpkeep(a.cfg.NodeName) {
		var err error
		if u.Move == nil {
			err = a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.DeleteMove(u.ServiceID) })
		} else {
			m := *u.Move
			err = a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.PutMove(u.ServiceID, m) })
		}
		if err != nil && !errors.Is(err, catalog.ErrNotFound) && !errors.Is(err, ErrNotRunning) {
			a.log.Warn("update a forward pointer", "service_id", u.ServiceID, "error", err)
		}
	}
}

// saveMovesLocked persists this node's pointers after a change of them. Called with
// a.mu.
func (a *Agent) saveMovesLocked() {
	if a.dir == nil || a.local == nil {
		return
	}
	if err := a.dir.saveMoves(a.local.Moves()); err != nil {
		a.log.Error("persist forward pointers", "error", err)
	}
}

// MoveService moves this node's service instance id to node toNode (where its ID is
// toID; "" means the same): it deregisters the instance here, if registered, and
// publishes the forward pointer. The target node must be in the catalog; the
// instance need not be registered there yet. It returns the pointer.
func (a *Agent) MoveService(_ context.Context, id, toNode, toID string) (catalog.Move, error) {
	toID = cmp.Or(toID, id)
	if toNode == "" {
		return catalog.Move{}, fmt.Errorf("agent: move service %q: %w", id, &catalog.FieldError{Field: "to", Reason: "missing: name the node the service moved to"})
	}
	if toNode == a.cfg.NodeName {
		return catalog.Move{}, fmt.Errorf("agent: move service %q: %w", id, &catalog.FieldError{Field: "to", Reason: fmt.Sprintf("%q is this node: a service moves to another node", toNode)})
	}
	if _, _, err := a.cat.NodeServices(toNode); err != nil {
		return catalog.Move{}, fmt.Errorf("agent: move service %q: %w", id, &catalog.FieldError{Field: "to", Reason: fmt.Sprintf("no node named %q in the catalog (see rumor members)", toNode)})
	}
	name, registered := "", false
	for _, s := range a.LocalServices() {
		if s.ID == id {
			name, registered = s.Name, true
		}
	}
	if !registered {
		if p, ok := a.moves.get(id); ok {
			name = p.name
		} else if e, ok := a.cat.MoveFrom(a.cfg.NodeName, id); ok {
			name = e.Move.Service
		} else {
			return catalog.Move{}, fmt.Errorf("agent: move service %q: %w", id, catalog.ErrNotFound)
		}
	}
	now := a.cfg.Clock.Now()
	m := catalog.Move{Service: name, ToNode: toNode, ToServiceID: toID, At: now, Until: now.Add(a.cfg.MoveRetention), Explicit: true}
	probe := catalog.Record{Origin: a.cfg.NodeName, Key: catalog.Key{Kind: catalog.KindMove, ID: id}, Version: catalog.Version{Gen: 1, Counter: 1}, Move: &m}
	if err := probe.Validate(); err != nil {
		return catalog.Move{}, fmt.Errorf("agent: move service %q: %w", id, err)
	}
	err := a.change(func(c *localstate.Core) (localstate.Ready, error) {
		var rd localstate.Ready
		if registered {
			var err error
			if rd, err = c.DeregisterService(id); err != nil {
				return rd, err
			}
		}
		put, err := c.PutMove(id, m)
		if err != nil {
			// Cannot happen after the checks above; never leave a deregistration
			// unpublished.
			a.log.Error("record an explicit move", "service_id", id, "error", err)
			return rd, nil
		}
		rd.Records = append(rd.Records, put.Records...)
		rd.MovesChanged = true
		return rd, nil
	})
	if err != nil {
		return catalog.Move{}, err
	}
	a.moves.recorded.WithLabelValues("explicit").Inc()
	a.log.Info("service moved", "service_id", id, "name", name, "to", toNode, "to_service_id", toID, "explicit", true)
	return m, nil
}
