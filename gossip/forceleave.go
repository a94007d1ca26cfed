package gossip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Errors of ForceLeave.
var (
	// ErrUnknownNode: no node of that name was ever seen in the pool.
	ErrUnknownNode = errors.New("gossip: unknown node")
	// ErrNotFailed: the node is alive or suspect; only a failed node can be forced out
	// (a live one would refute it at once).
	ErrNotFailed = errors.New("gossip: node has not failed")
)

// ForceLeave marks a failed node as left, as if it had said goodbye: its records are
// dropped now rather than after the reap timeout, and reconnect attempts to it stop.
// It tells every live member the same (serf's force-leave does this with a leave
// intent on the node's behalf), waiting at most until ctx ends for them to be told.
// Members that are unreachable now learn it from their own failure detection, which
// ends in "failed" and then the reap. With prune, the node is also forgotten here, so
// Members no longer lists it.
//
// An origin the catalog holds that membership never reported (see unknown.go) is
// dropped the same way. It returns ErrUnknownNode for a name neither knows, and ErrNotFailed for a node that
// is alive or suspect, this one included. A node already left is not an error. If the
// node comes back, it is alive again like any node that rejoins.
func (g *Gossip) ForceLeave(ctx context.Context, name string, prune bool) error {
	g.mu.Lock()
	ms := g.members[name]
	var (
		state catalog.Liveness
		addr  netip.AddrPort
	)
	if ms != nil {
		state, addr = ms.state, ms.addr
	}
	g.mu.Unlock()
	switch {
	case ms == nil && name != g.cfg.NodeName && g.store.OriginVersion(name) != (catalog.Version{}):
		// An origin the catalog holds but membership never reported (records that
		// came by anti-entropy, or forged ones): drop it here and tell the others.
		g.store.SetLiveness(name, catalog.LivenessLeft)
		g.metrics.memberEvents.WithLabelValues(catalog.LivenessLeft.String()).Inc()
		g.cfg.Logger.Info("gossip: force-leave dropped an origin membership never reported", "node", name)
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		g.announceLeave(ctx, name, timeout)
		return nil
	case ms == nil:
		return fmt.Errorf("gossip: force-leave %q: %w", name, ErrUnknownNode)
	case name == g.cfg.NodeName || state == catalog.LivenessAlive || state == catalog.LivenessSuspect:
		return fmt.Errorf("gossip: force-leave %q: it is %s: %w", name, state, ErrNotFailed)
	}
	if state == catalog.LivenessFailed {
		g.mu.Lock()
		g.leaving[name] = time.Now()
		g.mu.Unlock()
		g.setLiveness(name, addr, catalog.LivenessLeft)
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		g.announceLeave(ctx, name, timeout)
	}
	if prune {
		g.mu.Lock()
		delete(g.members, name)
		g.mu.Unlock()
	}
	return nil
}
