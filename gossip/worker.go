package gossip

import (
	"errors"
	"strings"
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
			g.inboxBytes.Add(-int64(len(m.data)))
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
		if g.onSummary(sender, &sum) && m.pushPull && !m.join {
			// A periodic push-pull with the summary itself comes from an agent before
			// msgStateHash, which never hears ours that way: send it, so that it asks
			// us for what it lacks too. (A join exchanges summaries both ways.)
			g.sendState(sender)
		}
	case msgStateHash:
		sender, h, err := decodeStateHash(m.data)
		if err != nil {
			g.drop("malformed", err)
			return
		}
		if g.parkIfUnknown(sender, m) {
			return
		}
		g.onStateHash(sender, h)
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
		g.onEager(sender, flags, recs, m.at)
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
	case msgStateHash:
		return "statehash"
	}
	return "unknown"
}

func (g *Gossip) drop(reason string, err error) {
	g.metrics.dropped.WithLabelValues(reason).Inc()
	g.errLog.debug(g.cfg.Logger, reason, "gossip: dropped message", "reason", reason, "err", err)
}

// applyRecords is the one place records from the network enter the catalog, whatever
// brought them (fast path, anti-entropy, a large record's stream): every path calls it
// and nothing else calls Store.Apply. It refuses records whose generation is
// implausibly far in the future (Config.MaxGenerationSkew: generations are Unix
// milliseconds, and a forged one near 2^64 must not outrank its owner forever), lets
// the catalog validate the rest, and passes on through the fast path (epidemic
// re-broadcast) the records new to this node, except those of this node's own origin
// (the catalog hands them to the agent, which supersedes what it did not write) and
// those of origins membership never reported (a forged or stale origin spreads no
// further by this node's doing; unknown.go drops it after a grace). It returns the
// records that changed the catalog.
func (g *Gossip) applyRecords(recs []catalog.Record) (changed []catalog.Record) {
	limit := uint64(max(time.Now().Add(g.cfg.MaxGenerationSkew).UnixMilli(), 0))
	keep := recs[:0]
	for i := range recs {
		if recs[i].Version.Gen > limit {
			g.refuseFuture(&recs[i], limit)
			continue
		}
		keep = append(keep, recs[i])
	}
	changed, err := g.store.Apply(keep...)
	if err != nil {
		// Invalid records were skipped; valid ones in the batch were applied.
		g.metrics.dropped.WithLabelValues("invalid_record").Add(float64(len(keep) - len(changed)))
		g.errLog.debug(g.cfg.Logger, "invalid_record", "gossip: invalid records dropped", "err", err)
	}
	g.metrics.recordsApplied.Add(float64(len(changed)))
	for i := range changed {
		if o := changed[i].Origin; o != g.cfg.NodeName && g.spreads(o) {
			g.enqueue(&changed[i])
		}
	}
	return changed
}

// refuseFuture counts a record refused for its future generation, and logs the first
// one at WARN (the rest at DEBUG: a flood must not flood the log).
func (g *Gossip) refuseFuture(r *catalog.Record, limit uint64) {
	g.metrics.dropped.WithLabelValues("future_generation").Inc()
	if g.futureLogged.CompareAndSwap(false, true) {
		g.cfg.Logger.Warn("gossip: refused a record whose generation is implausibly far in the future (forged, or a clock far ahead); further ones are counted in rumor_gossip_messages_dropped_total{reason=\"future_generation\"}",
			"record", r.String(), "limit", limit, "max_skew", g.cfg.MaxGenerationSkew)
		return
	}
	g.cfg.Logger.Debug("gossip: refused a record with a future generation", "record", r.String())
}

// spreads reports whether records of origin are re-broadcast from here: those of
// members membership reported, and of external sources (names with a colon, which
// no failure detector speaks for).
func (g *Gossip) spreads(origin string) bool {
	if strings.Contains(origin, ":") {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, known := g.members[origin]
	return known
}

// onSummary handles a peer's summary: where it differs from ours, ask the peer for
// what we lack by sending our digest of the differing buckets. It reports whether
// they differed.
func (g *Gossip) onSummary(sender string, peer *catalog.Summary) bool {
	if sender == g.cfg.NodeName {
		return false
	}
	ours := g.store.Summary()
	diff := ours.Diff(peer)
	if len(diff) == 0 {
		g.metrics.antiEntropy.WithLabelValues("in_sync").Inc()
		return false
	}
	to := g.nodeByName(sender)
	if to == nil {
		g.drop("unknown_sender", errors.New(sender))
		return false
	}
	g.metrics.antiEntropy.WithLabelValues("digest_sent").Inc()
	d := g.store.Digest(diff)
	g.sendReliable(to, encodeDigest(g.cfg.NodeName, &d), "digest")
	return true
}

// onStateHash handles the hash of a peer's summary from a periodic push-pull: equal
// to ours, the catalogs agree and nothing more is sent; else our summary goes to the
// peer, which asks us (onSummary) for what it lacks. The peer got our hash in the same
// exchange and sends us its summary likewise, so each side pulls what it lacks, one
// message later than when push-pull carried the summaries themselves.
func (g *Gossip) onStateHash(sender string, h uint64) {
	if sender == g.cfg.NodeName {
		return
	}
	ours := g.store.Summary()
	if ours.Hash() == h {
		g.metrics.antiEntropy.WithLabelValues("in_sync").Inc()
		return
	}
	g.metrics.antiEntropy.WithLabelValues("summary_sent").Inc()
	g.sendState(sender)
}

// sendState sends our summary to a member over the reliable path.
func (g *Gossip) sendState(name string) {
	to := g.nodeByName(name)
	if to == nil {
		g.drop("unknown_sender", errors.New(name))
		return
	}
	s := g.store.Summary()
	g.sendReliable(to, encodeState(g.cfg.NodeName, &s), "state")
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
			if g.isMoving(n.Name) {
				// memberlist still speaks of its old address (identity.go). Not
				// n.Addr: memberlist rewrites it in place when it takes the new one.
				continue
			}
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
		g.expireLeaveIntents(time.Now())
		g.updateGauges()
	})
}
