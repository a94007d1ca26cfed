package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
)

// Node identity. A node name is unique in a pool, but nothing stops a second agent
// from using one (the default name is the host name, so two agents on one machine
// collide). Each node therefore puts its persistent node ID (Config.NodeID, from its
// data dir) in its memberlist node meta, and gossip refuses:
//
//   - a merge (join or push-pull) with a pool that holds this node's name under
//     another ID: Join fails with ErrNameConflict on the newcomer, and the pool
//     refuses the newcomer's merge (MergeDelegate);
//   - an alive message for a name a live member holds under another ID
//     (AliveDelegate), so an impostor never replaces a live node.
//
// The same ID at another address is the same node restarted elsewhere (its data dir
// moved with it): memberlist takes the new address as soon as the old one is
// declared dead (Config.DeadNodeReclaimTime, set tiny here, where it defaults to
// never), and no conflict is reported. Meanwhile (memberlist's suspicion of the old
// address takes seconds) gossip already reports the node alive at its new address and
// ignores what memberlist says of the old one (moved).

// ErrNameConflict is wrapped by Join's error when the pool holds this node's name
// under another node ID.
var ErrNameConflict = errors.New("gossip: node name conflict")

// metaPrefix starts the node meta: "rumor-id=<node ID>".
const metaPrefix = "rumor-id="

// deadNodeReclaim is memberlist's DeadNodeReclaimTime: how long after a node is
// declared dead its name may come back at another address. Identity is checked by
// node ID (AliveDelegate), so there is no reason to wait.
const deadNodeReclaim = time.Nanosecond

func encodeMeta(id string) []byte {
	if id == "" {
		return nil
	}
	return []byte(metaPrefix + id)
}

// metaID returns the node ID in a node's meta, or "" (an older agent, or none).
func metaID(meta []byte) string {
	s, ok := strings.CutPrefix(string(meta), metaPrefix)
	if !ok {
		return ""
	}
	return s
}

// NotifyAlive implements memberlist.AliveDelegate: an alive message for a name a live
// member holds under another node ID, or for this node's name under another ID, is
// ignored.
func (d *delegate) NotifyAlive(n *memberlist.Node) error { return d.g.checkIdentity(n) }

// NotifyMerge implements memberlist.MergeDelegate: a pool that holds a name under
// another ID than ours (or than a live member's) is not merged.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.g.checkIdentity(p); err != nil {
			return err
		}
	}
	return nil
}

// checkIdentity returns an error wrapping ErrNameConflict if n claims a name held
// under another node ID by this node or by a live member.
func (g *Gossip) checkIdentity(n *memberlist.Node) error {
	id := metaID(n.Meta)
	if id == "" || n.State == memberlist.StateDead || n.State == memberlist.StateLeft {
		return nil // a dead node's name may be taken (a host reinstalled with a fresh data dir)
	}
	var holder string
	if n.Name == g.cfg.NodeName {
		holder = g.cfg.NodeID
	} else {
		g.mu.Lock()
		if ms := g.members[n.Name]; ms != nil && (ms.state == catalog.LivenessAlive || ms.state == catalog.LivenessSuspect) {
			holder = g.ids[n.Name]
		}
		g.mu.Unlock()
	}
	if holder == "" || holder == id {
		return nil
	}
	err := fmt.Errorf("%w: %s at %s has node ID %s, but %q is already node ID %s in this pool: give each agent a unique --node",
		ErrNameConflict, n.Name, hostPort(n), id, n.Name, holder)
	if n.Name == g.cfg.NodeName {
		err = fmt.Errorf("%w: the pool already has a node named %q (node ID %s, at %s), and this agent is node ID %s: give each agent a unique --node",
			ErrNameConflict, n.Name, id, hostPort(n), holder)
	}
	g.metrics.conflicts.Inc()
	g.errLog.logAt(g.cfg.Logger, slog.LevelError, "conflict:"+n.Name, "gossip: refused a node using a name taken by another node",
		"name", n.Name, "node_id", id, "holder_id", holder, "addr", hostPort(n))
	if n.Name == g.cfg.NodeName {
		g.mu.Lock()
		g.nameConflict = err
		g.mu.Unlock()
	}
	return err
}

// noteIdentity records a member's node ID from its meta.
func (g *Gossip) noteIdentity(n *memberlist.Node) {
	if id := metaID(n.Meta); id != "" {
		g.mu.Lock()
		g.ids[n.Name] = id
		g.mu.Unlock()
	}
}

// sameNode reports whether two memberlist nodes carry the same node ID.
func sameNode(a, b *memberlist.Node) bool {
	id := metaID(a.Meta)
	return id != "" && id == metaID(b.Meta)
}

// noteMoved records that name, known at old, is the same node now at new: it is
// reported alive at new at once, and memberlist's news of old (suspect, dead) is
// ignored until memberlist takes the new address (NotifyJoin).
func (g *Gossip) noteMoved(name string, old, new netip.AddrPort) {
	if name == g.cfg.NodeName {
		return
	}
	g.mu.Lock()
	g.moved[name] = old
	g.mu.Unlock()
	g.setLiveness(name, new, catalog.LivenessAlive)
}

// obsolete reports whether addr is the old address of a node that moved.
func (g *Gossip) obsolete(name string, addr netip.AddrPort) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, ok := g.moved[name]
	return ok && old == addr
}

// isMoving reports whether name moved and memberlist has not yet taken its new address.
func (g *Gossip) isMoving(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.moved[name]
	return ok
}
