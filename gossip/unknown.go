package gossip

import (
	"log/slog"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Records can reach this node for a node memberlist never told it about: a node that
// crashed before this one joined is still held (critical) by its peers until they reap
// it, and anti-entropy hands its records over. memberlist does not pass dead members
// on to a node that never knew them, and the catalog sees an origin no failure
// detector speaks for as alive, so without this sweep such a node would look alive
// here forever and never be reaped.
//
// An origin that memberlist has not reported within unknownGrace of its records
// arriving is therefore dropped, as if it had left: records of a name no failure
// detector speaks for (a node that crashed before this one joined, or one a forged
// packet invented) must not create lasting state, and holding them critical for
// ReapAfter (72 h) let a few forged packets fill the catalog with ghosts. Its origin
// tombstone keeps the same copies out until TombstoneTTL. If memberlist reports it
// later (it was alive after all, or comes back), the usual membership events make it
// alive again and its records flow back. Records of such origins are not
// re-broadcast meanwhile (applyRecords).

// unknownGraceMult is the default grace in push-pull intervals: a live node is in
// every push-pull's member list, so three exchanges without it mean it is not there.
const unknownGraceMult = 3

// unknownSweepsPerGrace is how many sweeps run per grace period, so an unknown
// origin is marked failed at most a tenth of the grace late.
const unknownSweepsPerGrace = 10

// unknownOriginsLoop sweeps the catalog for unknown origins until shutdown.
func (g *Gossip) unknownOriginsLoop() {
	g.every(max(g.unknownGrace/unknownSweepsPerGrace, time.Millisecond), func() {
		g.sweepUnknownOrigins(time.Now())
	})
}

// sweepUnknownOrigins notes node origins in the catalog that memberlist has never
// reported, and drops those noted at least unknownGrace ago. External origins
// ("mdns:eth0", "docker:host": names with a colon) have no failure detector and are
// left alone.
func (g *Gossip) sweepUnknownOrigins(now time.Time) {
	nodes := g.store.Nodes(catalog.Filter{})
	present := make(map[string]bool, len(nodes))
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range nodes {
		name := n.Node.Name
		if name == g.cfg.NodeName || strings.Contains(name, ":") {
			continue
		}
		present[name] = true
		if _, known := g.members[name]; known || n.Liveness != catalog.LivenessAlive {
			delete(g.unknown, name)
			continue
		}
		first, noted := g.unknown[name]
		if !noted {
			g.unknown[name] = now
			continue
		}
		if now.Sub(first) >= g.unknownGrace {
			// Under g.mu, so that a membership event for this node (setLiveness takes
			// g.mu before it tells the store) is either seen above or applied after.
			g.store.SetLiveness(name, catalog.LivenessLeft)
			delete(g.unknown, name)
			g.metrics.dropped.WithLabelValues("unknown_origin").Inc()
			g.errLog.logAt(g.cfg.Logger, slog.LevelInfo, "unknown_origin", "gossip: dropped the records of a node membership never reported",
				"node", name, "records_since", first)
		}
	}
	for name := range g.unknown {
		if !present[name] {
			delete(g.unknown, name)
		}
	}
}
