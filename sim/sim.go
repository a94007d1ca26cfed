// Package sim runs many real gossip nodes in one process over memnet's simulated
// network and measures what operators judge rumor by: how fast a registration reaches
// every node, how fast a crash is seen everywhere, how many bytes steady-state gossip
// costs, and whether packet loss causes false failures.
//
// It runs in real time (memberlist's timers are real), so a run takes minutes; it is
// the engine of `rumor sim`, a benchmark command, not a test.
//
// # Concurrency
//
// Run owns every node and goroutine it starts and stops them all before returning.
//
// # Testing
//
// sim_test.go runs a tiny scenario (3 nodes, short phases) to keep the engine honest.
package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/internal/memnet"
)

// Config describes one scenario. Zero fields take the defaults in brackets.
type Config struct {
	Nodes           int           // cluster size (required, ≥ 3)
	ServicesPerNode int           // services each node registers before measuring [10]
	Registrations   int           // registrations timed for the spread measurement [20]
	SteadyWindow    time.Duration // window over which idle bandwidth is measured [20s]
	LossWindow      time.Duration // how long 10% loss is applied to count false failures [60s]
	Loss            float64       // packet loss during the loss window [0.10]
	Seed            uint64        // seed of the simulated network's randomness [1]
	// Progress receives one line per phase; nil discards.
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.Nodes < 3 {
		return c, fmt.Errorf("sim: %d nodes: need at least 3", c.Nodes)
	}
	if c.ServicesPerNode == 0 {
		c.ServicesPerNode = 10
	}
	if c.Registrations == 0 {
		c.Registrations = 20
	}
	if c.SteadyWindow == 0 {
		c.SteadyWindow = 20 * time.Second
	}
	if c.LossWindow == 0 {
		c.LossWindow = 60 * time.Second
	}
	if c.Loss == 0 {
		c.Loss = 0.10
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}

// Result is what one scenario measured.
type Result struct {
	Nodes int
	// Converge is the time from every node having registered its services (all at
	// once, right after joining) until every catalog holds everything.
	Converge time.Duration
	// Spread: over the timed registrations, the median time until 50%, 99% and 100%
	// of nodes saw a registration, and the 99th percentile of the time to 100%.
	Visible50, Visible99, Visible100, Visible100P99 time.Duration
	// Detect is the time from a crash (kill -9) until every other node saw it failed;
	// SuspicionBound is memberlist's bound for it at this size (probe interval plus
	// the Lifeguard maximum suspicion timeout).
	Detect, SuspicionBound time.Duration
	// BytesPerNodePerSec is the average traffic (UDP and TCP, sent) per node while idle.
	BytesPerNodePerSec float64
	// FalseFailures counts (observer, node) pairs where a healthy node was declared
	// failed during the loss window.
	FalseFailures int
}

// node is one simulated agent.
type node struct {
	name string
	cat  *catalog.Catalog
	w    *catalog.Writer
	g    *gossip.Gossip
	tr   *memnet.Transport
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (n *node) publish(recs ...catalog.Record) error {
	if _, err := n.cat.Apply(recs...); err != nil {
		return err
	}
	n.g.Publish(recs)
	return nil
}

// Run executes the scenario and stops every node before returning.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	net := memnet.NewNetwork(memnet.Config{Seed: cfg.Seed, QueueLen: 4096})
	defer net.Close()
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			_ = n.g.Shutdown()
		}
	}()
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "[n=%d] "+format+"\n", append([]any{cfg.Nodes}, args...)...)
	}

	var mc memberlist.Config
	for i := range cfg.Nodes {
		n, err := startNode(net, fmt.Sprintf("node-%03d", i), &mc)
		if err != nil {
			return Result{}, err
		}
		nodes = append(nodes, n)
		if i > 0 {
			// Join a few earlier nodes, as operators list a few seeds.
			seeds := []string{nodes[0].tr.Addr(), nodes[i/2].tr.Addr(), nodes[i-1].tr.Addr()}
			if _, err := n.g.Join(ctx, seeds); err != nil {
				return Result{}, fmt.Errorf("sim: %s join: %w", n.name, err)
			}
		}
	}
	logf("started; registering %d services per node", cfg.ServicesPerNode)
	for _, n := range nodes {
		for j := range cfg.ServicesPerNode {
			s := &catalog.Service{ID: fmt.Sprintf("svc-%d", j), Name: fmt.Sprintf("svc-%d", j), Port: 8000 + j,
				Tags: []string{"v1"}, Weights: catalog.DefaultWeights}
			if err := n.publish(n.w.PutService(s)); err != nil {
				return Result{}, err
			}
		}
	}
	res := Result{Nodes: cfg.Nodes}
	start := time.Now()
	if err := waitFor(ctx, 5*time.Minute, func() bool { return converged(nodes) }); err != nil {
		return Result{}, fmt.Errorf("sim: initial convergence: %w", err)
	}
	res.Converge = time.Since(start)
	logf("all %d catalogs equal after %s", cfg.Nodes, res.Converge.Round(time.Millisecond))

	logf("timing %d registrations", cfg.Registrations)
	if err := measureSpread(ctx, nodes, cfg.Registrations, &res); err != nil {
		return res, err
	}

	logf("measuring idle bandwidth for %s", cfg.SteadyWindow)
	before := net.Stats()
	if err := sleep(ctx, cfg.SteadyWindow); err != nil {
		return res, err
	}
	after := net.Stats()
	sent := float64(after.BytesSent-before.BytesSent) + float64(after.StreamBytesSent-before.StreamBytesSent)
	res.BytesPerNodePerSec = sent / float64(cfg.Nodes) / cfg.SteadyWindow.Seconds()

	logf("applying %.0f%% loss for %s", cfg.Loss*100, cfg.LossWindow)
	res.FalseFailures, err = countFalseFailures(ctx, net, nodes, cfg.Loss, cfg.LossWindow)
	if err != nil {
		return res, err
	}
	// Let suspicions raised under loss clear before the crash measurement.
	_ = waitFor(ctx, 30*time.Second, func() bool { return allAlive(nodes) })

	logf("crashing one node")
	res.SuspicionBound = SuspicionBound(&mc, cfg.Nodes)
	victim := nodes[len(nodes)-1]
	start = time.Now()
	net.SetDown(victim.name, true)
	others := nodes[:len(nodes)-1]
	if err := waitFor(ctx, 5*res.SuspicionBound, func() bool {
		for _, n := range others {
			if st, _ := n.cat.Liveness(victim.name); st != catalog.LivenessFailed {
				return false
			}
		}
		return true
	}); err != nil {
		return res, fmt.Errorf("sim: crash detection: %w", err)
	}
	res.Detect = time.Since(start)
	logf("done")
	return res, nil
}

func startNode(net *memnet.Network, name string, seen *memberlist.Config) (*node, error) {
	cat, err := catalog.New(catalog.Config{Clock: wallClock{}})
	if err != nil {
		return nil, err
	}
	tr := net.NewTransport(name)
	g, err := gossip.New(gossip.Config{NodeName: name, BindAddr: tr.IP(), BindPort: tr.Port(), Transport: tr,
		Store: cat, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MemberlistHook: func(mc *memberlist.Config) { *seen = *mc }})
	if err != nil {
		return nil, fmt.Errorf("sim: start %s: %w", name, err)
	}
	n := &node{name: name, cat: cat, g: g, tr: tr, w: catalog.NewWriter(name, uint64(time.Now().UnixMilli()))}
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", len(name)*1000+int(name[len(name)-1]))
	if err := n.publish(n.w.PutNode(&catalog.Node{ID: id, Name: name, Address: tr.IP(), Datacenter: "dc1"})); err != nil {
		return nil, err
	}
	return n, nil
}

// measureSpread registers one service at a time on a rotating node and records how
// long until 50%, 99% and 100% of nodes see it.
func measureSpread(ctx context.Context, nodes []*node, trials int, res *Result) error {
	var t50, t99, t100 []time.Duration
	for i := range trials {
		src := nodes[i%len(nodes)]
		name := fmt.Sprintf("probe-%d", i)
		start := time.Now()
		if err := src.publish(src.w.PutService(&catalog.Service{ID: name, Name: name, Port: 1, Weights: catalog.DefaultWeights})); err != nil {
			return err
		}
		var d50, d99 time.Duration
		err := waitFor(ctx, 30*time.Second, func() bool {
			seen := 0
			for _, n := range nodes {
				if len(n.cat.ServiceInstances(name, catalog.Filter{})) == 1 {
					seen++
				}
			}
			el := time.Since(start)
			if d50 == 0 && seen*2 >= len(nodes) {
				d50 = el
			}
			if d99 == 0 && seen*100 >= 99*len(nodes) {
				d99 = el
			}
			return seen == len(nodes)
		})
		if err != nil {
			return fmt.Errorf("sim: registration %d did not reach every node: %w", i, err)
		}
		t50, t99, t100 = append(t50, d50), append(t99, d99), append(t100, time.Since(start))
	}
	res.Visible50, res.Visible99, res.Visible100 = Percentile(t50, 50), Percentile(t99, 50), Percentile(t100, 50)
	res.Visible100P99 = Percentile(t100, 99)
	return nil
}

// countFalseFailures applies loss to every link for window and counts healthy nodes
// that someone declared failed.
func countFalseFailures(ctx context.Context, net *memnet.Network, nodes []*node, loss float64, window time.Duration) (int, error) {
	net.SetDefaultLink(memnet.Link{Loss: loss})
	defer net.SetDefaultLink(memnet.Link{})
	falsePairs := map[[2]string]bool{}
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		for _, obs := range nodes {
			for _, n := range nodes {
				if st, _ := obs.cat.Liveness(n.name); st == catalog.LivenessFailed {
					falsePairs[[2]string{obs.name, n.name}] = true
				}
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return len(falsePairs), nil
}

// SuspicionBound is memberlist's worst case for declaring a crashed node dead: one
// probe interval to notice, then the suspicion timeout stretched to its Lifeguard
// maximum (SuspicionMult × log10(n) × ProbeInterval × SuspicionMaxTimeoutMult).
func SuspicionBound(mc *memberlist.Config, n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	timeout := time.Duration(float64(mc.SuspicionMult) * scale * float64(mc.ProbeInterval))
	return mc.ProbeInterval + timeout*time.Duration(mc.SuspicionMaxTimeoutMult)
}

func converged(nodes []*node) bool {
	s0 := nodes[0].cat.Summary()
	for _, n := range nodes[1:] {
		if n.cat.Summary() != s0 {
			return false
		}
	}
	return true
}

func allAlive(nodes []*node) bool {
	for _, obs := range nodes {
		for _, n := range nodes {
			if st, _ := obs.cat.Liveness(n.name); st != catalog.LivenessAlive {
				return false
			}
		}
	}
	return true
}

// waitFor polls cond every 5 ms until it holds, d passes, or ctx ends.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	return waitForEvery(ctx, d, 5*time.Millisecond, cond)
}

// waitForEvery is waitFor polling cond every poll: for conditions too costly to
// check every 5 ms.
func waitForEvery(ctx context.Context, d, poll time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		if err := sleep(ctx, poll); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Percentile is the nearest-rank p-th percentile of ds (0 for none). `rumor sim` and
// sim/netbench both fill Result's columns with it, so their tables agree.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
