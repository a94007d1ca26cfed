package model

import (
	"math"
	"time"
)

// Params are the protocol's parameters and the sizes the model charges for each
// message. DefaultParams is rumor's LAN profile; every field documents its default.
type Params struct {
	// SWIM failure detection (memberlist's LAN defaults).
	ProbeInterval           time.Duration // 1s: each node probes one member per interval
	IndirectChecks          int           // 3: members asked to probe indirectly when a direct ping fails
	SuspicionMult           int           // 4: suspicion timeout = SuspicionMult × log10(N) × ProbeInterval
	SuspicionMaxTimeoutMult int           // 6: Lifeguard's upper bound on that timeout, as a multiple
	// TCPFallbackFail is the probability that the TCP fallback ping to a member that
	// missed its UDP probes fails too (0: memnet's streams are lossless, as in tier 1).
	TCPFallbackFail float64

	// Dissemination (memberlist's gossip, rumor's record queue).
	GossipInterval       time.Duration // 200ms: a node with something queued sends to GossipNodes members
	GossipNodes          int           // 3
	RetransmitMult       int           // 4: a membership message is sent RetransmitMult × ⌈log10(N+1)⌉ times
	RecordRetransmitMult int           // 2: rumor sends records that many times more
	PacketBytes          int           // 1400: a gossip packet's payload budget (memberlist's UDPBufferSize)

	// Anti-entropy: rumor's push-pull (memberlist's 30 s divided by 3), scaled with N
	// as memberlist scales it.
	PushPullInterval time.Duration // 10s

	// Eager path (gossip's EagerConfig): a new record goes at once to every member
	// when the origin sees at most EagerAllBelow (64) others, receivers not passing it
	// on; else to EagerFanout random members (0: ⌈ln N⌉ + 2) flagged to forward (with
	// EagerForward), and each node that first gets it so forwards it to as many,
	// leaving out the senders and origins of the records in its batch. Records that
	// come on the eager path are never queued for piggyback: the origin's piggyback
	// queue and anti-entropy repair what it misses, and those misses are the tail.
	// EagerDelay is the coalescing window (gossip's Delay, 5ms): the first change
	// after a quiet spell leaves at once, later ones wait for the window to close.
	// EagerAllBelow = 0 and EagerFanout = 0 with EagerForward false: off.
	EagerAllBelow int
	EagerFanout   int
	EagerForward  bool
	EagerDelay    time.Duration

	// Message sizes in bytes, uncompressed: what decides how many messages fit a
	// gossip packet and whether an eager batch goes as a packet or on the stream.
	RecordBytes    int // 48: one service record in a gossip packet (gossip's encoding: 45 bytes, plus framing)
	MemberMsgBytes int // 50: a suspect, dead or alive message
	PacketOverhead int // 30: compound header and framing per packet

	// What each message costs on the wire (payload as memnet counts it, after
	// memberlist's LZW compression of every packet and stream), measured in tier 1
	// message by message (go test ./sim -run 'TestReal$' -sim.bytes, at N = 100,
	// 200 and 500). Compression is why these differ from the sizes above: a batch of
	// similar records, a member list and a summary with empty buckets shrink.
	PingBytes int // 69: a ping
	AckBytes  int // 66: an ack, with rumor's network coordinate (46 bytes of binary; 258 with the JSON before)
	// A gossip packet of k messages costs min(Σ their sizes alone, GossipBatchWire +
	// Σ their sizes in a batch) (gossipWire): memberlist compresses a packet only when
	// that shrinks it, and similar messages compress well together (tier 1 at N = 200:
	// 44 bytes for one suspect or dead message, 89 for two, 133 for four, 207 for nine).
	RecordWire         int // 49: a record alone, with the packet's framing
	RecordBatchWire    int // 17: a record among others in a compressed packet
	MemberMsgWire      int // 44: a suspect or dead message alone
	MemberMsgBatchWire int // 16: a suspect or dead message among others
	GossipBatchWire    int // 62: a compressed packet's own cost
	// An eager message that fits a packet costs EagerSingleWire for one record and
	// EagerRecordWire for each further one: in a pool without encryption the eager path
	// writes its packets itself, uncompressed (gossip/eager.go: rawSender; tier 1 at
	// N = 100: 53 bytes for one record, 96 for two, 851 for twenty). A larger one goes
	// in chunks over memberlist's stream, which compresses similar records to
	// EagerBatchWire + k·RecordBatchWire (eagerWire).
	EagerSingleWire int // 53
	EagerRecordWire int // 42
	EagerBatchWire  int // 68
	// One side of a push-pull: memberlist's header and framing, each member's state,
	// and rumor's user state, which in a periodic push-pull is the summary's 8-byte hash
	// (a join's carries the 2 KiB summary, whose empty buckets compress away; set
	// SummaryBucketBytes 15 and SummaryBytes 0 to model that, as before the hash):
	// PushPullHeader + N·NodeStateBytes + SummaryBytes + SummaryBucketBytes·(non-empty buckets).
	// The summary's part was fitted to tier 1's 2,271, 3,634 and 6,294 bytes at N = 100,
	// 200 and 500 (within 2 %); with the hash tier 1 sends 1,260 bytes at N = 100. Tier 1's node names and IDs are sequential and compress to about 5 bytes
	// a member; a deployment's random node IDs (16 bytes each) would cost more.
	PushPullHeader     int // 500
	NodeStateBytes     int // 5
	SummaryBytes       int // 3: the summary's hash, compressed with the member list
	SummaryBucketBytes int // 0 (15 for a whole summary: one non-empty bucket, 8 bytes of hash, which LZW expands)
	StreamRecordMul    int // 2: a record sent over TCP (anti-entropy) costs this many RecordBytes
	// PushPullRecordBytes charges each push-pull side this many bytes per record in the
	// catalog (0: the design, where a steady cluster swaps summaries only). Tier 1
	// measures steady-state push-pull traffic of about 17, 51 and 76 bytes per record
	// per side at N = 50, 100 and 200 (10 services per node), as if most of the catalog
	// were re-sent in each exchange; set about 80 to see what that costs at scale.
	PushPullRecordBytes float64

	// Memory an agent holds per member and per catalog record it knows (bytes), and a
	// fixed base: fitted to tier 1's heap per node at N = 20–200 with 2 and 10 services.
	MemPerMember int // 500
	MemPerRecord int // 700
	MemBase      int // 350000
}

// DefaultParams returns rumor's LAN parameters, with gossip's eager path.
func DefaultParams() Params {
	return Params{
		ProbeInterval: time.Second, IndirectChecks: 3, SuspicionMult: 4, SuspicionMaxTimeoutMult: 6,
		GossipInterval: 200 * time.Millisecond, GossipNodes: 3, RetransmitMult: 4, RecordRetransmitMult: 2,
		PacketBytes: 1400, PushPullInterval: 10 * time.Second,
		EagerAllBelow: 64, EagerForward: true, EagerDelay: 5 * time.Millisecond,
		RecordBytes: 48, MemberMsgBytes: 50, PacketOverhead: 30,
		PingBytes: 69, AckBytes: 66, RecordWire: 49, RecordBatchWire: 17, MemberMsgWire: 44, MemberMsgBatchWire: 16,
		GossipBatchWire: 62, EagerSingleWire: 53, EagerRecordWire: 42, EagerBatchWire: 68,
		PushPullHeader: 500, NodeStateBytes: 5, SummaryBytes: 3, SummaryBucketBytes: 0, StreamRecordMul: 2,
		MemPerMember: 500, MemPerRecord: 700, MemBase: 350000,
	}
}

// summaryBuckets is rumor's catalog summary's bucket count (catalog.NumBuckets).
const summaryBuckets = 256

// pushPullBytes is one side of a push-pull at n members (n origins in the catalog).
func (p *Params) pushPullBytes(n int) float64 {
	used := summaryBuckets * (1 - math.Pow(1-1.0/summaryBuckets, float64(n))) // expected non-empty buckets
	return float64(p.PushPullHeader+n*p.NodeStateBytes+p.SummaryBytes) + float64(p.SummaryBucketBytes)*used
}

// eagerWire is what an eager message with k records costs on the wire, sent as a
// packet or over the reliable stream.
func (p *Params) eagerWire(k int, reliable bool) int {
	if k <= 1 {
		return p.EagerSingleWire
	}
	if reliable {
		return p.EagerBatchWire + k*p.RecordBatchWire
	}
	return p.EagerSingleWire + (k-1)*p.EagerRecordWire
}

// gossipWire is what a gossip packet costs on the wire: alone is the sum of its
// messages' sizes alone, batch the sum of their sizes in a compressed batch.
func (p *Params) gossipWire(alone, batch int) int {
	return min(alone, p.GossipBatchWire+batch)
}

// retransmits is memberlist's retransmitLimit: mult × ⌈log10(n+1)⌉.
func retransmits(mult, n int) int {
	return mult * int(math.Ceil(math.Log10(float64(n+1))))
}

// pushPullEvery is memberlist's pushPullScale: the interval grows with ⌈log2(N) − log2(32)⌉
// above 32 members.
func (p *Params) pushPullEvery(n int) time.Duration {
	if n <= 32 {
		return p.PushPullInterval
	}
	mult := math.Ceil(math.Log2(float64(n))-math.Log2(32)) + 1
	return time.Duration(mult) * p.PushPullInterval
}

// suspicionTimeouts are memberlist's min and max suspicion timeouts at n members.
func (p *Params) suspicionTimeouts(n int) (lo, hi time.Duration) {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	lo = time.Duration(float64(p.SuspicionMult) * scale * float64(p.ProbeInterval))
	return lo, lo * time.Duration(p.SuspicionMaxTimeoutMult)
}

// suspicionTimeout is Lifeguard's timeout after c independent confirmations, of k
// expected: it falls from hi towards lo logarithmically (memberlist's suspicion.go).
func suspicionTimeout(lo, hi time.Duration, c, k int) time.Duration {
	if k < 1 {
		return lo
	}
	frac := math.Log(float64(c)+1) / math.Log(float64(k)+1)
	t := time.Duration(float64(hi) - frac*float64(hi-lo))
	return max(t, lo)
}
