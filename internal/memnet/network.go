package memnet

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults for the zero fields of [Config].
const (
	// DefaultQueueLen is the receive queue of each node, in packets. A UDP
	// socket with memberlist's 2 MB receive buffer holds about 1,500 packets of
	// 1,400 bytes; 1,024 is of that order and far above what a healthy node
	// keeps waiting, so only a stalled reader fills it.
	DefaultQueueLen = 1024

	// DefaultBacklog is the number of accepted streams a node may have waiting
	// to be taken from StreamCh, like a listen backlog.
	DefaultBacklog = 64

	// DefaultPort is the port of every node's fake address: memberlist's own
	// default, so DefaultLANConfig's BindPort and AdvertisePort already agree.
	DefaultPort = 7946
)

// Errors returned by [Transport.DialTimeout] and [Transport.WriteTo], so tests
// can tell a simulated failure from a bug with errors.Is. A closed transport
// returns an error wrapping [net.ErrClosed].
var (
	// ErrUnreachable means no live node can be reached at the address: it is
	// down, cut off, on the other side of a partition, or was never created.
	ErrUnreachable = errors.New("memnet: host unreachable")

	// ErrRefused means the node is reachable but its stream backlog is full.
	ErrRefused = errors.New("memnet: connection refused")
)

// Link is how packets travel over one directed link, or over every link as the
// network default. The zero Link delivers every packet at once.
type Link struct {
	// Loss is the probability, in [0, 1], that a packet is dropped.
	// Default 0: no loss.
	Loss float64

	// Latency is the one-way delay of every packet. Default 0: the packet is
	// in the receiver's queue before WriteTo returns.
	Latency time.Duration

	// Jitter adds a uniformly random extra delay in [0, Jitter] to each
	// packet, so that packets sent in one order can arrive in another.
	// Default 0.
	Jitter time.Duration

	// Duplicate is the probability, in [0, 1], that a delivered packet arrives
	// twice; the copy takes its own jitter, so it may arrive first. Default 0.
	Duplicate float64

	// Bandwidth caps the link, in bytes per second: a packet waits for the
	// packets before it on the same directed link to be sent, then takes
	// len/Bandwidth to send, before its latency and jitter. Streams are not
	// limited. Default 0: unlimited.
	Bandwidth float64
}

func (l Link) validate() error {
	if math.IsNaN(l.Loss) || l.Loss < 0 || l.Loss > 1 {
		return fmt.Errorf("loss %v not in [0, 1]", l.Loss)
	}
	if l.Latency < 0 || l.Jitter < 0 || l.Jitter == math.MaxInt64 {
		return fmt.Errorf("latency %v and jitter %v must be >= 0", l.Latency, l.Jitter)
	}
	if math.IsNaN(l.Duplicate) || l.Duplicate < 0 || l.Duplicate > 1 {
		return fmt.Errorf("duplicate %v not in [0, 1]", l.Duplicate)
	}
	if math.IsNaN(l.Bandwidth) || math.IsInf(l.Bandwidth, 0) || l.Bandwidth < 0 {
		return fmt.Errorf("bandwidth %v must be a finite number >= 0", l.Bandwidth)
	}
	return nil
}

// Config configures a [Network]. The zero value is a lossless, instant network
// with the default queue sizes.
type Config struct {
	// Seed seeds the network's random source, which decides loss and jitter.
	// Equal seeds give equal decisions for the same sequence of sends.
	// Default 0, a valid seed.
	Seed uint64

	// Link is the default for every link that has no [Network.SetLink].
	// Default: the zero Link, lossless and instant.
	Link Link

	// QueueLen is each node's receive queue, in packets; a packet arriving at a
	// full queue is dropped. Default DefaultQueueLen.
	QueueLen int

	// Backlog is each node's queue of accepted streams not yet taken from
	// StreamCh; a dial to a full backlog fails with ErrRefused.
	// Default DefaultBacklog.
	Backlog int

	// Port is the port of every node's address. Default DefaultPort.
	Port int
}

// Network is a simulated network connecting the transports it creates. Create
// it with [NewNetwork]; its methods are safe for concurrent use.
//
// Methods that name a node accept its name or its address and panic if the
// network has no such node: like httptest, a wrong argument is a bug in the
// test, and a panic points at it.
type Network struct {
	queueLen int
	backlog  int
	port     int

	mu      sync.Mutex
	rng     *rand.Rand // not safe for concurrent use: guarded by mu
	def     Link
	links   map[linkKey]Link
	byAddr  map[string]*Transport
	byName  map[string]*Transport
	all     []*Transport // every transport ever created, for Stats
	cut     map[string]bool
	parts   []partition
	streams map[*stream]struct{}
	flights map[*flight]struct{}  // delayed packets, so Shutdown can stop them
	busy    map[linkKey]time.Time // when each bandwidth-capped link is free again
}

// flight is a delayed packet waiting for its timer.
type flight struct {
	src, dst *Transport
	timer    *time.Timer
}

// linkKey names a directed link by the addresses of its ends.
type linkKey struct{ from, to string }

// partition separates two groups of addresses, in both directions.
type partition struct{ a, b map[string]bool }

// separates reports whether p lies between x and y.
func (p partition) separates(x, y string) bool {
	return (p.a[x] && p.b[y]) || (p.b[x] && p.a[y])
}

// NewNetwork returns an empty network. It panics if cfg.Link is invalid (loss
// outside [0, 1], negative latency or jitter) or a size is negative.
func NewNetwork(cfg Config) *Network {
	if err := cfg.Link.validate(); err != nil {
		panic("memnet: NewNetwork: " + err.Error())
	}
	if cfg.QueueLen < 0 || cfg.Backlog < 0 || cfg.Port < 0 || cfg.Port > 65535 {
		panic(fmt.Sprintf("memnet: NewNetwork: invalid QueueLen %d, Backlog %d or Port %d",
			cfg.QueueLen, cfg.Backlog, cfg.Port))
	}
	n := &Network{
		queueLen: cmpOr(cfg.QueueLen, DefaultQueueLen),
		backlog:  cmpOr(cfg.Backlog, DefaultBacklog),
		port:     cmpOr(cfg.Port, DefaultPort),
		// PCG takes two words; deriving the second from the seed keeps the
		// Config to one number.
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		def:     cfg.Link,
		links:   make(map[linkKey]Link),
		byAddr:  make(map[string]*Transport),
		byName:  make(map[string]*Transport),
		cut:     make(map[string]bool),
		streams: make(map[*stream]struct{}),
		flights: make(map[*flight]struct{}),
		busy:    make(map[linkKey]time.Time),
	}
	return n
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// NewTransport creates the transport of the node called name, with the next
// free address (10.0.0.1, 10.0.0.2, … at the network's port). Use it as
// memberlist.Config.Transport, with Config.Name set to the same name.
//
// A name whose transport has been shut down may be used again: the new
// transport takes over the old address, as a restarted process would, and any
// SetLink, Cut or Partition on that address still applies. It panics if name
// is empty or belongs to a transport that is still open.
func (n *Network) NewTransport(name string) *Transport {
	if name == "" {
		panic("memnet: NewTransport: empty name")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var ip net.IP
	if old, ok := n.byName[name]; ok {
		if !old.closed {
			panic(fmt.Sprintf("memnet: NewTransport: node %q already has an open transport", name))
		}
		ip = old.ip
	} else {
		if _, ok := n.byAddr[name]; ok {
			panic(fmt.Sprintf("memnet: NewTransport: name %q is another node's address", name))
		}
		// Addresses are counted through 10.0.0.0/8 from 10.0.0.1: private
		// (RFC 1918), so memberlist does not warn about a public address
		// without encryption, and room for 16 million nodes.
		seq := len(n.byAddr) + 1
		if seq >= 1<<24 {
			panic("memnet: NewTransport: address space exhausted")
		}
		ip = net.IPv4(10, byte(seq>>16), byte(seq>>8), byte(seq)).To4()
	}
	t := newTransport(n, name, ip, n.port)
	n.byName[name] = t
	n.byAddr[t.addr] = t
	n.all = append(n.all, t)
	return t
}

// SetDefaultLink sets the behaviour of every link without its own SetLink.
// It panics if l is invalid.
func (n *Network) SetDefaultLink(l Link) {
	if err := l.validate(); err != nil {
		panic("memnet: SetDefaultLink: " + err.Error())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.def = l
}

// SetLink sets the behaviour of the directed link from → to, replacing the
// network default for it. Links are directed because real paths are often
// asymmetric; call it twice for both directions. It panics if l is invalid.
func (n *Network) SetLink(from, to string, l Link) {
	if err := l.validate(); err != nil {
		panic("memnet: SetLink: " + err.Error())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links[linkKey{n.resolveLocked(from), n.resolveLocked(to)}] = l
}

// ClearLink returns the directed link from → to to the network default.
func (n *Network) ClearLink(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.links, linkKey{n.resolveLocked(from), n.resolveLocked(to)})
}

// Partition separates every node of groupA from every node of groupB in both
// directions; links within a group are unaffected. Partitions add up: calling
// it again with other groups cuts further links. Established streams across
// the partition are closed. It panics if a node is in both groups.
func (n *Network) Partition(groupA, groupB []string) {
	n.sever(func() {
		p := partition{a: make(map[string]bool), b: make(map[string]bool)}
		for _, node := range groupA {
			p.a[n.resolveLocked(node)] = true
		}
		for _, node := range groupB {
			addr := n.resolveLocked(node)
			if p.a[addr] {
				panic(fmt.Sprintf("memnet: Partition: node %q is in both groups", node))
			}
			p.b[addr] = true
		}
		n.parts = append(n.parts, p)
	})
}

// Heal removes every partition. Cuts stay until Restore: a cut models one
// node's link going away, a partition the network splitting, and a test may
// want to undo one but not the other.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.parts = nil
}

// Cut isolates node from every other node, in both directions, while it keeps
// running: its packets and dials fail as across a partition. Established
// streams to and from it are closed.
func (n *Network) Cut(node string) {
	n.sever(func() { n.cut[n.resolveLocked(node)] = true })
}

// Restore undoes Cut.
func (n *Network) Restore(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, n.resolveLocked(node))
}

// SetDown marks node as crashed (true) or back up (false). A down node drops
// everything sent to or from it, its dials fail and its streams are closed;
// unlike Shutdown it can come back, and memberlist above it keeps running,
// which is how a test simulates a host that vanishes from the network. A
// transport that has been shut down stays down.
func (n *Network) SetDown(node string, down bool) {
	n.sever(func() { n.byAddr[n.resolveLocked(node)].down = down })
}

// Close shuts down every transport of the network and stops the timers of
// packets still in flight, counting them as dropped, so that nothing of the
// network runs after it returns. It is idempotent; a test can defer it or
// pass it to t.Cleanup (inside the bubble, if the network lives in one).
func (n *Network) Close() {
	n.mu.Lock()
	ts := make([]*Transport, 0, len(n.byAddr))
	for _, t := range n.byAddr {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	for _, t := range ts {
		n.shutdown(t)
	}
}

// sever applies a change that may separate nodes, under the lock, and then
// closes the streams it severed. A panic in change (an unknown node) leaves
// the lock released.
func (n *Network) sever(change func()) {
	doomed := func() []*stream {
		n.mu.Lock()
		defer n.mu.Unlock()
		change()
		return n.severedStreamsLocked()
	}()
	closeStreams(doomed)
}

// Stats returns the counters of every transport the network has created,
// added up, including transports that have since been shut down.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	all := append([]*Transport(nil), n.all...)
	n.mu.Unlock()
	var s Stats
	for _, t := range all {
		s.add(t.Stats())
	}
	return s
}

// resolveLocked maps a node name or address to the address.
func (n *Network) resolveLocked(node string) string {
	if _, ok := n.byAddr[node]; ok {
		return node
	}
	if t, ok := n.byName[node]; ok {
		return t.addr
	}
	panic(fmt.Sprintf("memnet: unknown node %q", node))
}

// linkLocked returns the behaviour of the directed link from → to.
func (n *Network) linkLocked(from, to string) Link {
	if l, ok := n.links[linkKey{from, to}]; ok {
		return l
	}
	return n.def
}

// pathLocked reports whether src can reach dst now, and if not, the drop
// reason to count. dst may be nil (no node at the address). When inFlight is
// set the packet has already left src, so src being down no longer matters.
func (n *Network) pathLocked(src, dst *Transport, inFlight bool) (DropReason, bool) {
	switch {
	case dst == nil || dst.closed || dst.down:
		return DropDown, false
	case !inFlight && (src.closed || src.down):
		return DropDown, false
	case n.separatedLocked(src.addr, dst.addr):
		return DropPartition, false
	}
	return 0, true
}

// separatedLocked reports whether a cut or a partition lies between x and y.
func (n *Network) separatedLocked(x, y string) bool {
	if x == y {
		return false // a node always reaches itself, as over loopback
	}
	if n.cut[x] || n.cut[y] {
		return true
	}
	for _, p := range n.parts {
		if p.separates(x, y) {
			return true
		}
	}
	return false
}

// severedStreamsLocked removes and returns the streams whose ends can no
// longer reach each other. The caller closes them after unlocking, because
// closing a stream takes the network lock to unregister it.
func (n *Network) severedStreamsLocked() []*stream {
	var doomed []*stream
	for s := range n.streams {
		if _, ok := n.pathLocked(s.dialer, s.listener, false); !ok {
			delete(n.streams, s)
			doomed = append(doomed, s)
		}
	}
	return doomed
}

// streamsOfLocked removes and returns the streams with an end at t.
func (n *Network) streamsOfLocked(t *Transport) []*stream {
	var doomed []*stream
	for s := range n.streams {
		if s.dialer == t || s.listener == t {
			delete(n.streams, s)
			doomed = append(doomed, s)
		}
	}
	return doomed
}

func closeStreams(ss []*stream) {
	for _, s := range ss {
		s.close()
	}
}

// send is the packet path of Transport.WriteToAddress. It never blocks: the
// decision is made under the lock, and delivery either happens now (a
// non-blocking channel send) or from a timer.
func (n *Network) send(src *Transport, b []byte, addr string) error {
	src.stats.packetsSent.Add(1)
	src.stats.bytesSent.Add(uint64(len(b)))

	n.mu.Lock()
	if src.closed {
		n.mu.Unlock()
		src.stats.drop(DropDown)
		return fmt.Errorf("memnet: write to %s: %w", addr, net.ErrClosed)
	}
	dst := n.byAddr[addr]
	if reason, ok := n.pathLocked(src, dst, false); !ok {
		n.mu.Unlock()
		src.stats.drop(reason)
		return nil // UDP does not report loss
	}
	l := n.linkLocked(src.addr, dst.addr)
	if l.Loss >= 1 || (l.Loss > 0 && n.rng.Float64() < l.Loss) {
		n.mu.Unlock()
		src.stats.drop(DropLoss)
		return nil
	}
	// Bandwidth: the packet is sent once the link is free, and takes its size
	// over the rate; the queueing delay adds to latency and jitter.
	var wait time.Duration
	if l.Bandwidth > 0 {
		k := linkKey{src.addr, dst.addr}
		now := time.Now()
		start := n.busy[k]
		if start.Before(now) {
			start = now
		}
		end := start.Add(time.Duration(float64(len(b)) / l.Bandwidth * float64(time.Second)))
		n.busy[k] = end
		wait = end.Sub(now)
	}
	copies := 1
	if l.Duplicate >= 1 || (l.Duplicate > 0 && n.rng.Float64() < l.Duplicate) {
		copies = 2
		src.stats.duplicated.Add(1)
	}
	for range copies {
		delay := wait + l.Latency
		if l.Jitter > 0 {
			delay += time.Duration(n.rng.Int64N(int64(l.Jitter) + 1))
		}
		// The caller may reuse b once WriteTo returns.
		n.dispatchLocked(src, dst, append([]byte(nil), b...), delay)
	}
	n.mu.Unlock()
	return nil
}

// dispatchLocked delivers buf now, or after delay from its own timer.
func (n *Network) dispatchLocked(src, dst *Transport, buf []byte, delay time.Duration) {
	if delay <= 0 {
		n.deliverLocked(src, dst, buf)
		return
	}
	// One timer per packet: packets with different delays reorder, and
	// inside a synctest bubble the timer runs on fake time. The timer is
	// set while the lock is held, so the callback, which takes the lock
	// first, always finds f.timer set.
	f := &flight{src: src, dst: dst}
	n.flights[f] = struct{}{}
	f.timer = time.AfterFunc(delay, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if _, ok := n.flights[f]; !ok {
			return // stopped by shutdown, which counted it
		}
		delete(n.flights, f)
		n.deliverLocked(src, dst, buf)
	})
}

// deliverLocked puts a packet into dst's queue if the path is still open and
// the queue has room. Holding the lock across the (non-blocking) channel send
// means a SetDown that returned has no delivery racing past it.
func (n *Network) deliverLocked(src, dst *Transport, buf []byte) {
	if reason, ok := n.pathLocked(src, dst, true); !ok {
		src.stats.drop(reason)
		return
	}
	p := &memberlist.Packet{Buf: buf, From: src.udpAddr, Timestamp: time.Now()}
	select {
	case dst.packetCh <- p:
		dst.stats.packetsReceived.Add(1)
		dst.stats.bytesReceived.Add(uint64(len(buf)))
	default:
		src.stats.drop(DropQueueFull)
	}
}

// dial is the stream path of Transport.DialAddressTimeout. It fails at once
// when the peer cannot be reached: waiting out the timeout would only slow
// tests down, and memberlist treats both the same way.
func (n *Network) dial(src *Transport, addr string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if src.closed {
		return nil, fmt.Errorf("memnet: dial %s: %w", addr, net.ErrClosed)
	}
	dst := n.byAddr[addr]
	if _, ok := n.pathLocked(src, dst, false); !ok {
		src.stats.dialsFailed.Add(1)
		return nil, fmt.Errorf("memnet: dial %s: %w", addr, ErrUnreachable)
	}
	s := newStream(src, dst)
	select {
	case dst.streamCh <- s.listenerEnd:
	default:
		src.stats.dialsFailed.Add(1)
		s.close()
		return nil, fmt.Errorf("memnet: dial %s: %w", addr, ErrRefused)
	}
	n.streams[s] = struct{}{}
	src.stats.dials.Add(1)
	return s.dialerEnd, nil
}

// shutdown closes t for good: it closes t's streams and stops the timers of
// packets on their way to t, which could never be delivered. Packets t sent
// are already on the wire and still arrive.
//
// It does not close t's channels: memberlist shuts its transport down before
// it stops the goroutines that read them, and a closed channel would feed
// them nil packets.
func (n *Network) shutdown(t *Transport) {
	n.mu.Lock()
	t.closed = true
	for f := range n.flights {
		if f.dst == t {
			f.timer.Stop()
			delete(n.flights, f)
			f.src.stats.drop(DropDown)
		}
	}
	doomed := n.streamsOfLocked(t)
	n.mu.Unlock()
	closeStreams(doomed)
}

// forget unregisters a stream one of whose ends was closed by its user.
func (n *Network) forget(s *stream) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.streams, s)
}
