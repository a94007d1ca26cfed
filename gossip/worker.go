package gossip

import (
	"errors"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
)

// worker handles every message memberlist hands us, one at a time, from the moment
// memberlist is running until shutdown.
func (g *Gossip) worker() {
	defer g.wg.Done()
	// memberlist calls the delegate while Create is still running (a peer's push-pull
	// can arrive as soon as it listens), and answering needs g.ml: hold the messages
	// in the inbox until Create has returned.
	select {
	case <-g.ready:
	case <-g.ctx.Done():
		return
	}
	for {
		select {
		case <-g.ctx.Done():
			return
		case m := <-g.inbox:
			g.handle(m)
		}
	}
}

// handle dispatches one message by its type byte. A malformed message is dropped and
// counted; it never changes the catalog.
func (g *Gossip) handle(m inboxMsg) {
	if len(m.data) == 0 {
		g.drop("empty", nil)
		return
	}
	typ := m.data[0]
	if !m.unparked {
		g.metrics.received.WithLabelValues(msgName(typ)).Inc()
		g.metrics.receivedBytes.WithLabelValues(msgName(typ)).Add(float64(len(m.data)))
	}
	switch typ {
	case msgRecords:
		recs, err := decodeRecords(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		g.applyRecords(recs)
	case msgState:
		sender, sum, err := decodeState(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		if g.parkIfUnknown(sender, m) {
			return
		}
		g.onSummary(sender, &sum)
	case msgDigest:
		sender, d, err := decodeDigest(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		if g.parkIfUnknown(sender, m) {
			return
		}
		g.onDigest(sender, d)
	case msgKeys, msgKeysAck:
		sender, keys, err := decodeKeys(typ, m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		if g.parkIfUnknown(sender, m) {
			return
		}
		g.onKeys(sender, keys, typ == msgKeys)
	case msgLeave:
		sender, err := decodeLeave(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		g.onLeaveIntent(sender)
	case msgKeyQuery:
		sender, id, deadline, op, key, err := decodeKeyQuery(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		g.onKeyQuery(sender, id, deadline, op, key)
	case msgKeyResponse:
		id, a, err := decodeKeyResponse(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		g.onKeyResponse(id, a)
	case msgEager:
		sender, flags, recs, err := decodeEager(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		g.onEager(sender, flags, recs)
	default:
		g.drop("unknown_type", nil)
	}
}

func msgName(typ byte) string {
	switch typ {
	case msgRecords:
		return "records"
	case msgState:
		return "state"
	case msgDigest:
		return "digest"
	case msgKeys:
		return "keys"
	case msgLeave:
		return "leave"
	case msgKeysAck:
		return "keysack"
	case msgKeyQuery:
		return "keyquery"
	case msgKeyResponse:
		return "keyresponse"
	case msgEager:
		return "eager"
	}
	return "unknown"
}

func (g *Gossip) drop(reason string, err error) {
	g.metrics.dropped.WithLabelValues(reason).Inc()
	g.cfg.Logger.Debug("gossip: dropped message", "reason", reason, "err", err)
}

// applyRecords merges records from the network. Records new to this node are passed
// on through the fast path (epidemic re-broadcast); duplicates and stale ones stop
// here. Records of this node's own origin are never re-broadcast: the agent decides
// what to do about an older incarnation of itself.
func (g *Gossip) applyRecords(recs []catalog.Record) {
	changed, err := g.store.Apply(recs...)
	if err != nil {
		// Invalid records were skipped; valid ones in the batch were applied.
		g.metrics.dropped.WithLabelValues("invalid_record").Add(float64(len(recs) - len(changed)))
		g.cfg.Logger.Debug("gossip: invalid records dropped", "err", err)
	}
	g.metrics.recordsApplied.Add(float64(len(changed)))
	for i := range changed {
		if changed[i].Origin != g.cfg.NodeName {
			g.enqueue(&changed[i])
		}
	}
}

// onSummary handles a peer's push-pull summary: where it differs from ours, ask the
// peer for what we lack by sending our digest of the differing buckets.
func (g *Gossip) onSummary(sender string, peer *catalog.Summary) {
	if sender == g.cfg.NodeName {
		return
	}
	ours := g.store.Summary()
	diff := ours.Diff(peer)
	if len(diff) == 0 {
		g.metrics.antiEntropy.WithLabelValues("in_sync").Inc()
		return
	}
	to := g.nodeByName(sender)
	if to == nil {
		g.drop("unknown_sender", errors.New(sender))
		return
	}
	g.metrics.antiEntropy.WithLabelValues("digest_sent").Inc()
	d := g.store.Digest(diff)
	g.sendReliable(to, encodeDigest(g.cfg.NodeName, &d), "digest")
}

// onDigest answers a peer's digest with the records it lacks, in chunks, and with our
// keys of the origins where only a key-by-key comparison can tell.
func (g *Gossip) onDigest(sender string, d catalog.Digest) {
	if sender == g.cfg.NodeName {
		return
	}
	to := g.nodeByName(sender)
	if to == nil {
		g.drop("unknown_sender", errors.New(sender))
		return
	}
	recs, unsure := g.store.Missing(d)
	for _, msg := range chunkRecords(recs, chunkSize) {
		g.sendReliable(to, msg, "records")
	}
	g.metrics.recordsRepaired.Add(float64(len(recs)))
	if len(unsure) > 0 {
		g.sendReliable(to, encodeKeys(msgKeys, g.cfg.NodeName, g.store.KeyVersions(unsure)), "keys")
	}
}

// onKeys handles a peer's key list for origins where our digests agree on versions
// but not hashes: it sends the peer the records it lacks, and, for a request (not an
// answer), sends our own key list back so the peer can send us what we lack. Either
// side may be the one missing records, and the answer is never answered, so the
// exchange ends after one round trip.
func (g *Gossip) onKeys(sender string, keys []catalog.OriginKeys, request bool) {
	to := g.nodeByName(sender)
	if to == nil || sender == g.cfg.NodeName {
		g.drop("unknown_sender", errors.New(sender))
		return
	}
	recs := g.store.MissingKeys(keys)
	for _, msg := range chunkRecords(recs, chunkSize) {
		g.sendReliable(to, msg, "records")
	}
	g.metrics.recordsRepaired.Add(float64(len(recs)))
	if request {
		origins := make([]string, len(keys))
		for i, ok := range keys {
			origins[i] = ok.Origin
		}
		g.sendReliable(to, encodeKeys(msgKeysAck, g.cfg.NodeName, g.store.KeyVersions(origins)), "keysack")
	}
}

// livenessLoop polls memberlist for suspect members, which it reports through no
// event, and for suspects that recovered.
func (g *Gossip) livenessLoop() {
	g.every(g.cfg.LivenessPoll, func() {
		for _, n := range g.ml.Members() {
			want := catalog.LivenessAlive
			if n.State == memberlist.StateSuspect {
				want = catalog.LivenessSuspect
			}
			g.mu.Lock()
			ms := g.members[n.Name]
			differs := ms != nil && ms.state != want && (ms.state == catalog.LivenessAlive || ms.state == catalog.LivenessSuspect)
			g.mu.Unlock()
			if differs {
				g.setLiveness(n.Name, addrPort(n.Addr, n.Port), want)
			}
		}
		g.expireParked(time.Now())
		g.updateGauges()
	})
}
