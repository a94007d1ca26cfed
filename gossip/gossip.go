package gossip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/rumor-sd/rumor/catalog"
)

// Store is what gossip needs of the catalog. *catalog.Catalog implements it; calls may
// run concurrently and none blocks for long.
type Store interface {
	Apply(recs ...catalog.Record) ([]catalog.Record, error)
	SetLiveness(node string, l catalog.Liveness)
	Summary() catalog.Summary
	Digest(buckets []int) catalog.Digest
	Missing(peer catalog.Digest) ([]catalog.Record, []string)
	Nodes(f catalog.Filter) []catalog.NodeEntry
	KeyVersions(origins []string) []catalog.OriginKeys
	MissingKeys(peer []catalog.OriginKeys) []catalog.Record
	// OriginVersion is the newest version held of origin; zero if none (force-leave
	// of an origin membership never reported).
	OriginVersion(origin string) catalog.Version
}

var _ Store = (*catalog.Catalog)(nil)

// Member is one node of the pool as this node sees it.
type Member struct {
	Name       string
	Addr       netip.AddrPort
	State      catalog.Liveness
	Since      time.Time              // when State last changed, as seen here
	Coordinate *coordinate.Coordinate // network coordinate; nil if unknown
	RTT        time.Duration          // estimated round trip from here; 0 if unknown
}

// Sizes of what gossip sends.
const (
	// chunkSize bounds one reliable records message, so a full catalog streams to a
	// joining node in pieces instead of one huge allocation on each side.
	chunkSize = 64 << 10
	// inboxSize bounds the messages waiting for the worker; beyond it they are dropped
	// and counted (anti-entropy repairs what a dropped fast-path message carried).
	inboxSize = 4096
	// inboxMaxBytes bounds the bytes waiting for the worker too: a reliable message can
	// be large, and 4096 of them must not cost gigabytes.
	inboxMaxBytes = 64 << 20
	// largeFanout is how many random peers a record too large for a gossip packet is
	// sent to over TCP; they forward it the same way, so it spreads like gossip.
	largeFanout = 3
)

// Gossip runs one node's membership and catalog dissemination. Create it with New,
// stop it with Leave and/or Shutdown.
type Gossip struct {
	cfg     Config
	store   Store
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	coords  *coordinate.Client
	keyring *memberlist.Keyring // nil without encryption
	metrics *metrics
	inbox   chan inboxMsg
	// mlLabels route memberlist's go-metrics to this node's registry; unrouteMetrics
	// disconnects them at Shutdown.
	mlLabels       []gometrics.Label
	unrouteMetrics func()
	keyq           keyQueries // pool-wide keyring operations in flight and answered

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{} // closed once g.ml is set

	mu        sync.Mutex
	members   map[string]*memberState // every node seen, by name
	reconnect map[string]*reconnectState
	leaving   map[string]time.Time   // nodes that announced a graceful leave
	unknown   map[string]time.Time   // origins in the catalog memberlist never reported, since when (unknown.go)
	parked    map[string][]parkedMsg // messages from senders not yet reported, by sender (park.go)

	unknownGrace time.Duration // how long an unknown origin stays alive (unknown.go)

	shutdownOnce sync.Once
	shutdownErr  error

	// The eager path (eager.go): nil when disabled. eagerIn is set by the worker
	// while it applies an eager message, and read only on the worker.
	eager   *eager
	eagerIn *eagerIn
	// transport is memberlist's transport (set before Create); rawPackets says the
	// eager path may write its packets to it directly (eager.go). boundTransport:
	// New bound it, so New closes it if memberlist.Create fails.
	transport      memberlist.NodeAwareTransport
	rawPackets     bool
	boundTransport bool
	// batch sends the eager path's direct packets in one system call (batchsend.go);
	// nil where it does not apply. Closed by Shutdown after the eager loop stopped.
	batch *batchConn
	// Integrity (see docs/ARCHITECTURE.md, "Integrity").
	errLog       rateLog                   // repeated drop and invalid-record lines, rate-limited
	futureLogged atomic.Bool               // the first record refused for a future generation was logged
	inboxBytes   atomic.Int64              // bytes of the messages in inbox (bounded by inboxMaxBytes)
	parkedBytes  int                       // bytes of the parked messages, under mu (bounded by parkMaxBytes)
	ids          map[string]string         // members' node IDs from their meta, under mu (identity.go)
	nameConflict error                     // the last refusal of this node's own name, under mu (identity.go)
	moved        map[string]netip.AddrPort // old addresses of nodes that moved, under mu (identity.go)
}

// memberState is what we remember of a node beyond memberlist's view.
type memberState struct {
	addr  netip.AddrPort
	state catalog.Liveness
	since time.Time
	coord *coordinate.Coordinate
}

// inboxMsg is a message handed from a memberlist callback to the worker.
type inboxMsg struct {
	data     []byte
	join     bool      // push-pull state received during a join
	pushPull bool      // push-pull state (not a message over the reliable path)
	unparked bool      // handled once already, parked until its sender was reported (park.go)
	at       time.Time // when memberlist handed a packet's message to us (NotifyMsg); zero otherwise
}

// New starts gossip: it binds (or uses cfg.Transport), starts memberlist and the
// worker, reconnect and liveness goroutines. It does not join anyone: call Join.
func New(cfg Config) (*Gossip, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	coords, err := coordinate.NewClient(coordinate.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("gossip: coordinates: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	mlLabels, unroute, err := memberlistMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gossip{
		cfg:       cfg,
		store:     cfg.Store,
		coords:    coords,
		metrics:   m,
		inbox:     make(chan inboxMsg, inboxSize),
		ctx:       ctx,
		cancel:    cancel,
		members:   make(map[string]*memberState),
		reconnect: make(map[string]*reconnectState),
		leaving:   make(map[string]time.Time),

		mlLabels:       mlLabels,
		unrouteMetrics: unroute,
		keyq:           keyQueries{pending: map[uint64]*keyQuery{}, answered: map[string]time.Time{}},
		unknown:        make(map[string]time.Time),
		ready:          make(chan struct{}),
		ids:            make(map[string]string),
		moved:          make(map[string]netip.AddrPort),
	}
	mc, err := g.memberlistConfig()
	if err != nil {
		cancel()
		unroute()
		return nil, err
	}
	g.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return g.numMembers() },
		RetransmitMult: recordRetransmitMult * mc.RetransmitMult,
	}
	if !cfg.Eager.Disabled {
		if g.eager, err = newEager(g, cfg.Eager, cfg.Registerer); err != nil {
			cancel()
			unroute()
			if g.cfg.WrapTransport != nil || g.boundTransport {
				_ = mc.Transport.Shutdown() // ours: memberlist never took it
			}
			return nil, err
		}
	}
	if g.eager != nil && g.rawPackets && g.boundTransport {
		if g.batch, err = openBatchConn(mc.BindAddr); err != nil {
			// Not fatal: the eager path sends one packet at a time instead.
			g.cfg.Logger.Debug("gossip: eager packets go one at a time", "err", err)
		}
	}
	// The worker must run before memberlist can call us.
	g.wg.Add(1)
	go g.worker()
	ml, err := memberlist.Create(mc)
	if err != nil {
		cancel()
		g.wg.Wait()
		unroute()
		if g.cfg.WrapTransport != nil || g.boundTransport {
			_ = mc.Transport.Shutdown() // ours (bound here or by wrapTransport): memberlist did not take it
		}
		if g.batch != nil {
			_ = g.batch.close()
		}
		return nil, fmt.Errorf("gossip: start memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	g.mu.Lock()
	g.ml = ml
	g.mu.Unlock()
	close(g.ready) // the worker may now answer messages, which needs g.ml
	g.warnUnencrypted()
	g.unknownGrace = g.cfg.UnknownOriginGrace
	if g.unknownGrace <= 0 {
		g.unknownGrace = unknownGraceMult * mc.PushPullInterval
	}
	if g.eager != nil {
		g.wg.Add(1)
		go g.eager.loop()
	}
	g.wg.Add(3)
	go g.reconnectLoop()
	go g.livenessLoop()
	go g.unknownOriginsLoop()
	return g, nil
}

// warnUnencrypted says, at start, that an unencrypted pool reachable from other hosts
// is unauthenticated: anyone who can send it a packet can forge records and leaves.
func (g *Gossip) warnUnencrypted() {
	if len(g.cfg.Keys) > 0 || g.cfg.Transport != nil {
		return
	}
	if ip := net.ParseIP(g.cfg.BindAddr); ip != nil && ip.IsLoopback() {
		return
	}
	g.cfg.Logger.Warn("gossip: unencrypted and bound to a non-loopback address: gossip is unauthenticated, "+
		"and anyone who can reach this port can forge records or membership; give every agent the same --encrypt key "+
		"(rumor keygen)", "bind", g.cfg.BindAddr)
}

func (g *Gossip) numMembers() int {
	g.mu.Lock()
	ml := g.ml
	g.mu.Unlock()
	if ml == nil {
		return 1
	}
	return ml.NumMembers()
}

// memberlistConfig builds memberlist's config from ours.
func (g *Gossip) memberlistConfig() (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch g.cfg.Profile {
	case "wan":
		mc = memberlist.DefaultWANConfig()
	case "local":
		mc = memberlist.DefaultLocalConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	// Push-pull carries only our summary's hash (plus memberlist's member list), so it
	// can run three times as often as memberlist's default: it is what repairs records
	// the fast path missed, and it bounds how stale a replica can be.
	mc.PushPullInterval /= pushPullSpeedup
	mc.Name = g.cfg.NodeName
	mc.BindAddr = g.cfg.BindAddr
	mc.BindPort = g.cfg.BindPort
	mc.AdvertiseAddr = g.cfg.AdvertiseAddr
	mc.AdvertisePort = g.cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = g.cfg.BindPort
	}
	if g.cfg.Transport != nil {
		mc.Transport = g.cfg.Transport
	}
	d := &delegate{g: g}
	mc.Delegate = d
	mc.Events = d
	mc.Ping = d
	mc.Conflict = d
	mc.Alive = d // identity.go
	mc.Merge = d
	mc.DeadNodeReclaimTime = deadNodeReclaim
	mc.LogOutput = newLogBridge(g.cfg.Logger, g.metrics)
	mc.MetricLabels = g.mlLabels
	if len(g.cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(g.cfg.Keys, g.cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: keyring: %w", err)
		}
		mc.Keyring = kr
		g.keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	if g.cfg.MemberlistHook != nil {
		g.cfg.MemberlistHook(mc)
	}
	// After the hook, so that the transport binds where the hook says.
	if g.cfg.WrapTransport != nil {
		if err := wrapTransport(mc, g.cfg.WrapTransport); err != nil {
			return nil, err
		}
	}
	// Bound here rather than by memberlist.Create, so that the eager path can write
	// its packets to the transport itself (eager.go, rawPackets).
	if mc.Transport == nil {
		nt, err := bindNetTransport(mc)
		if err != nil {
			return nil, err
		}
		mc.Transport = nt
		g.boundTransport = true
	}
	tr, ok := mc.Transport.(memberlist.NodeAwareTransport)
	if !ok {
		if g.boundTransport {
			_ = mc.Transport.Shutdown()
		}
		return nil, fmt.Errorf("gossip: transport %T is not node-aware", mc.Transport)
	}
	g.transport = tr
	// Plain packets only where memberlist would send them plain: no encryption, no
	// label (both are memberlist's framing, applied in its own send path).
	g.rawPackets = mc.Keyring == nil && mc.Label == ""
	return mc, nil
}

// Join contacts the given addresses ("ip:port", "host:port", or "ip" for the default
// port) and joins their pool. It returns how many it reached; an error only if none.
func (g *Gossip) Join(ctx context.Context, addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, errors.New("gossip: join: no addresses given")
	}
	type result struct {
		n   int
		err error
	}
	g.mu.Lock()
	g.nameConflict = nil
	g.mu.Unlock()
	done := make(chan result, 1)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		n, err := g.ml.Join(addrs)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.n == 0 && r.err != nil {
			g.mu.Lock()
			conflict := g.nameConflict
			g.mu.Unlock()
			if conflict != nil {
				return 0, fmt.Errorf("gossip: join %s: %w", strings.Join(addrs, ", "), conflict)
			}
			return 0, fmt.Errorf("gossip: join %s: %w", strings.Join(addrs, ", "), explainJoinError(r.err))
		}
		return r.n, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("gossip: join %s: %w", strings.Join(addrs, ", "), ctx.Err())
	}
}

// explainJoinError adds what to do to memberlist's terse errors.
func explainJoinError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "decrypt") || strings.Contains(msg, "Encryption") || strings.Contains(msg, "encryption"):
		return fmt.Errorf("the peer's data could not be decrypted with our key, or it expects none: "+
			"every agent must use the same --encrypt key: %w", err)
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("nothing listens there: is a rumor agent running at that address and gossip port? %w", err)
	case strings.Contains(msg, "i/o timeout"):
		return fmt.Errorf("no answer: check the address and that the gossip port (TCP and UDP) is open: %w", err)
	}
	return err
}

// Publish broadcasts this node's own records, which the caller has already applied to
// the Store. They go at once on the eager path (eager.go), and also on the piggyback
// path, the repair for what the eager path misses: records that fit a gossip packet
// ride on SWIM's messages; a larger one is sent over TCP to a few random peers, who
// pass it on the same way.
func (g *Gossip) Publish(recs []catalog.Record) {
	if g.eager != nil {
		g.eager.publish(recs)
	}
	for i := range recs {
		g.queueBroadcast(&recs[i])
	}
}

// enqueue passes on a record new to this node; only applyRecords calls it, on the
// worker. A record that came on the eager path is forwarded there if its sender asked
// (and not piggybacked: the origin's piggyback and anti-entropy are the repair path);
// any other is queued for the piggyback path.
func (g *Gossip) enqueue(r *catalog.Record) {
	if in := g.eagerIn; in != nil && g.eager != nil {
		if in.forward {
			g.eager.forward(r, in.sender)
		}
		return
	}
	g.queueBroadcast(r)
}

// queueBroadcast queues one record for the piggyback path, replacing a queued older
// version of the same origin/key.
func (g *Gossip) queueBroadcast(r *catalog.Record) {
	msg := encodeRecords([]catalog.Record{*r})
	if len(msg) > maxBroadcastSize {
		g.sendLarge(msg)
		return
	}
	g.metrics.broadcastsQueued.Inc()
	g.queue.QueueBroadcast(&recordBroadcast{name: r.Origin + "\x00" + r.Key.String(), msg: msg})
}

// recordRetransmitMult multiplies memberlist's retransmit factor for records: the
// transmits of a broadcast go to random peers, and with memberlist's factor alone a
// burst of registrations left a record unseen by some node (until anti-entropy) in
// about one run in ten of a 3-node test with no packet loss at all. Records change
// rarely, so sending each a few more times costs little.
const recordRetransmitMult = 2

// pushPullSpeedup divides memberlist's push-pull interval (LAN: 30 s → 10 s).
const pushPullSpeedup = 3

// maxBroadcastSize is the largest records message that still fits a gossip packet
// with memberlist's framing (UDPBufferSize 1400 minus compound-message overhead).
const maxBroadcastSize = 1200

// sendLarge sends a records message too big for a packet to a few random peers over
// memberlist's reliable stream, in the background.
func (g *Gossip) sendLarge(msg []byte) {
	var peers []string
	g.mu.Lock()
	for name, ms := range g.members {
		if name != g.cfg.NodeName && ms.state == catalog.LivenessAlive {
			peers = append(peers, name)
		}
	}
	g.mu.Unlock()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, name := range peers[:min(largeFanout, len(peers))] {
		if to := g.nodeByName(name); to != nil {
			g.sendReliable(to, msg, "records")
		}
	}
}

// sendReliable sends msg to a node over TCP in a tracked goroutine, so callbacks and
// the worker never wait on the network.
func (g *Gossip) sendReliable(to *memberlist.Node, msg []byte, kind string) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if g.ctx.Err() != nil {
			return
		}
		if err := g.ml.SendReliable(to, msg); err != nil {
			g.metrics.sendFailed.WithLabelValues(kind).Inc()
			g.cfg.Logger.Debug("gossip: send failed", "to", to.Name, "kind", kind, "err", err)
			return
		}
		g.metrics.sent.WithLabelValues(kind).Inc()
		g.metrics.sentBytes.WithLabelValues(kind).Add(float64(len(msg)))
	}()
}

// nodeByName returns a node to send to by name, or nil if it was never seen. It looks
// in our own member map, not memberlist's: right after a partition heals, memberlist
// may still list a peer as dead while that peer's push-pull summary has arrived, and
// the answer must go out at once.
func (g *Gossip) nodeByName(name string) *memberlist.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.members[name]
	if ms == nil || !ms.addr.IsValid() {
		return nil
	}
	return &memberlist.Node{Name: name, Addr: ms.addr.Addr().AsSlice(), Port: ms.addr.Port()}
}

// Members returns every node seen, this one included, sorted by name.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for name, ms := range g.members {
		m := Member{Name: name, Addr: ms.addr, State: ms.state, Since: ms.since}
		if ms.coord != nil {
			m.Coordinate = ms.coord.Clone()
			if name != g.cfg.NodeName {
				m.RTT = g.coords.DistanceTo(ms.coord)
			}
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Liveness returns a member's state as Members reports it; ok is false for a node
// this node never saw. It is Members for one name, without copying and sorting the
// member list or estimating round-trip times: callers that ask about one node at a
// time (mDNS's join loop, every second for every peer on the link) cost O(1).
func (g *Gossip) Liveness(name string) (state catalog.Liveness, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.members[name]
	if ms == nil {
		return 0, false
	}
	return ms.state, true
}

// LocalAddr returns the address this node advertises for gossip.
func (g *Gossip) LocalAddr() netip.AddrPort {
	n := g.ml.LocalNode()
	return addrPort(n.Addr, n.Port)
}

// Coordinate returns this node's network coordinate.
func (g *Gossip) Coordinate() *coordinate.Coordinate { return g.coords.GetCoordinate() }

func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port)
}

// leavePropagateDelay is how long Leave keeps memberlist running after its leave
// message is queued: serf's default, several gossip intervals on every profile.
const leavePropagateDelay = time.Second

// Leave tells the pool this node is leaving, so peers mark it left (its records are
// dropped at once) rather than failed, then shuts down. It waits at most until ctx
// ends for the leave message to spread.
func (g *Gossip) Leave(ctx context.Context) error {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	g.announceLeave(ctx, g.cfg.NodeName, timeout/2)
	// The intent also rides the piggyback beside memberlist's own leave message, so a
	// peer the direct send missed (a TCP timeout under load) still learns it in time.
	g.queueLeaveIntent(g.cfg.NodeName)
	err := g.ml.Leave(timeout / 2)
	// memberlist's Leave returns once its leave message has been handed to the
	// gossip that sends it, not once it was sent: shutting down at once closed the
	// socket under that send often enough (peers then took the whole suspicion
	// timeout, ~20 s, to see the node go). Stay up a moment so it goes out and
	// probes are still answered, as serf's LeavePropagateDelay does.
	if err == nil {
		wait := time.NewTimer(leavePropagateDelay)
		select {
		case <-wait.C:
		case <-ctx.Done():
		}
		wait.Stop()
	}
	if serr := g.Shutdown(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// announceLeave tells every live member, over TCP and in parallel, that the named
// node (this one, or a failed one being forced out) is leaving, waiting at most
// timeout: memberlist's own leave message looks like a death to its event delegate,
// and peers must drop the node's records rather than keep them critical.
func (g *Gossip) announceLeave(ctx context.Context, name string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := encodeLeave(name)
	var wg sync.WaitGroup
	for _, n := range g.ml.Members() {
		if n.Name == g.cfg.NodeName || n.Name == name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.cfg.Logger.Debug("gossip: leave announcement failed", "to", n.Name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// The stragglers finish on their own (SendReliable has memberlist's TCP timeout).
	}
}

// onLeaveIntent records that a node announced its leave. If its death was already
// reported (the announcement raced the leave), it is corrected to left.
func (g *Gossip) onLeaveIntent(name string) {
	if name == g.cfg.NodeName {
		return
	}
	g.mu.Lock()
	ms := g.members[name]
	if ms == nil {
		// Not a member: a leave intent must not create state for a name membership
		// never reported (a forged packet could name any number of them). If the
		// catalog holds such an origin (a force-leave elsewhere), it is dropped: an
		// unreported origin is dropped after a grace anyway (unknown.go).
		g.mu.Unlock()
		if g.store.OriginVersion(name) != (catalog.Version{}) {
			g.store.SetLiveness(name, catalog.LivenessLeft)
			return
		}
		g.drop("unknown_leave", errors.New(name))
		return
	}
	_, known := g.leaving[name]
	g.leaving[name] = time.Now()
	failed := ms.state == catalog.LivenessFailed
	addr := ms.addr
	g.mu.Unlock()
	if !known {
		// Pass it on, once, the way memberlist passes on the leave message itself:
		// the leaver's direct send to us may have been the only one that arrived.
		// A forged intent gains nothing by this (it could be sent to everyone
		// directly, and only a departure membership reports within
		// LeaveIntentTTL is taken for a leave).
		g.queueLeaveIntent(name)
	}
	if failed {
		g.setLiveness(name, addr, catalog.LivenessLeft)
	}
}

// queueLeaveIntent queues name's leave intent on the piggyback path, replacing a
// queued copy.
func (g *Gossip) queueLeaveIntent(name string) {
	g.queue.QueueBroadcast(&recordBroadcast{name: "\x00leave\x00" + name, msg: encodeLeave(name)})
}

// leftGracefully reports, under g.mu, whether name announced its leave within
// LeaveIntentTTL; an older intent is forgotten, so a forged leave cannot make a later
// crash look graceful.
func (g *Gossip) leftGracefully(name string, now time.Time) bool {
	at, ok := g.leaving[name]
	if ok && now.Sub(at) >= g.cfg.LeaveIntentTTL {
		delete(g.leaving, name)
		return false
	}
	return ok
}

// expireLeaveIntents forgets leave intents older than LeaveIntentTTL.
func (g *Gossip) expireLeaveIntents(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name := range g.leaving {
		g.leftGracefully(name, now)
	}
}

// Shutdown stops memberlist and every goroutine gossip started, without a goodbye
// (peers will see this node fail). It is idempotent.
func (g *Gossip) Shutdown() error {
	g.shutdownOnce.Do(func() {
		g.cancel()
		if err := g.ml.Shutdown(); err != nil {
			g.shutdownErr = fmt.Errorf("gossip: shutdown: %w", err)
		}
		g.wg.Wait()
		if g.batch != nil {
			_ = g.batch.close() // after the eager loop, its one user, stopped
		}
		g.queue.Reset()
		g.unrouteMetrics()
	})
	return g.shutdownErr
}

// hostPort formats a node's address for Join.
func hostPort(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// RTTsFrom estimates, from the network coordinates in members (as Members returns
// them), the round-trip time from the member named from to every member with a
// coordinate of the same dimensionality, from itself included, by name. ok is false
// when from is not among members or has no coordinate. The estimate is serf's
// Coordinate.DistanceTo: the same a Consul agent computes for ?near=.
func RTTsFrom(members []Member, from string) (rtts map[string]time.Duration, ok bool) {
	var src *coordinate.Coordinate
	for i := range members {
		if members[i].Name == from {
			src = members[i].Coordinate
			break
		}
	}
	if src == nil {
		return nil, false
	}
	rtts = make(map[string]time.Duration, len(members))
	for i := range members {
		if c := members[i].Coordinate; c != nil && src.IsCompatibleWith(c) {
			rtts[members[i].Name] = src.DistanceTo(c)
		}
	}
	return rtts, true
}
