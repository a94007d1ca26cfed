package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/internal/memnet"
	"github.com/rumor-sd/rumor/sim/scenario"
)

// RealOptions tunes RunReal. The zero value is the LAN defaults.
type RealOptions struct {
	// Progress receives one line per phase; nil discards.
	Progress io.Writer
	// MemberlistHook, if set, adjusts every node's memberlist config (what-if runs).
	MemberlistHook func(*memberlist.Config)
	// WrapTransport, if set, wraps every node's transport (gossip.Config's
	// WrapTransport): tests count what is sent by message type with it.
	WrapTransport func(memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error)
	// PublishAtStart has the initial nodes publish their records through gossip, all
	// at once, and waits for every catalog to hold them, instead of filling the
	// catalogs directly (realRun.start).
	PublishAtStart bool
	// Measuring, if set, is called once when the measured part of the scenario starts.
	Measuring func()
	// ConvergeTimeout bounds each wait of the start (realRun.start: membership,
	// catalogs with PublishAtStart, gossip quiet), in the run's own time. Default 10
	// minutes.
	ConvergeTimeout time.Duration
}

// RunReal runs sc with real gossip nodes (package gossip over memberlist, each with
// its own catalog) over memnet's simulated network, and measures it.
//
// It reads time from the time package only, so inside a testing/synctest bubble the
// whole scenario runs in virtual time (seconds of protocol in milliseconds), and
// outside one it runs in real time. It stops every node before returning; inside a
// bubble the caller should let bubble time pass afterwards, since memberlist's
// Shutdown does not wait for probes in flight.
func RunReal(ctx context.Context, sc scenario.Scenario, opt RealOptions) (scenario.Report, error) {
	wallStart := time.Now()
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	if opt.ConvergeTimeout <= 0 {
		opt.ConvergeTimeout = 10 * time.Minute
	}
	r := &realRun{
		sc:  sc,
		opt: opt,
		rng: rand.New(rand.NewPCG(sc.Seed, 0x5eed)),
		net: memnet.NewNetwork(memnet.Config{Seed: sc.Seed, QueueLen: 4096,
			Link: startLink(sc.Link)}),
		tr:   newTracker(),
		link: memLink(sc.Link),
	}
	defer r.close()
	rep, err := r.run(ctx)
	rep.Wall = time.Since(wallStart)
	return rep, err
}

// pushPullScale is memberlist's push-pull interval at n members: the configured one,
// times 1 + ⌈log2(n) − log2(32)⌉ above 32 members.
func pushPullScale(interval time.Duration, n int) time.Duration {
	if n <= 32 {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(32))+1) * interval
}

type realRun struct {
	sc    scenario.Scenario
	opt   RealOptions
	rng   *rand.Rand
	net   *memnet.Network
	tr    *tracker
	nodes []*simNode // every node ever started, in start order
	seq   int        // next node number
	regs  int        // services registered by events
	// pushPull is the push-pull interval every node's memberlist was given (gossip's,
	// after MemberlistHook), read from the first node's config.
	pushPull time.Duration
	link     memnet.Link
}

// simNode is one simulated agent: a catalog behind a recording store, and gossip.
type simNode struct {
	name  string
	id    string // the node record's ID
	cat   *catalog.Catalog
	store *recStore
	w     *catalog.Writer
	g     *gossip.Gossip
	tr    *memnet.Transport
	dead  bool
	since time.Time // started
}

// logf writes one progress line, with the scheduler's busy time so far: inside a
// synctest bubble there is no wall clock, and this is what shows which phase costs.
func (r *realRun) logf(format string, args ...any) {
	fmt.Fprintf(r.opt.Progress, "[%s n=%d busy=%.1fs] "+format+"\n",
		append([]any{r.sc.Name, r.sc.Nodes, busySeconds()}, args...)...)
}

// busySeconds is runtime/metrics' estimate of the time the process's processors
// (GOMAXPROCS) spent running Go code and collecting garbage. It counts wall time
// while busy, so on a loaded machine it exceeds the CPU time the OS gave.
func busySeconds() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/user:cpu-seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	var sum float64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindFloat64 {
			sum += v.Value.Float64()
		}
	}
	return sum
}

func (r *realRun) close() {
	for _, n := range r.nodes {
		if n.g != nil {
			_ = n.g.Shutdown()
		}
	}
	r.net.Close()
}

func (r *realRun) live() []*simNode {
	var out []*simNode
	for _, n := range r.nodes {
		if !n.dead {
			out = append(out, n)
		}
	}
	return out
}

func (r *realRun) run(ctx context.Context) (scenario.Report, error) {
	sc := r.sc
	rep := scenario.Report{Scenario: sc.Name, Tier: "real", Nodes: sc.Nodes, Seed: sc.Seed}
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)

	// The initial cluster: what is measured starts after it (see start).
	if err := r.start(ctx, &rep); err != nil {
		return rep, err
	}
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	rep.MemPerNode = float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / float64(sc.Nodes)

	if r.link != startLink(sc.Link) {
		r.net.SetDefaultLink(r.link)
	}
	t0 := time.Now()
	r.tr.setStart(t0)
	if r.opt.Measuring != nil {
		r.opt.Measuring()
	}
	stats0 := r.net.Stats()
	var nodeSecs float64 // live node-seconds, for per-node rates
	last := t0
	var change *scenario.Event
	var changeDebt float64
	events := slices.Clone(sc.Events)
	const step = 100 * time.Millisecond
	for {
		now := time.Since(t0)
		for len(events) > 0 && events[0].At <= now {
			e := events[0]
			events = events[1:]
			if e.Kind == scenario.Change {
				change = &e
				continue
			}
			if err := r.apply(ctx, e); err != nil {
				return rep, fmt.Errorf("sim: line %d (%s at %s): %w", e.Line, e.Kind, e.At, err)
			}
		}
		if now >= sc.Duration {
			break
		}
		next := sc.Duration
		if len(events) > 0 {
			next = events[0].At
		}
		if change != nil {
			next = min(next, now+step)
		}
		if err := sleep(ctx, next-now); err != nil {
			return rep, err
		}
		el := time.Since(last)
		last = time.Now()
		live := r.live()
		nodeSecs += el.Seconds() * float64(len(live))
		if change != nil && change.Period > 0 {
			changeDebt += el.Seconds() * float64(len(live)*change.Count) / change.Period.Seconds()
			for ; changeDebt >= 1; changeDebt-- {
				n := live[r.rng.IntN(len(live))]
				j := r.rng.IntN(max(1, min(change.Count, max(sc.Services, 1))))
				if err := n.publish(n.w.PutService(service(fmt.Sprintf("svc-%d", j), r.rng.IntN(1000)))); err != nil {
					return rep, err
				}
			}
		}
	}
	stats1 := r.net.Stats()
	sent := float64(stats1.BytesSent-stats0.BytesSent) + float64(stats1.StreamBytesSent-stats0.StreamBytesSent)
	if nodeSecs > 0 {
		rep.BytesPerNodeSec = sent / nodeSecs
	}
	rep.NodeHours = nodeSecs / 3600
	r.tr.report(&rep, r.nodes)
	live := r.live()
	for _, o := range live {
		for _, n := range live {
			if st, _ := o.cat.Liveness(n.name); st != catalog.LivenessAlive {
				rep.Split++
			}
		}
	}
	r.logf("done")
	return rep, nil
}

// apply runs one scripted event.
func (r *realRun) apply(ctx context.Context, e scenario.Event) error {
	live := r.live()
	switch e.Kind {
	case scenario.Register:
		for range e.Count {
			n := live[r.rng.IntN(len(live))]
			id := fmt.Sprintf("reg-%d", r.regs)
			r.regs++
			r.tr.registered(id, time.Now())
			if err := n.publish(n.w.PutService(service(id, 0))); err != nil {
				return err
			}
		}
		r.logf("t=%s registered %d services", e.At, e.Count)
	case scenario.Kill, scenario.Churn:
		k := min(e.N(len(live)), len(live)-1)
		for _, i := range r.rng.Perm(len(live))[:k] {
			r.kill(live[i])
		}
		r.logf("t=%s crashed %d nodes", e.At, k)
		if e.Kind == scenario.Churn {
			for range k {
				if _, err := r.startNode(ctx, true); err != nil {
					return err
				}
			}
			r.logf("t=%s started %d nodes", e.At, k)
		}
	case scenario.Partition:
		k := min(e.N(len(live)), len(live)-1)
		var a, b []string
		for i, n := range live {
			if i < k {
				a = append(a, n.name)
			} else {
				b = append(b, n.name)
			}
		}
		r.net.Partition(a, b)
		r.tr.partition(a, b, time.Now())
		r.logf("t=%s partitioned %d | %d", e.At, len(a), len(b))
	case scenario.Heal:
		r.net.Heal()
		r.tr.heal(time.Now())
		r.logf("t=%s healed", e.At)
	case scenario.SetLink:
		r.link = memLink(e.Link)
		r.net.SetDefaultLink(r.link)
		r.logf("t=%s link %+v", e.At, e.Link)
	case scenario.Slow:
		k := min(e.N(len(live)), len(live))
		for _, i := range r.rng.Perm(len(live))[:k] {
			s := live[i]
			l := r.link
			l.Latency += e.Delay
			for _, o := range r.nodes {
				if o != s {
					r.net.SetLink(s.name, o.name, l)
					r.net.SetLink(o.name, s.name, l)
				}
			}
		}
		r.logf("t=%s slowed %d nodes by %s", e.At, k, e.Delay)
	default:
		return fmt.Errorf("unknown event kind %q", e.Kind)
	}
	return nil
}

// startLink is the link during the start (realRun.start): the scenario's without its
// loss and duplication, which apply from the moment measurement starts. On a lossy
// link memberlist's suspicions and refutations never stop, so the start would never
// see gossip quiet.
func startLink(l scenario.Link) memnet.Link {
	m := memLink(l)
	m.Loss, m.Duplicate = 0, 0
	return m
}

// memLink is a scenario's link as memnet sets it.
func memLink(l scenario.Link) memnet.Link {
	return memnet.Link{Loss: l.Loss, Latency: l.Latency, Jitter: l.Jitter, Duplicate: l.Duplicate, Bandwidth: l.Bandwidth}
}

// kill crashes a node: its network goes down at once (peers get nothing more from
// it), then its gossip stops, which sends nothing since the network is down.
func (r *realRun) kill(n *simNode) {
	n.dead = true
	r.tr.crashed(n.name, time.Now())
	r.net.SetDown(n.name, true)
	_ = n.g.Shutdown()
}

// start brings up the initial cluster as a settled deployment: every node sees every
// other alive, every catalog holds every node's records, and membership's own
// gossip about the start has died down. How it gets there is not what the
// scenarios measure, so it takes the shortest way that leaves the protocol as the
// agent runs it:
//
//   - Membership: each node joins the first node (the seed every operator lists) and
//     two random live ones. The seed then knows everyone, since a join is a
//     push-pull of both member lists; once all have started, each node that does
//     not yet see everyone joins the seed again and gets the full list. Left to
//     gossip alone, membership took 15–52 s of virtual time to settle at 500 nodes.
//   - Catalogs: every node's node record and services are applied to every catalog
//     directly, each catalog decoding its own copy of the encoded records as gossip
//     does: the state anti-entropy reaches. Publishing them all through gossip at
//     once cost more than half of a 500-node run's CPU (every record arrives about
//     ⌈ln N⌉ + 2 times on the eager path) and then tens of seconds of virtual time
//     waiting for push-pull to repair what the eager path missed.
//     RealOptions.PublishAtStart does that instead.
//   - Quiet: every node queued an alive message for each member it learnt of, and
//     retransmits it RetransmitMult × ⌈log10(N+1)⌉ times; start returns once every
//     node has sent fewer packets in the last second than a node with anything
//     queued sends (quietPackets), so none of that is in what is measured.
func (r *realRun) start(ctx context.Context, rep *scenario.Report) error {
	sc := r.sc
	r.logf("starting %d nodes", sc.Nodes)
	for range sc.Nodes {
		if _, err := r.startNode(ctx, false); err != nil {
			return err
		}
	}
	r.logf("started and joined %d nodes", sc.Nodes)
	joined := time.Now()
	seed := []string{r.nodes[0].tr.Addr()}
	rejoined := 0
	for _, n := range r.nodes[1:] {
		if n.aliveSeen() >= len(r.nodes) {
			continue
		}
		if _, err := n.g.Join(ctx, seed); err != nil {
			return fmt.Errorf("sim: %s join %s: %w", n.name, seed[0], err)
		}
		rejoined++
	}
	if err := waitForEvery(ctx, r.opt.ConvergeTimeout, 100*time.Millisecond, r.allSeeAll); err != nil {
		return fmt.Errorf("sim: membership of %d nodes: %w", sc.Nodes, err)
	}
	r.logf("every node sees every other after %s (%d joined the seed again)", time.Since(joined).Round(time.Millisecond), rejoined)

	if r.opt.PublishAtStart {
		if err := r.publishAll(ctx, rep); err != nil {
			return err
		}
	} else if err := r.fillCatalogs(); err != nil {
		return err
	}
	quiet := time.Now()
	if err := r.waitQuiet(ctx); err != nil {
		return fmt.Errorf("sim: start of %d nodes: %w", sc.Nodes, err)
	}
	r.logf("quiet after %s", time.Since(quiet).Round(time.Millisecond))
	return nil
}

// fillCatalogs gives every catalog every initial node's records (start).
func (r *realRun) fillCatalogs() error {
	var all []catalog.Record
	for _, n := range r.nodes {
		all = append(all, n.w.PutNode(n.nodeRecord()))
		for j := range r.sc.Services {
			all = append(all, n.w.PutService(service(fmt.Sprintf("svc-%d", j), 0)))
		}
	}
	enc := catalog.AppendRecords(nil, all)
	for _, n := range r.nodes {
		recs, err := catalog.DecodeRecords(enc)
		if err != nil {
			return fmt.Errorf("sim: initial records: %w", err)
		}
		if _, err := n.store.Apply(recs...); err != nil {
			return fmt.Errorf("sim: %s apply: %w", n.name, err)
		}
	}
	if !r.converged() {
		return errors.New("sim: initial catalogs differ after filling them")
	}
	r.logf("filled %d catalogs with %d records each", len(r.nodes), len(all))
	return nil
}

// publishAll has every initial node publish its node record and services through
// gossip, all at once, and waits until every catalog holds everything: the
// start before fillCatalogs (RealOptions.PublishAtStart).
func (r *realRun) publishAll(ctx context.Context, rep *scenario.Report) error {
	// All at once. Publishing one node after another 20 ms apart (so that each
	// node's eager flood ended before the next began) cost more than it saved at
	// 500 nodes: 500 floods of 9 × 500 packets each, uncoalesced.
	for _, n := range r.nodes {
		if err := n.publishNode(); err != nil {
			return err
		}
		for j := range r.sc.Services {
			if err := n.publish(n.w.PutService(service(fmt.Sprintf("svc-%d", j), 0))); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	lastLog := start
	if err := waitFor(ctx, r.opt.ConvergeTimeout, func() bool {
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			r.logDivergence(start)
		}
		return r.converged()
	}); err != nil {
		return fmt.Errorf("sim: initial convergence of %d nodes: %w", r.sc.Nodes, err)
	}
	rep.Converge = time.Since(start)
	r.logf("all catalogs equal after %s", rep.Converge.Round(time.Millisecond))
	return nil
}

// quietPackets is how many packets a node may send in a second and still count as
// quiet: a node with anything queued for gossip sends GossipNodes (3) packets every
// GossipInterval (200 ms), 15 a second, while a quiet one sends its probe's ping
// and acks to those probing it (1 and about 1 a second).
const quietPackets = 8

// waitQuiet waits until, over the last second, every live node sent fewer than
// quietPackets packets.
func (r *realRun) waitQuiet(ctx context.Context) error {
	const window, poll = time.Second, 200 * time.Millisecond
	live := r.live()
	hist := make([][]uint64, len(live)) // packets sent, one sample per poll
	deadline := time.Now().Add(r.opt.ConvergeTimeout)
	for {
		quiet := true
		for i, n := range live {
			h := append(hist[i], n.tr.Stats().PacketsSent)
			if len(h) > int(window/poll)+1 {
				h = h[1:]
			}
			hist[i] = h
			if len(h) <= int(window/poll) || h[len(h)-1]-h[0] >= quietPackets {
				quiet = false
			}
		}
		if quiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gossip not quiet within %s", r.opt.ConvergeTimeout)
		}
		if err := sleep(ctx, poll); err != nil {
			return err
		}
	}
}

// hook is every node's MemberlistHook: RealOptions' and then reading the push-pull
// interval.
func (r *realRun) hook(mc *memberlist.Config) {
	if r.opt.MemberlistHook != nil {
		r.opt.MemberlistHook(mc)
	}
	if r.pushPull == 0 {
		r.pushPull = mc.PushPullInterval
	}
}

// startNode starts a node and joins it to a few live ones. With announce it then
// publishes its node record, as an agent does at start; the initial nodes publish
// theirs later, together (run).
func (r *realRun) startNode(ctx context.Context, announce bool) (*simNode, error) {
	// Hosts start at different moments, so their timers (which memberlist aligns to
	// its start) are out of phase; without this, in a synctest bubble every node would
	// start at the same instant and gossip in lockstep. The gaps add up to about one
	// push-pull interval at N members whatever N, the longest of those timers: each
	// node's push-pulls then fall at their own moment of the interval, as in a
	// deployment whose agents started at different times. (Starting them all within
	// 1 s put every push-pull of the cluster into the same 10 s of each interval,
	// memberlist's random stagger: the bytes a 30 s scenario measured depended on
	// whether that slot fell into it, 0 or 1 push-pull per node at N = 500.)
	// Nodes started by a scenario's events keep the 1 s spread they always had.
	if spread := time.Second; r.pushPull > 0 {
		if !announce {
			spread = pushPullScale(r.pushPull, r.sc.Nodes)
		}
		gap := int64(2*spread) / int64(max(r.sc.Nodes, 1))
		if err := sleep(ctx, time.Duration(r.rng.Int64N(gap+1))); err != nil {
			return nil, err
		}
	}
	name := fmt.Sprintf("n%05d", r.seq)
	r.seq++
	cat, err := catalog.New(catalog.Config{Clock: wallClock{}})
	if err != nil {
		return nil, err
	}
	tr := r.net.NewTransport(name)
	store := &recStore{Catalog: cat, self: name, tr: r.tr}
	g, err := gossip.New(gossip.Config{NodeName: name, BindAddr: tr.IP(), BindPort: tr.Port(), Transport: tr,
		Store: store, Logger: slog.New(slog.DiscardHandler), MemberlistHook: r.hook,
		WrapTransport: r.opt.WrapTransport})
	if err != nil {
		return nil, fmt.Errorf("sim: start %s: %w", name, err)
	}
	n := &simNode{name: name, id: fmt.Sprintf("00000000-0000-4000-8000-%012d", r.seq), cat: cat, store: store, g: g, tr: tr, since: time.Now(),
		w: catalog.NewWriter(name, uint64(time.Now().UnixMilli())+1)}
	live := r.live()
	r.nodes = append(r.nodes, n)
	if len(live) > 0 {
		// Join a few live nodes, as operators list a few seeds: for the initial
		// nodes, the first node and two others (start).
		var seeds []string
		if !announce {
			seeds = append(seeds, live[0].tr.Addr())
		}
		for _, i := range r.rng.Perm(len(live))[:min(3, len(live))] {
			if a := live[i].tr.Addr(); len(seeds) < 3 && !slices.Contains(seeds, a) {
				seeds = append(seeds, a)
			}
		}
		if _, err := g.Join(ctx, seeds); err != nil {
			return nil, fmt.Errorf("sim: %s join: %w", name, err)
		}
	}
	if announce {
		if err := n.publishNode(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// publishNode publishes the node's own node record.
func (n *simNode) publishNode() error {
	return n.publish(n.w.PutNode(n.nodeRecord()))
}

func (n *simNode) nodeRecord() *catalog.Node {
	return &catalog.Node{ID: n.id, Name: n.name, Address: n.tr.IP(), Datacenter: "dc1"}
}

// allSeeAll reports whether every live node's gossip sees every live node alive.
func (r *realRun) allSeeAll() bool {
	live := r.live()
	for _, o := range live {
		if o.aliveSeen() < len(live) {
			return false
		}
	}
	return true
}

// aliveSeen is how many members n's gossip sees alive, itself included.
func (n *simNode) aliveSeen() int {
	alive := 0
	for _, m := range n.g.Members() {
		if m.State == catalog.LivenessAlive {
			alive++
		}
	}
	return alive
}

func (n *simNode) publish(recs ...catalog.Record) error {
	if _, err := n.store.Apply(recs...); err != nil {
		return fmt.Errorf("sim: %s apply: %w", n.name, err)
	}
	n.g.Publish(recs)
	return nil
}

func service(id string, port int) *catalog.Service {
	return &catalog.Service{ID: id, Name: id, Port: 8000 + port, Tags: []string{"v1"}, Weights: catalog.DefaultWeights}
}

func (r *realRun) converged() bool {
	live := r.live()
	s0 := live[0].cat.Summary()
	for _, n := range live[1:] {
		if n.cat.Summary() != s0 {
			return false
		}
	}
	return true
}

// logDivergence logs how far the cluster is from converged: how many nodes' catalogs
// differ from the most common one, and the fewest members any node sees.
func (r *realRun) logDivergence(start time.Time) {
	live := r.live()
	count := map[catalog.Summary]int{}
	for _, n := range live {
		count[n.cat.Summary()]++
	}
	best := 0
	for _, c := range count {
		best = max(best, c)
	}
	fewest := len(live)
	for _, n := range live {
		fewest = min(fewest, len(n.g.Members()))
	}
	r.logf("t=%s converging: %d of %d catalogs differ from the most common one (%d distinct); fewest members seen %d",
		time.Since(start).Round(time.Millisecond), len(live)-best, len(live), len(count), fewest)
}

// recStore is a node's catalog as gossip sees it, telling the tracker when a
// scripted registration arrives and when a node is declared failed.
type recStore struct {
	*catalog.Catalog
	self string
	tr   *tracker
}

func (s *recStore) Apply(recs ...catalog.Record) ([]catalog.Record, error) {
	changed, err := s.Catalog.Apply(recs...)
	for _, c := range changed {
		if c.Service != nil && strings.HasPrefix(c.Key.ID, "reg-") {
			s.tr.arrived(c.Key.ID, s.self, time.Now())
		}
	}
	return changed, err
}

func (s *recStore) SetLiveness(node string, l catalog.Liveness) {
	s.Catalog.SetLiveness(node, l)
	if l == catalog.LivenessFailed {
		s.tr.failed(s.self, node, time.Now())
	}
}

var _ gossip.Store = (*recStore)(nil)

// tracker records what happened when, from every node's callbacks.
type tracker struct {
	mu       sync.Mutex
	start    time.Time
	regOrder []string
	regAt    map[string]time.Time
	arrivals map[string]map[string]time.Time // service → node → first arrival
	crashAt  map[string]time.Time
	crashes  []string
	fails    []failure
	parts    []partSpan
}

type failure struct {
	observer, node string
	at             time.Time
}

type partSpan struct {
	side       map[string]bool // the first group; everyone else is the other side
	start, end time.Time       // end zero: not healed
}

func newTracker() *tracker {
	return &tracker{regAt: map[string]time.Time{}, arrivals: map[string]map[string]time.Time{}, crashAt: map[string]time.Time{}}
}

func (t *tracker) setStart(at time.Time) { t.mu.Lock(); t.start = at; t.mu.Unlock() }

func (t *tracker) registered(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.regOrder = append(t.regOrder, id)
	t.regAt[id] = at
	t.arrivals[id] = map[string]time.Time{}
}

func (t *tracker) arrived(id, node string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.arrivals[id]; ok {
		if _, seen := m[node]; !seen {
			m[node] = at
		}
	}
}

func (t *tracker) crashed(node string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.crashAt[node] = at
	t.crashes = append(t.crashes, node)
}

func (t *tracker) failed(observer, node string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.start.IsZero() {
		t.fails = append(t.fails, failure{observer, node, at})
	}
}

func (t *tracker) partition(a, b []string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	side := map[string]bool{}
	for _, n := range a {
		side[n] = true
	}
	t.parts = append(t.parts, partSpan{side: side, start: at})
}

func (t *tracker) heal(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.parts {
		if t.parts[i].end.IsZero() {
			t.parts[i].end = at
		}
	}
}

// separated says whether a partition separated x and y at, or ended less than
// grace before it (a failure declared just after a heal was raised during the split).
func (t *tracker) separated(x, y string, at time.Time, grace time.Duration) bool {
	for _, p := range t.parts {
		if at.Before(p.start) || !p.end.IsZero() && at.After(p.end.Add(grace)) {
			continue
		}
		if p.side[x] != p.side[y] {
			return true
		}
	}
	return false
}

// report fills the measurements of rep from what was recorded.
func (t *tracker) report(rep *scenario.Report, nodes []*simNode) {
	t.mu.Lock()
	defer t.mu.Unlock()
	alive := map[string]*simNode{}
	for _, n := range nodes {
		if !n.dead {
			alive[n.name] = n
		}
	}
	for i, id := range t.regOrder {
		at := t.regAt[id]
		var ds []time.Duration
		for name, a := range t.arrivals[id] {
			if alive[name] != nil {
				ds = append(ds, a.Sub(at))
			}
		}
		slices.Sort(ds)
		// Nodes that started after the registration count too: they must get it.
		want := len(alive)
		rep.Spreads = append(rep.Spreads, scenario.SpreadOf(ds, want))
		if len(ds) < want {
			rep.Unreached++
		}
		if i == 0 {
			rep.Curve = ds
		}
	}
	firstFail := map[[2]string]time.Time{}
	for _, f := range t.fails {
		k := [2]string{f.observer, f.node}
		if c, ok := t.crashAt[f.node]; ok && !f.at.Before(c) {
			if _, seen := firstFail[k]; !seen {
				firstFail[k] = f.at
			}
			continue
		}
		if c, ok := t.crashAt[f.observer]; ok && !f.at.Before(c) {
			continue // a dead node's view does not count
		}
		if t.separated(f.observer, f.node, f.at, 30*time.Second) {
			continue
		}
		rep.FalseFailures++
	}
	for _, v := range t.crashes {
		c := t.crashAt[v]
		var worst time.Duration
		ok := true
		for name, n := range alive {
			if n.since.After(c) {
				continue // joined after the crash: it may never have known the node
			}
			f, seen := firstFail[[2]string{name, v}]
			if !seen {
				ok = false
				break
			}
			worst = max(worst, f.Sub(c))
		}
		if ok {
			rep.Detections = append(rep.Detections, worst)
		} else {
			rep.Undetected++
		}
	}
}
