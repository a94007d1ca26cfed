package gossip

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// The eager path sends a local change to peers the moment it happens, instead of
// waiting for memberlist's gossip tick (200 ms on a LAN) at every hop. It runs beside
// the piggyback fast path and anti-entropy, which stay as the repair path for whatever
// it misses (a lost packet, a member it did not know of, a partition).
//
// Peer selection, by the number of live members n the origin sees:
//
//   - n-1 ≤ DirectMax (64): the origin sends the change to every live member, one hop.
//     That is n-1 packets from the origin and none from anyone else, against
//     memberlist's RetransmitMult × log10(n+1) transmits per node for a broadcast
//     (rumor doubles it for records: 16 per node at n = 50, 800 in all), so it costs
//     fewer packets than today and reaches everyone in one network delay. Receivers do
//     not pass it on: the origin's piggyback queue and anti-entropy repair a loss.
//   - above: random fan-out with immediate forwarding (infect-and-die). The origin
//     sends to Fanout random members; a node that sees a record version for the first
//     time (the catalog's Apply says it changed) forwards it at once to Fanout random
//     members of its own, excluding the sender and the origin; a duplicate changes
//     nothing and stops there, so a record is forwarded at most once per node. With
//     fan-out f the fraction of nodes never reached is about e^-f, so the default
//     f = ⌈ln n⌉ + 2 leaves about n·e^-f ≤ e^-2 ≈ 0.14 nodes unreached in expectation:
//     at n = 500, f = 9 and 500·e^-9 ≈ 0.06 (piggyback and anti-entropy reach those),
//     in about log_f n ≈ 3 hops; each node sends f = 9 packets per change against
//     memberlist's 2 × 4 × ⌈log10 501⌉ = 24.
//
// Bursts are coalesced per origin: the first change after a quiet spell goes at once,
// changes arriving within Delay after a send wait and leave together at the end of
// the window (a newer version of a key replaces a waiting older one), so 1,000
// registrations at once travel as a handful of messages per peer, not 1,000 floods.
// A batch larger than one packet goes over memberlist's reliable stream in chunks.
//
// Wire format (msgEager = 9): sender:str flags:byte catalog.AppendRecords. flags bit 0
// (eagerForward) asks the receiver to forward records new to it.

// msgEager is the eager path's message type.
const msgEager byte = 9

// eagerForward marks a message whose receiver forwards what is new to it.
const eagerForward byte = 1

// EagerConfig configures the eager path. The zero value means every default.
type EagerConfig struct {
	// Disabled turns the eager path off: records travel by piggyback and anti-entropy
	// only (the behaviour before the eager path; benchmarks' baseline).
	Disabled bool
	// Delay is the coalescing window: after a send, further local changes wait this
	// long and leave together. Default 5ms. The first change after a quiet spell is
	// never delayed.
	Delay time.Duration
	// DirectMax is the largest number of peers the origin sends to directly (one
	// hop). Default 64. Above it, changes spread by fan-out and forwarding.
	DirectMax int
	// Fanout is how many random peers the origin and each forwarding node send to
	// when the pool is larger than DirectMax. Default ⌈ln n⌉ + 2 for n live members.
	Fanout int
}

// Defaults of EagerConfig.
const (
	DefaultEagerDelay     = 5 * time.Millisecond
	DefaultEagerDirectMax = 64
)

func (c EagerConfig) withDefaults() (EagerConfig, error) {
	if c.Delay < 0 || c.DirectMax < 0 || c.Fanout < 0 {
		return c, fmt.Errorf("gossip: eager config: negative delay %s, direct max %d or fanout %d", c.Delay, c.DirectMax, c.Fanout)
	}
	if c.Delay == 0 {
		c.Delay = DefaultEagerDelay
	}
	if c.DirectMax == 0 {
		c.DirectMax = DefaultEagerDirectMax
	}
	return c, nil
}

// fanoutFor is the fan-out at n live members.
func (c EagerConfig) fanoutFor(n int) int {
	if c.Fanout > 0 {
		return c.Fanout
	}
	return int(math.Ceil(math.Log(float64(max(n, 2))))) + 2
}

// eagerIn is what the worker knows, while it applies an eager message, of where it
// came from: enqueue reads it to forward instead of queueing for piggyback.
type eagerIn struct {
	sender  string
	forward bool
}

// eager is one node's eager sender: pending own changes and records to forward, and
// the loop that sends them.
type eager struct {
	g    *Gossip
	cfg  EagerConfig
	kick chan struct{} // buffered 1: something is pending

	mu      sync.Mutex
	own     []catalog.Record
	ownIdx  map[string]int // origin/key → index in own
	fwd     []catalog.Record
	fwdFrom []string // fwdFrom[i] sent fwd[i] to this node

	m eagerMetrics
}

type eagerMetrics struct {
	messages, bytes  *prometheus.CounterVec // by mode: direct, fanout, forward
	batches          prometheus.Counter
	recordsSent      prometheus.Counter
	recordsForwarded prometheus.Counter
	// The wall-clock times of the last eager message that changed the catalog here:
	// when memberlist handed it over, and when the catalog had applied it (its
	// watchers woken); and of the last own batch's last packet. Hosts (or network
	// namespaces) that share a clock can so split a change's way into its hops
	// (sim/netbench --trace).
	lastReceived, lastApplied, lastSent prometheus.Gauge
}

func newEager(g *Gossip, cfg EagerConfig, reg prometheus.Registerer) (*eager, error) {
	const ns, sub = "rumor", "gossip"
	e := &eager{g: g, cfg: cfg, kick: make(chan struct{}, 1), ownIdx: map[string]int{}}
	e.m = eagerMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "eager_messages_sent_total",
			Help: "Eager-path messages sent, by mode (direct: origin to every member; fanout: origin to a few; forward: passed on)."}, []string{"mode"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "eager_bytes_sent_total",
			Help: "Bytes of eager-path messages sent, by mode."}, []string{"mode"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "eager_batches_total",
			Help: "Coalesced batches the eager path sent (one or more records each)."}),
		recordsSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "eager_records_sent_total",
			Help: "Own records sent on the eager path (once per batch, whatever the number of peers)."}),
		recordsForwarded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "eager_records_forwarded_total",
			Help: "Records new to this node that it forwarded on the eager path."}),
		lastReceived: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "eager_last_received_timestamp_seconds",
			Help: "When the last eager-path message that changed the catalog was received (Unix time)."}),
		lastApplied: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "eager_last_applied_timestamp_seconds",
			Help: "When the catalog had applied the last eager-path message that changed it, its watchers woken (Unix time)."}),
		lastSent: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "eager_last_sent_timestamp_seconds",
			Help: "When the last packet of this node's last batch of own changes was sent (Unix time)."}),
	}
	for _, c := range []prometheus.Collector{e.m.messages, e.m.bytes, e.m.batches, e.m.recordsSent, e.m.recordsForwarded,
		e.m.lastReceived, e.m.lastApplied, e.m.lastSent} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gossip: register eager metrics: %w", err)
		}
	}
	return e, nil
}

// publish queues this node's own records; a newer version of a waiting key replaces
// the older one. Safe for concurrent use.
func (e *eager) publish(recs []catalog.Record) {
	e.mu.Lock()
	for i := range recs {
		k := recs[i].Origin + "\x00" + recs[i].Key.String()
		if j, ok := e.ownIdx[k]; ok {
			if e.own[j].Version.Less(recs[i].Version) {
				e.own[j] = recs[i]
			}
			continue
		}
		e.ownIdx[k] = len(e.own)
		e.own = append(e.own, recs[i])
	}
	e.mu.Unlock()
	e.wake()
}

// forward queues a record new to this node, which came from sender, to be passed on.
func (e *eager) forward(r *catalog.Record, sender string) {
	e.mu.Lock()
	e.fwd = append(e.fwd, *r)
	e.fwdFrom = append(e.fwdFrom, sender)
	e.mu.Unlock()
	e.wake()
}

func (e *eager) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// loop sends what is pending: at once after a quiet spell, then at most once per
// Delay while changes keep coming. It stops when ctx ends.
func (e *eager) loop() {
	defer e.g.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-e.g.ctx.Done():
			return
		case <-e.kick:
		}
		// Leading edge: send now, then hold the window open while changes arrive.
		for e.flush() {
			timer.Reset(e.cfg.Delay)
			select {
			case <-e.g.ctx.Done():
				return
			case <-timer.C:
			}
			select { // what arrived during the window is flushed next; drop its kick
			case <-e.kick:
			default:
			}
		}
	}
}

// flush sends every pending record and reports whether there was any.
func (e *eager) flush() bool {
	e.mu.Lock()
	own, fwd, fwdFrom := e.own, e.fwd, e.fwdFrom
	e.own, e.fwd, e.fwdFrom = nil, nil, nil
	if len(own) > 0 {
		e.ownIdx = map[string]int{}
	}
	e.mu.Unlock()
	if len(own) == 0 && len(fwd) == 0 {
		return false
	}
	e.m.batches.Inc()
	peers := e.g.livePeers()
	if len(own) > 0 {
		e.m.recordsSent.Add(float64(len(own)))
		if len(peers) <= e.cfg.DirectMax {
			e.send(peers, own, 0, "direct")
		} else {
			e.send(pick(peers, e.cfg.fanoutFor(len(peers)+1), nil), own, eagerForward, "fanout")
		}
		e.m.lastSent.Set(float64(time.Now().UnixNano()) / 1e9)
	}
	if len(fwd) > 0 {
		e.m.recordsForwarded.Add(float64(len(fwd)))
		e.send(pick(peers, e.cfg.fanoutFor(len(peers)+1), haveAll(fwd, fwdFrom)), fwd, eagerForward, "forward")
	}
	return true
}

// send sends recs to every peer: one packet each when the batch fits one (UDP, best
// effort), else in chunks over the reliable stream.
func (e *eager) send(peers []*memberlist.Node, recs []catalog.Record, flags byte, mode string) {
	if len(peers) == 0 {
		return
	}
	self := e.g.cfg.NodeName
	msgs := chunkEager(self, flags, recs, maxBroadcastSize)
	if len(msgs) == 1 && len(msgs[0]) <= maxBroadcastSize {
		send := e.g.ml.SendBestEffort
		if e.g.rawPackets {
			send = e.rawSender(msgs[0])
			if e.g.batch != nil {
				peers = e.sendBatch(peers, msgs[0], mode)
			}
		}
		for _, p := range peers {
			if err := send(p, msgs[0]); err != nil {
				e.g.metrics.sendFailed.WithLabelValues("eager").Inc()
				continue
			}
			e.m.messages.WithLabelValues(mode).Inc()
			e.m.bytes.WithLabelValues(mode).Add(float64(len(msgs[0])))
		}
		return
	}
	for _, msg := range chunkEager(self, flags, recs, chunkSize) {
		for _, p := range peers {
			e.g.sendReliable(p, msg, "eager")
			e.m.messages.WithLabelValues(mode).Inc()
			e.m.bytes.WithLabelValues(mode).Add(float64(len(msg)))
		}
	}
}

// mlUserMsg is memberlist's message type of a user message: a packet holding this
// byte and then the payload reaches the receiver's Delegate.NotifyMsg as it is. It
// is part of memberlist's wire protocol (userMsg), which every version speaks.
const mlUserMsg byte = 8

// rawSender returns a send function for one message that writes it to the
// transport as a plain memberlist user packet, framed once for every peer.
// memberlist's SendBestEffort would LZW-compress the message anew for each peer
// (a 64 KiB table allocated and cleared per packet, then collected: 12 ms of CPU
// for the 49 sends of one change at 50 agents on a loaded host, measured with perf,
// all of it on the path before the last peer hears of the change) and each
// receiver would decompress it; an eager message is a few hundred bytes of binary
// records, which LZW rarely shrinks. Only for pools without encryption or label
// (Gossip.rawPackets): those are memberlist's framing, done in its send path.
func (e *eager) rawSender(msg []byte) func(*memberlist.Node, []byte) error {
	frame := append([]byte{mlUserMsg}, msg...)
	return func(p *memberlist.Node, _ []byte) error {
		_, err := e.g.transport.WriteToAddress(frame, memberlist.Address{Addr: p.Address(), Name: p.Name})
		return err
	}
}

// sendBatch sends msg to peers as plain user packets in one batch (batchConn) and
// returns the peers it could not send to, for the caller to send one by one.
func (e *eager) sendBatch(peers []*memberlist.Node, msg []byte, mode string) []*memberlist.Node {
	addrs := make([]netip.AddrPort, len(peers))
	for i, p := range peers {
		addrs[i] = addrPort(p.Addr, p.Port)
	}
	sent, err := e.g.batch.send(append([]byte{mlUserMsg}, msg...), addrs)
	if err != nil {
		e.g.errLog.debug(e.g.cfg.Logger, "eager_batch", "gossip: eager batch send", "err", err)
	}
	var rest []*memberlist.Node
	for i, p := range peers {
		if !sent[i] {
			rest = append(rest, p)
			continue
		}
		e.m.messages.WithLabelValues(mode).Inc()
		e.m.bytes.WithLabelValues(mode).Add(float64(len(msg)))
	}
	return rest
}

// haveAll returns the nodes known to hold every record of a forwarded batch: those
// that are, for each record, its origin or the peer that sent it here. Only they are
// left out of the forward. Leaving out the origins and senders of any record instead
// would, when several nodes publish at once, leave each of those origins out of
// nearly every forward carrying the others' records, and the nodes missed that way
// would wait for anti-entropy (found by the simulator: 1.3 % of nodes at N = 100).
func haveAll(fwd []catalog.Record, from []string) map[string]bool {
	if len(fwd) == 0 {
		return nil
	}
	have := map[string]bool{fwd[0].Origin: true, from[0]: true}
	for i := 1; i < len(fwd) && len(have) > 0; i++ {
		for n := range have {
			if n != fwd[i].Origin && n != from[i] {
				delete(have, n)
			}
		}
	}
	return have
}

// pick returns up to k of peers at random, leaving out those named in exclude.
func pick(peers []*memberlist.Node, k int, exclude map[string]bool) []*memberlist.Node {
	out := make([]*memberlist.Node, 0, len(peers))
	for _, p := range peers {
		if !exclude[p.Name] {
			out = append(out, p)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(k, len(out))]
}

// livePeers returns every member but this node that is alive or suspect, with the
// address to send to.
func (g *Gossip) livePeers() []*memberlist.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*memberlist.Node, 0, len(g.members))
	for name, ms := range g.members {
		if name == g.cfg.NodeName || !ms.addr.IsValid() ||
			(ms.state != catalog.LivenessAlive && ms.state != catalog.LivenessSuspect) {
			continue
		}
		out = append(out, &memberlist.Node{Name: name, Addr: ms.addr.Addr().AsSlice(), Port: ms.addr.Port()})
	}
	return out
}

// onEager applies an eager message's records through the one validating apply path,
// applyRecords. While it runs, enqueue knows the records came on the eager path: new
// ones are forwarded if the sender asked for it, and none is queued for piggyback
// (the origin's own queue and anti-entropy repair what the eager path misses).
// Runs on the worker.
func (g *Gossip) onEager(sender string, flags byte, recs []catalog.Record, received time.Time) {
	g.eagerIn = &eagerIn{sender: sender, forward: flags&eagerForward != 0}
	changed := g.applyRecords(recs)
	g.eagerIn = nil
	if len(changed) > 0 && g.eager != nil && !received.IsZero() {
		g.eager.m.lastReceived.Set(float64(received.UnixNano()) / 1e9)
		g.eager.m.lastApplied.Set(float64(time.Now().UnixNano()) / 1e9)
	}
}

// chunkEager encodes recs as eager messages of at most about max bytes each (a single
// record larger than max gets a message of its own); records of extension kinds go in
// messages of their own (byWireKind).
func chunkEager(sender string, flags byte, recs []catalog.Record, max int) [][]byte {
	base, ext := byWireKind(recs)
	return append(chunkEagerOf(sender, flags, base, max), chunkEagerOf(sender, flags, ext, max)...)
}

func chunkEagerOf(sender string, flags byte, recs []catalog.Record, max int) [][]byte {
	head := append(appendSender(nil, msgEager, sender), flags)
	var out [][]byte
	var body []byte
	count := 0
	frame := func(body []byte, count int) []byte {
		msg := binary.AppendUvarint(append([]byte(nil), head...), uint64(count))
		return append(msg, body...)
	}
	for i := range recs {
		start := len(body)
		body = catalog.AppendRecord(body, &recs[i])
		if count > 0 && len(head)+binary.MaxVarintLen32+len(body) > max {
			out = append(out, frame(body[:start], count))
			body, count = append([]byte(nil), body[start:]...), 0
		}
		count++
	}
	if count > 0 {
		out = append(out, frame(body, count))
	}
	return out
}

// decodeEager splits an eager message into its sender, flags and records.
func decodeEager(b []byte) (string, byte, []catalog.Record, error) {
	sender, rest, err := readSender(b, msgEager)
	if err != nil {
		return "", 0, nil, err
	}
	if len(rest) == 0 {
		return "", 0, nil, fmt.Errorf("%w: eager message has no flags", errMalformed)
	}
	flags := rest[0]
	if flags&^eagerForward != 0 {
		return "", 0, nil, fmt.Errorf("%w: unknown eager flags %#x", errMalformed, flags)
	}
	recs, err := catalog.DecodeRecords(rest[1:])
	if err != nil {
		return "", 0, nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return sender, flags, recs, nil
}
