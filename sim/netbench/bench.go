package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/internal/testnet"
	"github.com/rumor-sd/rumor/sim"
)

// config describes one run at one cluster size.
type config struct {
	Nodes           int           // agents, each in its own namespace (≥ 3)
	ServicesPerNode int           // services each agent registers before measuring
	Registrations   int           // registrations timed for the spread measurement
	SteadyWindow    time.Duration // window over which idle traffic is measured
	LossWindow      time.Duration // how long loss is applied while counting false failures
	LossPercent     int           // packet loss on every host during the loss window
	Rumor           string        // the rumor binary the agents run (`rumor agent` or a stand-in taking its flags)
	AgentArgs       []string      // flags every agent gets beyond those of the benchmark
	Progress        io.Writer     // one line per phase
	// Propagation, if set, measures only idle traffic and propagation (into
	// result.Prop) after the initial convergence: no loss window, no crash.
	Propagation bool
	// Trace, with Propagation, splits each trial into its hops by the agents' own
	// timestamps (trace.go) and writes them here as JSON lines.
	Trace io.Writer
}

// result is sim.Result plus what only real processes have.
type result struct {
	sim.Result
	// AgentRSS is the agents' resident memory, summed, at steady state.
	AgentRSS uint64
	// Prop is the propagation measurement (config.Propagation only).
	Prop *propResult `json:",omitempty"`
	// Trace holds the per-hop times (config.Trace only).
	Trace *tracer `json:"-"`
}

// bench is one running cluster of agent processes.
type bench struct {
	cfg     config
	tb      *testnet.Testbed
	procs   []*testnet.Process
	clients []*client
	names   []string
	logf    func(format string, args ...any)
	lastWhy string // why the last poll condition did not hold (allAlive)
}

// run measures one cluster size and removes every namespace and process it made.
func run(ctx context.Context, cfg config) (res result, err error) {
	b := &bench{cfg: cfg}
	b.logf = func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "[n=%d] "+format+"\n", append([]any{cfg.Nodes}, args...)...)
	}
	dataRoot, err := os.MkdirTemp("", "rumor-netbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dataRoot)
	openCtx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(cfg.Nodes)*time.Second)
	b.tb, err = testnet.Open(openCtx, testnet.Config{Hosts: cfg.Nodes, Prefix: "rnb", DisableIPv6: true})
	cancel()
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			b.dumpDeadAgents()
		}
		for _, c := range b.clients {
			c.close()
		}
		err = errors.Join(err, b.tb.Close())
	}()
	if err := b.start(dataRoot); err != nil {
		return res, err
	}
	return b.measure(ctx)
}

// start launches one agent per host, each joining up to three earlier ones, as
// operators list a few seeds.
func (b *bench) start(dataRoot string) error {
	hosts := b.tb.Hosts()
	for i, h := range hosts {
		name := fmt.Sprintf("h%d", i+1)
		dir := filepath.Join(dataRoot, name)
		args := append([]string{"agent", "--node", name, "--bind", h.IP().String() + ":7946", "--data-dir", dir,
			"--http-addr", agentHTTPAddr, "--log-level", "warn"}, b.cfg.AgentArgs...)
		if i > 0 {
			seeds := []int{0, i / 2, i - 1}
			slices.Sort(seeds)
			for _, s := range slices.Compact(seeds) {
				args = append(args, "--retry-join", hosts[s].IP().String())
			}
		}
		p, err := h.Start(b.cfg.Rumor, args...)
		if err != nil {
			return err
		}
		b.procs = append(b.procs, p)
		b.clients = append(b.clients, newClient(h))
		b.names = append(b.names, name)
	}
	return nil
}

func (b *bench) measure(ctx context.Context) (result, error) {
	n := b.cfg.Nodes
	res := result{Result: sim.Result{Nodes: n}}
	all := rangeN(n)

	b.logf("started %d agents; waiting until every one sees all alive", n)
	if err := b.poll(ctx, time.Minute+2*time.Second*time.Duration(n), 500*time.Millisecond, "all members alive everywhere",
		func() (bool, error) { return b.allAlive(ctx, all, n) }); err != nil {
		return res, err
	}

	b.logf("registering %d services per agent", b.cfg.ServicesPerNode)
	start := time.Now()
	if err := b.eachAgent(ctx, all, func(ctx context.Context, i int) error {
		for j := range b.cfg.ServicesPerNode {
			name := fmt.Sprintf("svc-%d", j)
			if err := b.clients[i].put(ctx, "/v1/agent/service/register",
				map[string]any{"ID": name, "Name": name, "Port": 8000 + j, "Tags": []string{"v1"}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return res, err
	}
	convCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err := b.eachAgent(convCtx, all, func(ctx context.Context, i int) error {
		for j := range b.cfg.ServicesPerNode {
			if _, err := b.clients[i].waitUntil(ctx, fmt.Sprintf("/v1/catalog/service/svc-%d", j), countEntries(n)); err != nil {
				return fmt.Errorf("initial convergence: %w", err)
			}
		}
		return nil
	})
	cancel()
	if err != nil {
		return res, err
	}
	res.Converge = time.Since(start)
	b.logf("every agent has all %d services after %s", n*b.cfg.ServicesPerNode, res.Converge.Round(time.Millisecond))

	if b.cfg.Propagation {
		// Without the eager path every node re-broadcasts each of the n×services
		// records RetransmitMult×log(n) times, which at 50 agents takes about a minute
		// of gossip to drain: idle is idle only after that.
		settleStart := time.Now()
		qs0, rs0, settleOK := mdnsBytes(ctx, b.clients)
		b.logf("letting the initial registrations' retransmits drain for %s", propagationSettle)
		if err := sleep(ctx, propagationSettle); err != nil {
			return res, err
		}
		b.logf("measuring idle traffic for %s", b.cfg.SteadyWindow)
		q0, r0, mdnsOK := mdnsBytes(ctx, b.clients)
		idleStart := time.Now()
		idle, err := measureIdle(ctx, b.tb.BytesSent, n, b.cfg.SteadyWindow)
		if err != nil {
			return res, err
		}
		if q1, r1, ok := mdnsBytes(ctx, b.clients); ok && mdnsOK {
			secs := time.Since(idleStart).Seconds() * float64(n)
			b.logf("mDNS payload sent while idle, per agent: queries %.0f B/s, responses %.0f B/s (UDP payloads, IPv4 and IPv6)",
				(q1-q0)/secs, (r1-r0)/secs)
			// The querier's backoff puts its queries at 1, 3, 7, … 127, 255 s after
			// an agent starts, all agents nearly together: whether the short window
			// holds one of them is chance, so the settle period is reported too.
			if settleOK {
				secs := time.Since(settleStart).Seconds() * float64(n)
				b.logf("mDNS payload sent over the settle period and the window, per agent: queries %.0f B/s, responses %.0f B/s",
					(q1-qs0)/secs, (r1-rs0)/secs)
			}
		}
		b.logf("idle traffic %.0f B/s per agent; timing %d registrations", idle, b.cfg.Registrations)
		var tr *tracer
		if b.cfg.Trace != nil {
			tr = &tracer{clients: b.clients, out: b.cfg.Trace}
			res.Trace = tr
		}
		prop, err := measurePropagation(ctx, b.clients, b.cfg.Registrations, b.tb.BytesSent, idle, tr)
		if err != nil {
			return res, err
		}
		prop.Where = "namespaces"
		res.Prop = &prop
		return res, nil
	}

	b.logf("timing %d registrations", b.cfg.Registrations)
	if err := b.measureSpread(ctx, &res.Result); err != nil {
		return res, err
	}

	b.logf("measuring idle traffic for %s", b.cfg.SteadyWindow)
	before, err := b.tb.BytesSent(ctx)
	if err != nil {
		return res, err
	}
	if err := sleep(ctx, b.cfg.SteadyWindow); err != nil {
		return res, err
	}
	after, err := b.tb.BytesSent(ctx)
	if err != nil {
		return res, err
	}
	var sent uint64
	for i := range after {
		sent += after[i] - before[i]
	}
	res.BytesPerNodePerSec = float64(sent) / float64(n) / b.cfg.SteadyWindow.Seconds()
	res.AgentRSS = b.rss()
	b.logf("idle traffic %.0f B/s per agent; agents' memory %d MiB in all (%d MiB each)",
		res.BytesPerNodePerSec, res.AgentRSS>>20, res.AgentRSS/uint64(n)>>20)

	b.logf("applying %d%% loss on every host for %s", b.cfg.LossPercent, b.cfg.LossWindow)
	if res.FalseFailures, err = b.countFalseFailures(ctx); err != nil {
		return res, err
	}
	// Let suspicions raised under loss clear before the crash measurement.
	if err := b.poll(ctx, time.Minute, 500*time.Millisecond, "all alive after the loss",
		func() (bool, error) { return b.allAlive(ctx, all, n) }); err != nil {
		b.logf("warning: %v; measuring the crash anyway", err)
	}

	b.logf("killing one agent (SIGKILL)")
	res.SuspicionBound = sim.SuspicionBound(memberlist.DefaultLANConfig(), n)
	victim := n - 1
	start = time.Now()
	if err := b.procs[victim].Kill(); err != nil {
		return res, err
	}
	detectCtx, cancel := context.WithTimeout(ctx, 5*res.SuspicionBound)
	defer cancel()
	if err := b.eachAgent(detectCtx, rangeN(victim), func(ctx context.Context, i int) error {
		for {
			ms, err := b.clients[i].members(ctx)
			if err != nil {
				return fmt.Errorf("crash detection: %w", err)
			}
			for _, m := range ms {
				if m.Name == b.names[victim] && m.Status == statusFailed {
					return nil
				}
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return fmt.Errorf("crash detection: %s never saw %s failed: %w", b.names[i], b.names[victim], err)
			}
		}
	}); err != nil {
		return res, err
	}
	res.Detect = time.Since(start)
	b.logf("done")
	return res, nil
}

// measureSpread registers one service at a time on a rotating agent and records, by
// a blocking query on every agent, when each first answers with it.
func (b *bench) measureSpread(ctx context.Context, res *sim.Result) error {
	n := b.cfg.Nodes
	var t50, t99, t100 []time.Duration
	for trial := range b.cfg.Registrations {
		src := trial % n
		name := fmt.Sprintf("probe-%d", trial)
		seen := make([]time.Time, n)
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		start := time.Now()
		regErr := make(chan error, 1)
		go func() {
			regErr <- b.clients[src].put(tctx, "/v1/agent/service/register", map[string]any{"ID": name, "Name": name, "Port": 1})
		}()
		err := b.eachAgent(tctx, rangeN(n), func(ctx context.Context, i int) error {
			at, err := b.clients[i].waitUntil(ctx, "/v1/catalog/service/"+name, countEntries(1))
			seen[i] = at
			return err
		})
		err = errors.Join(err, <-regErr)
		cancel()
		if err != nil {
			return fmt.Errorf("registration %d from %s: %w", trial, b.names[src], err)
		}
		ds := make([]time.Duration, n)
		for i, at := range seen {
			ds[i] = at.Sub(start)
		}
		slices.Sort(ds)
		t50 = append(t50, ds[(n+1)/2-1])       // the first time at least half saw it
		t99 = append(t99, ds[(99*n+99)/100-1]) // at least 99%
		t100 = append(t100, ds[n-1])
	}
	res.Visible50, res.Visible99, res.Visible100 = median(t50), median(t99), median(t100)
	res.Visible100P99 = sim.Percentile(t100, 99)
	return nil
}

// countFalseFailures applies loss on every host for the loss window and counts the
// (observer, member) pairs where a healthy agent was declared failed.
func (b *bench) countFalseFailures(ctx context.Context) (int, error) {
	hosts := b.tb.Hosts()
	clearLoss := func() error {
		var errs []error
		for _, h := range hosts {
			errs = append(errs, b.tb.ClearLoss(context.WithoutCancel(ctx), h))
		}
		return errors.Join(errs...)
	}
	for _, h := range hosts {
		if err := b.tb.Loss(ctx, h, b.cfg.LossPercent); err != nil {
			return 0, errors.Join(err, clearLoss())
		}
	}
	var mu sync.Mutex
	pairs := map[[2]string]bool{}
	deadline := time.Now().Add(b.cfg.LossWindow)
	var err error
	for err == nil && time.Now().Before(deadline) {
		err = b.eachAgent(ctx, rangeN(len(hosts)), func(ctx context.Context, i int) error {
			ms, err := b.clients[i].members(ctx)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range ms {
				if m.Status == statusFailed {
					pairs[[2]string{b.names[i], m.Name}] = true
				}
			}
			return nil
		})
		if err == nil {
			err = sleep(ctx, time.Second)
		}
	}
	if err := errors.Join(err, clearLoss()); err != nil {
		return 0, err
	}
	for p := range pairs {
		b.logf("false failure: %s declared %s failed", p[0], p[1])
	}
	return len(pairs), nil
}

// allAlive reports whether each of the agents sees n members, all alive. When not, it
// notes why in b.lastWhy, for the timeout error.
func (b *bench) allAlive(ctx context.Context, agents []int, n int) (bool, error) {
	for _, i := range agents {
		if b.procs[i].Exited() {
			return false, fmt.Errorf("agent %s exited", b.names[i])
		}
		ms, err := b.clients[i].members(ctx)
		if err != nil {
			b.lastWhy = err.Error() // not serving yet
			return false, nil
		}
		if len(ms) != n {
			b.lastWhy = fmt.Sprintf("%s sees %d members, not %d", b.names[i], len(ms), n)
			return false, nil
		}
		for _, m := range ms {
			if m.Status != statusAlive {
				b.lastWhy = fmt.Sprintf("%s sees %s with status %d", b.names[i], m.Name, m.Status)
				return false, nil
			}
		}
	}
	return true, nil
}

// eachAgent runs f for every listed agent at once and returns their errors joined.
func (b *bench) eachAgent(ctx context.Context, agents []int, f func(ctx context.Context, i int) error) error {
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for k, i := range agents {
		wg.Go(func() { errs[k] = f(ctx, i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// poll calls cond every interval until it holds, returns an error, or d passes.
func (b *bench) poll(ctx context.Context, d, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if b.lastWhy != "" {
				return fmt.Errorf("%s: not within %s (last: %s)", what, d, b.lastWhy)
			}
			return fmt.Errorf("%s: not within %s", what, d)
		}
		if err := sleep(ctx, interval); err != nil {
			return err
		}
	}
}

// rss sums the agents' resident memory (VmRSS); agents whose status cannot be read
// count 0. "ip netns exec" execs the agent in place, so the PID is the agent's.
func (b *bench) rss() uint64 {
	var total uint64
	for _, p := range b.procs {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}

// dumpDeadAgents prints the output of agents that exited on their own, to say why.
func (b *bench) dumpDeadAgents() {
	for i, p := range b.procs {
		if p.Exited() && i != b.cfg.Nodes-1 {
			out := p.Output()
			if len(out) > 2000 {
				out = out[len(out)-2000:]
			}
			b.logf("agent %s exited; its last output:\n%s", b.names[i], out)
		}
	}
}

func rangeN(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
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

func median(ds []time.Duration) time.Duration { return sim.Percentile(ds, 50) }
