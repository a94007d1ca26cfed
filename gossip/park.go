package gossip

import (
	"errors"
	"time"
)

// A push-pull's answer can overtake memberlist's own news of the node that started it:
// memberlist sends its local state back before it merges the initiator's member list
// (and so before NotifyJoin), and the initiator's digest, sent as soon as our summary
// arrives, may then reach the worker while the initiator is still unknown here. Dropping
// that digest left a joining node without our records until the next push-pull (10 s)
// in about one join in a hundred. So a state, digest or keys message from a sender not
// yet reported is parked, and handled when memberlist reports the sender alive; one
// whose sender is not reported within parkTimeout is dropped and counted.

// Bounds of the parked messages.
const (
	parkTimeout    = 5 * time.Second
	parkPerSender  = 4   // a state, a digest and a keys exchange, with room to spare
	parkMaxSenders = 256 // beyond this, messages from unknown senders are dropped
	// parkMaxBytes bounds the parked messages' bytes as well as their count.
	parkMaxBytes = 16 << 20
)

type parkedMsg struct {
	msg inboxMsg
	at  time.Time
}

// parkIfUnknown parks m if its sender is neither this node nor a node memberlist has
// reported, and says whether it did (or dropped it because the park is full).
func (g *Gossip) parkIfUnknown(sender string, m inboxMsg) bool {
	if sender == g.cfg.NodeName || g.nodeByName(sender) != nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Re-check under the lock: setLiveness may have reported the sender (and looked
	// for parked messages) since nodeByName.
	if ms := g.members[sender]; ms != nil && ms.addr.IsValid() {
		return false
	}
	q := g.parked[sender]
	if len(q) >= parkPerSender || (q == nil && len(g.parked) >= parkMaxSenders) || g.parkedBytes+len(m.data) > parkMaxBytes {
		g.drop("unknown_sender", errors.New(sender))
		return true
	}
	m.unparked = true
	if g.parked == nil {
		g.parked = make(map[string][]parkedMsg)
	}
	g.parked[sender] = append(q, parkedMsg{msg: m, at: time.Now()})
	g.parkedBytes += len(m.data)
	return true
}

// unpark hands the messages parked for name back to the worker, in arrival order.
func (g *Gossip) unpark(name string) {
	g.mu.Lock()
	q := g.parked[name]
	delete(g.parked, name)
	for _, p := range q {
		g.parkedBytes -= len(p.msg.data)
	}
	g.mu.Unlock()
	for _, p := range q {
		g.deliver(p.msg)
	}
}

// expireParked drops parked messages older than parkTimeout.
func (g *Gossip) expireParked(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, q := range g.parked {
		keep := q[:0]
		for _, p := range q {
			if now.Sub(p.at) < parkTimeout {
				keep = append(keep, p)
			} else {
				g.parkedBytes -= len(p.msg.data)
				g.drop("unknown_sender", errors.New(name))
			}
		}
		if len(keep) == 0 {
			delete(g.parked, name)
		} else {
			g.parked[name] = keep
		}
	}
}
