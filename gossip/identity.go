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

// metaPrefix starts the text form of the node meta: "rumor-id=<node ID>".
const metaPrefix = "rumor-id="

// metaUUID starts the compact form of the node meta: this byte, then the 16 bytes of
// a node ID that is a canonical lower-case UUID. The meta rides in every alive
// message and in every member entry of every push-pull, so its size is paid per
// member per exchange: 17 bytes against the text form's 45 (which cost about 150 B/s
// per agent at 50 agents, measured with sim/netbench). Its first byte is not
// printable, so it never reads as the text form; agents from before it read no ID
// from it, as from an agent without one.
const metaUUID = 0x01

// deadNodeReclaim is memberlist's DeadNodeReclaimTime: how long after a node is
// declared dead its name may come back at another address. Identity is checked by
// node ID (AliveDelegate), so there is no reason to wait.
const deadNodeReclaim = time.Nanosecond

// encodeMeta returns the node meta carrying id: the compact form for a canonical
// lower-case UUID (what the data dir generates), else the text form.
func encodeMeta(id string) []byte {
	if id == "" {
		return nil
	}
	if b, ok := uuidBytes(id); ok {
		return append([]byte{metaUUID}, b[:]...)
	}
	return []byte(metaPrefix + id)
}

// metaID returns the node ID in a node's meta, or "" (an older agent, or none).
func metaID(meta []byte) string {
	if len(meta) == 17 && meta[0] == metaUUID {
		return uuidString([16]byte(meta[1:]))
	}
	s, ok := strings.CutPrefix(string(meta), metaPrefix)
	if !ok {
		return ""
	}
	return s
}

// uuidBytes parses s as a UUID in canonical lower-case form (8-4-4-4-12 hex
// digits); anything else, even a UUID in upper case, is refused, so that
// uuidString(uuidBytes(s)) == s always holds and the ID read back is the one sent.
func uuidBytes(s string) (b [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, false
	}
	digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	for i := range b {
		hi, ok1 := lowerHex(digits[2*i])
		lo, ok2 := lowerHex(digits[2*i+1])
		if !ok1 || !ok2 {
			return b, false
		}
		b[i] = hi<<4 | lo
	}
	return b, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// uuidString formats b as a canonical lower-case UUID.
func uuidString(b [16]byte) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[x>>4], hex[x&0xf])
	}
	return string(out)
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
