// Package model predicts what rumor's gossip does at sizes real code cannot reach in
// one process (1,000–100,000 nodes): an event-driven simulation of the same protocol
// with the same parameters — SWIM probes with Lifeguard's suspicion timeouts and
// confirmations, memberlist's retransmit-limited piggyback queue (membership messages
// first, then records, packet by packet), rumor's push-pull anti-entropy with
// memberlist's interval scaling, and an optional eager path — run over the same
// scenario scripts as tier 1 (package sim), producing the same report.
//
// What it simulates event by event: every gossip packet carrying a scripted
// registration or a membership message about a crashed node, every push-pull
// exchange, every probe of a crashed node. What it computes in closed form: probes
// of live nodes (their bytes, and the chance that packet loss makes one fail and
// end in a false failure), the traffic of a steady change rate ("change" events),
// and memory per node. It does not model failure detection across a partition (the
// two sides declaring each other failed), joins' own traffic, or CPU.
//
// It is deterministic: the same scenario, seed and parameters give the same report.
// It does no I/O and starts no goroutines.
package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rumor-sd/rumor/sim/scenario"
)

const (
	evGossip    = iota // a node's gossip tick
	evDeliver          // a packet arrives
	evPushPull         // a node's push-pull tick
	evProbe            // someone probes a crashed node
	evSuspect          // a prober's probe of a crashed node has failed
	evTimer            // a suspicion timer may have expired
	evScript           // a scripted event
	evLearn            // a node learns a record by anti-entropy
	evEager            // an eager message arrives (a = message, b = how, c = sender)
	evEagerTick        // a node's eager coalescing window ends
)

type event struct {
	at   int64 // ns since the start of the run
	seq  uint64
	kind uint8
	node int32
	a, b int32
	c    int32
}

type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].seq < h[j].seq
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, m) {
			m = l
		}
		if r < len(s) && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// Rumor kinds.
const (
	rRecord = iota
	rSuspect
	rDead
)

type rumor struct {
	kind    uint8
	subject int32 // record index, or the crashed node
	from    int32 // suspect: the suspecting node
	size    int32
}

type qent struct {
	rumor int32
	tx    int32
}

type node struct {
	alive   bool
	side    int8  // partition side
	started int64 // when it joined
	ticking bool
	phase   int64 // gossip tick offset
	ticks   int64 // gossip ticks so far, for ping piggyback
	queue   []qent

	// The eager path's coalescing (gossip/eager.go): own records and records to
	// forward wait while the window is open (eBusy) and leave together at its end;
	// a forward batch leaves out the senders and origins of all its records.
	eOwn, eFwd []int32 // rumor ids
	eExcl      []int32 // senders of the records in eFwd
	eBusy      bool
}

// record is one scripted registration.
type record struct {
	rumor  int32
	at     int64
	origin int32
	known  []int64 // per node: arrival time + 1 (0: unknown)
}

type susp struct {
	start    int64
	from     int32
	conf     []int32
	deadline int64
}

// victim is one crashed node.
type victim struct {
	index    int32 // in model.vics
	node     int32
	at       int64
	deadAt   map[int32]int64 // observer → when it marked the node failed
	susp     map[int32]*susp
	suspects map[int32]int32 // suspecter → its suspect rumor
	dead     int32           // the dead rumor (-1 until declared)
}

// Model is one run of a scenario.
type model struct {
	p      Params
	sc     scenario.Scenario
	rng    *rand.Rand
	h      eventHeap
	seq    uint64
	now    int64
	nodes  []node
	live   int
	link   scenario.Link
	slow   map[int32]time.Duration
	split  bool
	rumors []rumor
	recs   []*record
	vics   []*victim
	vicOf  map[int32]*victim
	pkts   [][]int32
	free   []int32
	emsgs  [][]int32 // eager messages' records, shared by their receivers

	bytes      float64 // simulated bytes sent
	bytesBy    [numKinds]float64
	nodeSecs   float64 // live node-seconds
	lastT      int64
	changeRate float64 // record changes per node per second from "change" events
	falseExp   float64
	events     []scenario.Event
}

// The kinds of traffic the model charges bytes for (Report.BytesByKind).
const (
	kindProbe    = iota // pings and acks, direct and indirect
	kindChanges         // the steady change rate's piggyback, in closed form
	kindEager           // eager-path messages
	kindGossip          // piggyback packets: records and membership messages
	kindPushPull        // push-pull exchanges: member lists and summaries, both ways
	kindRepair          // records anti-entropy sends
	numKinds
)

var kindNames = [numKinds]string{"probe", "changes", "eager", "gossip", "push-pull", "repair"}

func (m *model) addBytes(kind int, b float64) {
	m.bytes += b
	m.bytesBy[kind] += b
}

// Run runs sc on the model with parameters p.
func Run(sc scenario.Scenario, p Params) (scenario.Report, error) {
	return RunProgress(sc, p, nil)
}

// RunProgress is Run that calls progress (if not nil) with the share of the
// scenario's time simulated so far, at most about a hundred times.
func RunProgress(sc scenario.Scenario, p Params, progress func(done float64)) (scenario.Report, error) {
	if sc.Nodes < 3 {
		return scenario.Report{}, fmt.Errorf("model: %d nodes: need at least 3", sc.Nodes)
	}
	if p.GossipNodes < 1 || p.GossipInterval <= 0 || p.ProbeInterval <= 0 || p.PacketBytes < 100 {
		return scenario.Report{}, fmt.Errorf("model: parameters %+v: need GossipNodes ≥ 1, positive intervals and PacketBytes ≥ 100", p)
	}
	m := &model{p: p, sc: sc, rng: rand.New(rand.NewPCG(sc.Seed, 0x30de1)), link: sc.Link,
		slow: map[int32]time.Duration{}, vicOf: map[int32]*victim{}}
	for range sc.Nodes {
		m.addNode(0)
	}
	for i, e := range sc.Events {
		m.schedule(event{at: int64(e.At), kind: evScript, a: int32(i)})
	}
	m.events = sc.Events
	end := int64(sc.Duration)
	step, nextReport := end/100+1, int64(0)
	for len(m.h) > 0 && m.h[0].at <= end {
		e := m.h.pop()
		m.advance(e.at)
		m.handle(e)
		if progress != nil && e.at >= nextReport {
			progress(float64(e.at) / float64(end))
			nextReport = e.at + step
		}
	}
	if progress != nil {
		progress(1)
	}
	m.advance(end)
	return m.report(), nil
}

func (m *model) schedule(e event) {
	m.seq++
	e.seq = m.seq
	m.h.push(e)
}

// advance moves the clock, accruing node-seconds and the closed-form traffic.
func (m *model) advance(t int64) {
	if t <= m.lastT {
		m.now = max(m.now, t)
		return
	}
	dt := float64(t-m.lastT) / 1e9
	m.nodeSecs += dt * float64(m.live)
	// Probes of live members: a ping and an ack per node per interval; with loss, the
	// failed ones add indirect probes (IndirectChecks × 4 packets).
	loss := m.link.Loss
	pfail := 1 - (1-loss)*(1-loss)
	probeBytes := float64(m.p.PingBytes+m.p.AckBytes) * (1 + pfail*float64(m.p.IndirectChecks)*2)
	m.addBytes(kindProbe, dt*float64(m.live)*probeBytes/m.p.ProbeInterval.Seconds())
	// A steady change rate, in closed form. With the eager path, as gossip does it: the
	// origin sends each change to every member (at most EagerAllBelow) or to a fan-out
	// f, each node that first gets it forwards it to f more (so about N·f messages a
	// change), one record each at these rates; receivers do not piggyback it, only the
	// origin, limit times. Tier 1 at N = 100 (bandwidth scenario): 98.5 B/s eager and
	// 3.3 B/s piggyback per node, this formula 103 and 3.3. Without the eager path
	// every node piggybacks each change limit times, as far as its packets hold.
	if m.changeRate > 0 {
		n := m.live
		limit := retransmits(m.p.RetransmitMult*m.p.RecordRetransmitMult, n)
		if m.eagerOn() {
			msgs := float64(n - 1) // direct to all, not forwarded
			if m.p.EagerAllBelow == 0 || n-1 > m.p.EagerAllBelow {
				msgs = float64(n * m.fanout(n-1))
				if !m.p.EagerForward {
					msgs = float64(m.fanout(n - 1))
				}
			}
			perChange := msgs*float64(m.p.eagerWire(1, false)) + float64(limit*m.p.RecordWire)
			m.addBytes(kindChanges, dt*float64(n)*m.changeRate*perChange)
		} else {
			demand := m.changeRate * float64(n) * float64(limit) // record transmits per node per second
			capacity := float64(m.p.GossipNodes*(m.p.PacketBytes-m.p.PacketOverhead)/m.p.RecordBytes) / m.p.GossipInterval.Seconds()
			sent := min(demand, capacity)
			// Records per packet decide what compression saves (gossipWire).
			perPacket := max(1, sent*m.p.GossipInterval.Seconds()/float64(m.p.GossipNodes))
			wire := min(float64(m.p.RecordWire), float64(m.p.RecordBatchWire)+float64(m.p.GossipBatchWire)/perPacket)
			m.addBytes(kindChanges, dt*float64(n)*sent*wire)
		}
	}
	// False failures: a probe of a live node fails if the ping or its ack is lost,
	// every indirect probe fails and the TCP fallback fails; the suspicion becomes a
	// failure only if the node never hears of it to refute it.
	if loss > 0 {
		indirect := 1 - math.Pow(1-loss, 4)
		pf := pfail * math.Pow(indirect, float64(m.p.IndirectChecks)) * m.p.TCPFallbackFail
		refuteMiss := math.Pow(loss, float64(retransmits(m.p.RetransmitMult, m.live)))
		m.falseExp += dt * float64(m.live) / m.p.ProbeInterval.Seconds() * pf * refuteMiss
	}
	m.lastT = t
	m.now = t
}

func (m *model) addNode(at int64) int32 {
	i := int32(len(m.nodes))
	m.nodes = append(m.nodes, node{alive: true, started: at, phase: m.rng.Int64N(int64(m.p.GossipInterval))})
	m.live++
	// Push-pull ticks start at a random offset.
	every := int64(m.p.pushPullEvery(m.sc.Nodes))
	m.schedule(event{at: at + m.rng.Int64N(every), kind: evPushPull, node: i})
	// A joining node gets every record in its first exchange.
	for _, r := range m.recs {
		r.known = append(r.known, 0)
		if at > 0 {
			r.known[i] = at + 1
		}
	}
	return i
}

func (m *model) handle(e event) {
	switch e.kind {
	case evScript:
		m.script(m.events[e.a])
	case evGossip:
		m.gossip(e.node)
	case evDeliver:
		m.deliver(e.node, e.a, e.b)
	case evLearn:
		m.receive(e.node, e.a, e.b, -1)
	case evEager:
		for _, rid := range m.emsgs[e.a] {
			m.receive(e.node, rid, e.b, e.c)
		}
	case evEagerTick:
		m.eagerTick(e.node)
	case evPushPull:
		m.pushPull(e.node)
	case evProbe:
		m.probe(m.vics[e.a])
	case evSuspect:
		v := m.vics[e.a]
		if _, dead := v.deadAt[e.node]; !dead && m.nodes[e.node].alive {
			m.onSuspect(e.node, v, e.node)
		}
	case evTimer:
		m.timer(e.node, m.vics[e.a])
	}
}

func (m *model) liveNodes() []int32 {
	var out []int32
	for i := range m.nodes {
		if m.nodes[i].alive {
			out = append(out, int32(i))
		}
	}
	return out
}

func (m *model) script(e scenario.Event) {
	live := m.liveNodes()
	switch e.Kind {
	case scenario.Register:
		for range e.Count {
			m.register(live[m.rng.IntN(len(live))])
		}
	case scenario.Kill, scenario.Churn:
		k := min(e.N(len(live)), len(live)-1)
		m.rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		for _, v := range live[:k] {
			m.crash(v)
		}
		if e.Kind == scenario.Churn {
			for range k {
				m.addNode(m.now)
			}
		}
	case scenario.Partition:
		k := min(e.N(len(live)), len(live)-1)
		for i, n := range live {
			m.nodes[n].side = 0
			if i < k {
				m.nodes[n].side = 1
			}
		}
		m.split = true
	case scenario.Heal:
		m.split = false
		// rumor's reconnect loop retries failed members within about 2 s, and each
		// reconnect is a push-pull across the old split.
		for _, n := range live {
			m.schedule(event{at: m.now + m.rng.Int64N(int64(2*time.Second)), kind: evPushPull, node: n, a: 1})
		}
	case scenario.SetLink:
		m.link = e.Link
	case scenario.Slow:
		k := min(e.N(len(live)), len(live))
		m.rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		for _, n := range live[:k] {
			m.slow[n] += e.Delay
		}
	case scenario.Change:
		m.changeRate = float64(e.Count) / e.Period.Seconds()
	}
}

// register publishes a new record at origin.
func (m *model) register(origin int32) {
	r := &record{rumor: int32(len(m.rumors)), at: m.now, origin: origin, known: make([]int64, len(m.nodes))}
	m.rumors = append(m.rumors, rumor{kind: rRecord, subject: int32(len(m.recs)), size: int32(m.p.RecordBytes)})
	m.recs = append(m.recs, r)
	r.known[origin] = m.now + 1
	m.enqueue(origin, r.rumor)
	m.eagerAdd(origin, r.rumor, -1)
}

// eagerOn says whether the eager path is on.
// fanout is the eager fan-out at peers live peers: EagerFanout, or gossip's
// ⌈ln n⌉ + 2 for n live members.
func (m *model) fanout(peers int) int {
	if m.p.EagerFanout > 0 {
		return m.p.EagerFanout
	}
	return int(math.Ceil(math.Log(float64(max(peers+1, 2))))) + 2
}

func (m *model) eagerOn() bool {
	return m.p.EagerAllBelow > 0 || m.p.EagerFanout > 0 || m.p.EagerForward
}

// eagerAdd queues a record on n's eager path: its own (sender < 0) or one to forward
// that came from sender. As gossip's eager loop: the first after a quiet spell leaves
// at once and opens a window of EagerDelay; what arrives while it is open leaves
// together when it closes.
func (m *model) eagerAdd(n, rid, sender int32) {
	if !m.eagerOn() {
		return
	}
	nd := &m.nodes[n]
	if sender < 0 {
		nd.eOwn = append(nd.eOwn, rid)
	} else {
		nd.eFwd = append(nd.eFwd, rid)
		nd.eExcl = append(nd.eExcl, sender)
	}
	if nd.eBusy {
		return
	}
	// The leading edge leaves after what is already scheduled for this instant, not
	// at once: gossip's eager goroutine runs after its worker has applied what had
	// arrived, so records of one burst may share the first batch (and its
	// exclusions). Holding the first batch until everything of the instant has
	// arrived instead (all of a burst in one batch) made the model miss several
	// nodes per registration at N = 200 where tier 1 misses about one in four
	// registrations' last node: tier 1 lies between, nearer this.
	nd.eBusy = true
	m.schedule(event{at: m.now, kind: evEagerTick, node: n})
}

// eagerTick sends what waited on n's eager path and opens a window of EagerDelay;
// with nothing waiting, the path goes quiet.
func (m *model) eagerTick(n int32) {
	nd := &m.nodes[n]
	if !nd.alive || len(nd.eOwn)+len(nd.eFwd) == 0 {
		nd.eBusy = false
		return
	}
	m.eagerFlush(n)
	m.schedule(event{at: m.now + int64(m.p.EagerDelay), kind: evEagerTick, node: n})
}

// eagerFlush sends n's pending eager records: its own to every member it sees when
// they are at most EagerAllBelow, else to a fan-out of random members, flagged to be
// forwarded; records to forward to a fan-out that leaves out the nodes known to hold
// all of them (for every record its origin or sender, as gossip's haveAll), flagged
// again.
func (m *model) eagerFlush(n int32) {
	nd := &m.nodes[n]
	own, fwd, excl := nd.eOwn, nd.eFwd, nd.eExcl
	nd.eOwn, nd.eFwd, nd.eExcl = nil, nil, nil
	if !nd.alive {
		return
	}
	peers := m.live - 1 // the members n sees alive (crashed ones not yet failed count too, as in gossip)
	if v := m.crashedUnknown(n); v > 0 {
		peers += v
	}
	fan := m.fanout(peers)
	how := int32(1)
	if !m.p.EagerForward {
		how = 3
	}
	if len(own) > 0 {
		if m.p.EagerAllBelow > 0 && peers <= m.p.EagerAllBelow {
			var all []int32
			for i := range m.nodes {
				if t := int32(i); t != n && m.sees(n, t) {
					all = append(all, t)
				}
			}
			m.eagerSend(n, all, own, 3)
		} else {
			m.eagerSend(n, m.pickN(n, fan, nil), own, how)
		}
	}
	if len(fwd) > 0 {
		m.eagerSend(n, m.pickN(n, fan, m.haveAll(fwd, excl)), fwd, how)
	}
}

// haveAll returns the nodes that are, for every record of fwd, its origin or the
// node that sent it (from[i]): as gossip's eager forward, only they are left out.
func (m *model) haveAll(fwd, from []int32) []int32 {
	if len(fwd) == 0 {
		return nil
	}
	have := []int32{m.recs[m.rumors[fwd[0]].subject].origin, from[0]}
	for i := 1; i < len(fwd) && len(have) > 0; i++ {
		origin := m.recs[m.rumors[fwd[i]].subject].origin
		have = slices.DeleteFunc(have, func(x int32) bool { return x != origin && x != from[i] })
	}
	return have
}

// crashedUnknown counts crashed nodes n has not yet declared failed.
func (m *model) crashedUnknown(n int32) int {
	c := 0
	for _, v := range m.vics {
		if _, dead := v.deadAt[n]; !dead && !m.nodes[v.node].alive {
			c++
		}
	}
	return c
}

// sees says whether n counts t as a live member: alive, or crashed and not yet
// declared failed by n.
func (m *model) sees(n, t int32) bool {
	if m.nodes[t].alive {
		return true
	}
	v := m.vicOf[t]
	if v == nil {
		return false
	}
	_, dead := v.deadAt[n]
	return !dead
}

// pickN picks up to k distinct members n sees, other than n and those in excl.
func (m *model) pickN(n int32, k int, excl []int32) []int32 {
	out := make([]int32, 0, k)
	for tries := 0; len(out) < k && tries < 20*k+100; tries++ {
		t := int32(m.rng.IntN(len(m.nodes)))
		if t == n || !m.sees(n, t) || slices.Contains(excl, t) || slices.Contains(out, t) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// eagerSend sends one eager message with recs to each target: a packet when it fits
// (lossy), else chunks over the reliable stream (lossless, as memnet's streams).
func (m *model) eagerSend(from int32, targets []int32, recs []int32, how int32) {
	if len(targets) == 0 {
		return
	}
	id := int32(len(m.emsgs))
	m.emsgs = append(m.emsgs, slices.Clone(recs))
	size := eagerHeader + len(recs)*m.p.RecordBytes // uncompressed: what decides packet or stream
	reliable := size > eagerPacketMax
	wire := m.p.eagerWire(len(recs), reliable)
	for _, t := range targets {
		m.addBytes(kindEager, float64(wire))
		var d int64
		ok := true
		if reliable {
			ok = m.nodes[t].alive && !(m.split && m.nodes[from].side != m.nodes[t].side)
			d = int64(m.link.Latency + m.slow[from] + m.slow[t])
		} else {
			d, ok = m.path(from, t)
		}
		if ok {
			m.schedule(event{at: m.now + d, kind: evEager, node: t, a: id, b: how, c: from})
		}
	}
}

// The eager message's framing (type, sender name, flags, count) and the largest
// message gossip sends as one packet (its maxBroadcastSize).
const (
	eagerHeader    = 12
	eagerPacketMax = 1200
)

// path decides a packet's fate: its delay, or false if it is lost.
func (m *model) path(from, to int32) (int64, bool) {
	if !m.nodes[to].alive || m.split && m.nodes[from].side != m.nodes[to].side {
		return 0, false
	}
	if m.link.Loss > 0 && m.rng.Float64() < m.link.Loss {
		return 0, false
	}
	d := int64(m.link.Latency + m.slow[from] + m.slow[to])
	if m.link.Jitter > 0 {
		d += m.rng.Int64N(int64(m.link.Jitter) + 1)
	}
	return d, true
}

func (m *model) enqueue(n int32, rid int32) {
	nd := &m.nodes[n]
	r := m.rumors[rid]
	if r.kind != rRecord {
		// Membership messages about one node replace each other (memberlist's queue
		// invalidates by node name).
		nd.queue = slices.DeleteFunc(nd.queue, func(q qent) bool {
			o := m.rumors[q.rumor]
			return o.kind != rRecord && o.subject == r.subject
		})
	}
	nd.queue = append(nd.queue, qent{rumor: rid})
	if !nd.ticking && nd.alive {
		nd.ticking = true
		// The next tick of this node's gossip timer.
		gi := int64(m.p.GossipInterval)
		next := m.now - ((m.now-nd.phase)%gi+gi)%gi + gi
		if next <= m.now {
			next += gi
		}
		m.schedule(event{at: next, kind: evGossip, node: n})
	}
}

// gossip is one tick: GossipNodes packets (one more on a probe's ping every
// ProbeInterval), each filled from the queue, fewest transmits first, membership first.
func (m *model) gossip(n int32) {
	nd := &m.nodes[n]
	if !nd.alive || len(nd.queue) == 0 {
		nd.ticking = false
		nd.queue = nd.queue[:0]
		return
	}
	nd.ticks++
	targets := m.p.GossipNodes
	if per := int64(m.p.ProbeInterval / m.p.GossipInterval); per > 0 && nd.ticks%per == 0 {
		targets++ // the probe's ping carries broadcasts too
	}
	for range targets {
		if len(nd.queue) == 0 {
			break
		}
		t := m.pickTarget(n)
		if t < 0 {
			break
		}
		m.sendPacket(n, t)
	}
	if len(nd.queue) == 0 {
		nd.ticking = false
		return
	}
	m.schedule(event{at: m.now + int64(m.p.GossipInterval), kind: evGossip, node: n})
}

// pickTarget picks a random member other than n that n does not know to be dead.
func (m *model) pickTarget(n int32) int32 {
	for range 8 {
		t := int32(m.rng.IntN(len(m.nodes)))
		if t == n {
			continue
		}
		if v := m.vicOf[t]; v != nil {
			if _, dead := v.deadAt[n]; dead {
				continue
			}
		}
		return t
	}
	return -1
}

func (m *model) sendPacket(from, to int32) {
	nd := &m.nodes[from]
	limMember := int32(retransmits(m.p.RetransmitMult, m.live))
	limRecord := int32(retransmits(m.p.RetransmitMult*m.p.RecordRetransmitMult, m.live))
	slices.SortStableFunc(nd.queue, func(a, b qent) int {
		ka, kb := m.rumors[a.rumor].kind == rRecord, m.rumors[b.rumor].kind == rRecord
		if ka != kb {
			if ka {
				return 1
			}
			return -1
		}
		if a.tx != b.tx {
			return int(a.tx - b.tx)
		}
		return int(b.rumor - a.rumor) // newer first
	})
	budget := m.p.PacketBytes - m.p.PacketOverhead
	var pkt []int32
	if k := len(m.free); k > 0 {
		pkt = m.pkts[m.free[k-1]][:0]
	}
	keep := nd.queue[:0]
	alone, batch := 0, 0 // what the packet's messages cost on the wire (gossipWire)
	for _, q := range nd.queue {
		r := m.rumors[q.rumor]
		if int(r.size) <= budget {
			budget -= int(r.size)
			pkt = append(pkt, q.rumor)
			q.tx++
			if r.kind == rRecord {
				alone, batch = alone+m.p.RecordWire, batch+m.p.RecordBatchWire
			} else {
				alone, batch = alone+m.p.MemberMsgWire, batch+m.p.MemberMsgBatchWire
			}
		}
		lim := limRecord
		if r.kind != rRecord {
			lim = limMember
		}
		if q.tx < lim {
			keep = append(keep, q)
		}
	}
	nd.queue = keep
	if len(pkt) == 0 {
		return
	}
	m.addBytes(kindGossip, float64(m.p.gossipWire(alone, batch)))
	d, ok := m.path(from, to)
	var id int32
	if k := len(m.free); k > 0 {
		id = m.free[k-1]
		m.free = m.free[:k-1]
		m.pkts[id] = pkt
	} else {
		id = int32(len(m.pkts))
		m.pkts = append(m.pkts, pkt)
	}
	if !ok {
		m.free = append(m.free, id)
		return
	}
	m.schedule(event{at: m.now + d, kind: evDeliver, node: to, a: id})
}

func (m *model) deliver(to int32, pkt int32, _ int32) {
	for _, rid := range m.pkts[pkt] {
		m.receive(to, rid, 0, -1)
	}
	m.free = append(m.free, pkt)
}

// receive handles one message at a node. how: 0 gossip, 1 eager (forward it),
// 2 anti-entropy, 3 eager direct (do not forward); sender is the eager sender.
// A record new to the node is queued for piggyback unless it came on the eager
// path, which forwards it (how 1) or nothing (how 3), as gossip's enqueue.
func (m *model) receive(n int32, rid int32, how int32, sender int32) {
	if !m.nodes[n].alive {
		return
	}
	r := m.rumors[rid]
	switch r.kind {
	case rRecord:
		rec := m.recs[r.subject]
		if rec.known[n] != 0 {
			return
		}
		rec.known[n] = m.now + 1
		switch {
		case n == rec.origin:
		case how == 1:
			m.eagerAdd(n, rid, sender) // forwarded instead of queued for piggyback
		case how == 3:
		default:
			m.enqueue(n, rid)
		}
	case rSuspect:
		v := m.vicOf[r.subject]
		if _, dead := v.deadAt[n]; !dead {
			m.onSuspect(n, v, r.from)
		}
	case rDead:
		v := m.vicOf[r.subject]
		if _, dead := v.deadAt[n]; !dead {
			v.deadAt[n] = m.now
			m.enqueue(n, rid)
		}
	}
}

// pushPull is a node's anti-entropy exchange with a random live member: each side
// gets every record the other has.
func (m *model) pushPull(n int32) {
	nd := &m.nodes[n]
	if !nd.alive {
		return
	}
	m.schedule(event{at: m.now + int64(m.p.pushPullEvery(m.live)), kind: evPushPull, node: n})
	t := m.pickTarget(n)
	if t < 0 || !m.nodes[t].alive || m.split && m.nodes[t].side != nd.side {
		return
	}
	records := float64(m.live * (1 + m.sc.Services))
	state := m.p.pushPullBytes(m.live) + m.p.PushPullRecordBytes*records
	m.addBytes(kindPushPull, 2*state)
	d := int64(2 * (m.link.Latency + m.slow[n] + m.slow[t]))
	for _, r := range m.recs {
		a, b := r.known[n] != 0, r.known[t] != 0
		switch {
		case a && !b:
			m.addBytes(kindRepair, float64(m.p.StreamRecordMul*m.p.RecordBytes))
			m.schedule(event{at: m.now + d, kind: evLearn, node: t, a: r.rumor, b: 2})
		case b && !a:
			m.addBytes(kindRepair, float64(m.p.StreamRecordMul*m.p.RecordBytes))
			m.schedule(event{at: m.now + d, kind: evLearn, node: n, a: r.rumor, b: 2})
		}
	}
}

// crash stops a node; probes of it start.
func (m *model) crash(n int32) {
	m.nodes[n].alive = false
	m.nodes[n].queue = nil
	m.live--
	v := &victim{index: int32(len(m.vics)), node: n, at: m.now, deadAt: map[int32]int64{}, susp: map[int32]*susp{},
		suspects: map[int32]int32{}, dead: -1}
	m.vics = append(m.vics, v)
	m.vicOf[n] = v
	m.nextProbe(int32(len(m.vics)-1), v)
}

// nextProbe schedules the next probe of a crashed node: each live member probes one
// member per ProbeInterval in a shuffled round robin, so probes of one node arrive
// at about live/(N−1) per interval.
func (m *model) nextProbe(vi int32, v *victim) {
	observers := m.live - len(v.deadAt)
	if observers <= 0 {
		return
	}
	rate := float64(observers) / float64(max(1, len(m.nodes)-1)) / m.p.ProbeInterval.Seconds()
	wait := m.rng.ExpFloat64() / rate
	m.schedule(event{at: m.now + int64(wait*1e9), kind: evProbe, a: vi})
}

func (m *model) probe(v *victim) {
	vi := v.index
	// The prober: a random live member that does not yet know the node is dead.
	for range 16 {
		o := int32(m.rng.IntN(len(m.nodes)))
		if _, dead := v.deadAt[o]; dead || !m.nodes[o].alive || m.nodes[o].started > v.at {
			continue
		}
		// Direct ping, indirect pings, then at the end of the interval: suspect.
		m.schedule(event{at: m.now + int64(m.p.ProbeInterval), kind: evSuspect, node: o, a: vi})
		m.addBytes(kindProbe, float64(m.p.PingBytes*(1+2*m.p.IndirectChecks)))
		break
	}
	m.nextProbe(vi, v)
}

// onSuspect: node n hears (or decides, from == n) that v's node is suspect.
func (m *model) onSuspect(n int32, v *victim, from int32) {
	lo, hi := m.p.suspicionTimeouts(m.live + 1)
	k := m.p.SuspicionMult - 2
	if m.live+1-2 < k {
		k = 0
	}
	s := v.susp[n]
	vi := v.index
	if s == nil {
		s = &susp{start: m.now, from: from}
		v.susp[n] = s
	} else {
		if from == s.from || slices.Contains(s.conf, from) || len(s.conf) >= k {
			return
		}
		s.conf = append(s.conf, from)
	}
	s.deadline = s.start + int64(suspicionTimeout(lo, hi, len(s.conf), k))
	m.schedule(event{at: max(s.deadline, m.now), kind: evTimer, node: n, a: vi})
	// (Re)broadcast: the suspecter's message, or the one heard.
	rid, ok := v.suspects[from]
	if !ok {
		rid = int32(len(m.rumors))
		m.rumors = append(m.rumors, rumor{kind: rSuspect, subject: v.node, from: from, size: int32(m.p.MemberMsgBytes)})
		v.suspects[from] = rid
	}
	m.enqueue(n, rid)
}

func (m *model) timer(n int32, v *victim) {
	s := v.susp[n]
	if _, dead := v.deadAt[n]; dead || s == nil || s.deadline > m.now || !m.nodes[n].alive {
		return
	}
	v.deadAt[n] = m.now
	if v.dead < 0 {
		v.dead = int32(len(m.rumors))
		m.rumors = append(m.rumors, rumor{kind: rDead, subject: v.node, from: n, size: int32(m.p.MemberMsgBytes)})
	}
	m.enqueue(n, v.dead)
}

func (m *model) report() scenario.Report {
	rep := scenario.Report{Scenario: m.sc.Name, Tier: "model", Nodes: m.sc.Nodes, Seed: m.sc.Seed}
	for i, r := range m.recs {
		var ds []time.Duration
		want := 0
		for n := range m.nodes {
			if !m.nodes[n].alive {
				continue
			}
			want++
			if r.known[n] != 0 {
				ds = append(ds, time.Duration(r.known[n]-1-r.at))
			}
		}
		slices.Sort(ds)
		rep.Spreads = append(rep.Spreads, scenario.SpreadOf(ds, want))
		if len(ds) < want {
			rep.Unreached++
		}
		if i == 0 {
			rep.Curve = ds
		}
	}
	for _, v := range m.vics {
		var worst int64
		ok := true
		for n := range m.nodes {
			if !m.nodes[n].alive || m.nodes[n].started > v.at {
				continue
			}
			d, seen := v.deadAt[int32(n)]
			if !seen {
				ok = false
				break
			}
			worst = max(worst, d-v.at)
		}
		if ok {
			rep.Detections = append(rep.Detections, time.Duration(worst))
		} else {
			rep.Undetected++
		}
	}
	rep.NodeHours = m.nodeSecs / 3600
	rep.FalseFailures = int(math.Round(m.falseExp))
	if m.nodeSecs > 0 {
		rep.BytesPerNodeSec = m.bytes / m.nodeSecs
		rep.BytesByKind = map[string]float64{}
		for k, b := range m.bytesBy {
			if b > 0 {
				rep.BytesByKind[kindNames[k]] = b / m.nodeSecs
			}
		}
	}
	perMember := 1 + float64(m.sc.Services) + float64(len(m.recs))/float64(max(1, m.sc.Nodes)) // node record + services
	rep.MemPerNode = float64(m.p.MemBase) + float64(m.live)*(float64(m.p.MemPerMember)+perMember*float64(m.p.MemPerRecord))
	return rep
}
