package gossip

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
)

// delegate receives memberlist's callbacks. Each copies what it needs and returns at
// once: slow work (merging, answering digests) happens on the worker goroutine.
type delegate struct{ g *Gossip }

// NodeMeta implements memberlist.Delegate: only the node ID (identity.go); rumor's
// node data travels as catalog records.
func (d *delegate) NodeMeta(limit int) []byte {
	if m := encodeMeta(d.g.cfg.NodeID); len(m) <= limit {
		return m
	}
	return nil
}

// NotifyMsg implements memberlist.Delegate: a user message arrived (fast path or
// reliable stream). memberlist reuses buf, so it is copied.
func (d *delegate) NotifyMsg(buf []byte) {
	d.g.deliver(inboxMsg{data: append([]byte(nil), buf...), at: time.Now()})
}

// GetBroadcasts implements memberlist.Delegate: records waiting for the fast path.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.g.queue.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate: our part of a push-pull exchange is only
// the 8-byte hash of our summary with our name (the 2 KiB summary itself in a join);
// where the hashes differ, the summaries, then the digests and records that differ,
// follow over the reliable path (worker.go: onStateHash).
func (d *delegate) LocalState(join bool) []byte {
	s := d.g.store.Summary()
	d.g.metrics.pushPull.Inc()
	if join {
		return encodeState(d.g.cfg.NodeName, &s)
	}
	return encodeStateHash(d.g.cfg.NodeName, s.Hash())
}

// MergeRemoteState implements memberlist.Delegate: the peer's summary, or its hash,
// arrived.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	d.g.deliver(inboxMsg{data: append([]byte(nil), buf...), join: join, pushPull: true})
}

// NotifyJoin implements memberlist.EventDelegate: a node is alive (new, or back).
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	d.g.noteIdentity(n)
	d.g.mu.Lock()
	delete(d.g.moved, n.Name) // memberlist took the node's (new) address
	delete(d.g.leaving, n.Name)
	d.g.mu.Unlock()
	d.g.setLiveness(n.Name, addrPort(n.Addr, n.Port), catalog.LivenessAlive)
}

// NotifyLeave implements memberlist.EventDelegate: a node left or was declared dead.
// memberlist does not tell a graceful leave from a death here (the Node it passes
// keeps its alive state), so a node that announced it is leaving (msgLeave, the way
// serf does it) is marked left, any other failed.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	if n.Name == d.g.cfg.NodeName {
		return // our own leave: we are shutting down, our records are not ours to drop
	}
	if d.g.obsolete(n.Name, addrPort(n.Addr, n.Port)) {
		return // the old address of a node that moved (identity.go)
	}
	state := catalog.LivenessFailed
	d.g.mu.Lock()
	if d.g.leftGracefully(n.Name, time.Now()) {
		state = catalog.LivenessLeft
	}
	d.g.mu.Unlock()
	d.g.setLiveness(n.Name, addrPort(n.Addr, n.Port), state)
}

// NotifyUpdate implements memberlist.EventDelegate: a node's meta or address changed
// (a node restarted at a new address keeps its ID).
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	d.g.noteIdentity(n)
	d.g.mu.Lock()
	ms := d.g.members[n.Name]
	moved := ms != nil && ms.addr != addrPort(n.Addr, n.Port)
	d.g.mu.Unlock()
	if moved {
		d.g.setLiveness(n.Name, addrPort(n.Addr, n.Port), catalog.LivenessAlive)
	}
}

// NotifyConflict implements memberlist.ConflictDelegate: another node claims our name
// (or two others share one). memberlist keeps the existing node; we make it loud.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	if sameNode(existing, other) {
		// The same node (same node ID) at a new address: restarted elsewhere with its
		// data dir. memberlist takes the new address once the old one is declared dead.
		d.g.errLog.logAt(d.g.cfg.Logger, slog.LevelInfo, "moved:"+existing.Name, "gossip: node restarted at a new address",
			"name", existing.Name, "old", hostPort(existing), "new", hostPort(other))
		d.g.noteMoved(existing.Name, addrPort(existing.Addr, existing.Port), addrPort(other.Addr, other.Port))
		return
	}
	d.g.metrics.conflicts.Inc()
	d.g.cfg.Logger.Error("gossip: node name conflict: two agents use the same name; give each a unique --node",
		"name", existing.Name, "existing", hostPort(existing), "other", hostPort(other))
}

// AckPayload implements memberlist.PingDelegate: our coordinate rides on ping acks.
// It is binary (coord.go), a fifth of the JSON it once was.
func (d *delegate) AckPayload() []byte {
	return encodeCoord(d.g.coords.GetCoordinate())
}

// NotifyPingComplete implements memberlist.PingDelegate: a ping to other completed in
// rtt, and it sent its coordinate.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if len(payload) == 0 {
		return
	}
	c, err := decodeCoord(payload)
	if err != nil || !c.IsValid() {
		d.g.metrics.dropped.WithLabelValues("bad_coordinate").Inc()
		return
	}
	if _, err := d.g.coords.Update(other.Name, c, rtt); err != nil {
		d.g.metrics.dropped.WithLabelValues("bad_coordinate").Inc()
		return
	}
	d.g.mu.Lock()
	if ms := d.g.members[other.Name]; ms != nil {
		ms.coord = c
	}
	if self := d.g.members[d.g.cfg.NodeName]; self != nil {
		self.coord = d.g.coords.GetCoordinate()
	}
	d.g.mu.Unlock()
}

// recordBroadcast is one record on the fast path, named by origin and key so a newer
// version queued later replaces it.
type recordBroadcast struct {
	name string
	msg  []byte
}

// Invalidates implements memberlist.Broadcast.
func (b *recordBroadcast) Invalidates(other memberlist.Broadcast) bool {
	nb, ok := other.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}

// Name implements memberlist.NamedBroadcast.
func (b *recordBroadcast) Name() string { return b.name }

// Message implements memberlist.Broadcast.
func (b *recordBroadcast) Message() []byte { return b.msg }

// Finished implements memberlist.Broadcast.
func (b *recordBroadcast) Finished() {}

// deliver hands a message to the worker, dropping it (counted) if the worker is far
// behind: never block memberlist's packet handler.
func (g *Gossip) deliver(m inboxMsg) {
	n := int64(len(m.data))
	if g.inboxBytes.Add(n) > inboxMaxBytes {
		g.inboxBytes.Add(-n)
		g.metrics.dropped.WithLabelValues("inbox_full").Inc()
		return
	}
	select {
	case g.inbox <- m:
	default:
		g.inboxBytes.Add(-n)
		g.metrics.dropped.WithLabelValues("inbox_full").Inc()
	}
}

// setLiveness records a membership change and tells the catalog.
func (g *Gossip) setLiveness(name string, addr netip.AddrPort, state catalog.Liveness) {
	g.mu.Lock()
	ms := g.members[name]
	if ms == nil {
		ms = &memberState{}
		g.members[name] = ms
	}
	now := time.Now()
	changed := ms.state != state || ms.since.IsZero()
	returned := changed && state == catalog.LivenessAlive && (ms.state == catalog.LivenessFailed || ms.state == catalog.LivenessSuspect) && !ms.since.IsZero()
	ms.addr = addr
	if changed {
		ms.state, ms.since = state, now
	}
	switch state {
	case catalog.LivenessFailed:
		if name != g.cfg.NodeName {
			g.scheduleReconnect(name, addr, now)
		}
	default:
		delete(g.reconnect, name)
	}
	g.mu.Unlock()
	if changed {
		g.metrics.memberEvents.WithLabelValues(state.String()).Inc()
		g.cfg.Logger.Info("gossip: member "+state.String(), "node", name, "addr", addr.String())
	}
	g.store.SetLiveness(name, state)
	if state == catalog.LivenessAlive {
		g.unpark(name)
	}
	if returned && name != g.cfg.NodeName {
		// A node came back (a healed partition, a reconnect): compare catalogs now
		// rather than at the next push-pull, so what changed during the split moves
		// within moments. Both sides do this; each pulls what it lacks.
		s := g.store.Summary()
		g.sendReliable(&memberlist.Node{Name: name, Addr: addr.Addr().AsSlice(), Port: addr.Port()},
			encodeState(g.cfg.NodeName, &s), "state")
	}
}
