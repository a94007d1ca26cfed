package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rumor-sd/rumor/sim"
)

// propagationSettle is how long --propagation waits after the initial convergence
// before measuring idle traffic (see bench.measure).
const propagationSettle = 90 * time.Second

// propResult is one propagation run (--propagation): how fast a registration on one
// agent wakes a blocking query on the others, and what it costs.
type propResult struct {
	System string // "rumor", "rumor, eager path off", "consul"
	Where  string // "loopback" or "namespaces"
	Nodes  int
	Trials int
	Delay  string `json:",omitempty"` // injected gossip delay, e.g. "30ms ± 20ms"
	// Wake: over every (trial, other agent), the time from sending the registration
	// until that agent's blocking query answered with it.
	Wake50, Wake99, WakeMax time.Duration
	// All: over the trials, the time until every agent had answered with it.
	All50, All99 time.Duration
	// IdleBytesPerNodePerSec and BytesPerNodePerChange are measured in namespaces
	// only (bridge-port counters, whole frames); -1 where not measured.
	IdleBytesPerNodePerSec, BytesPerNodePerChange float64
	// EagerDelivered is the fraction of the eager-path messages the agents sent
	// during the trials that their peers received (from their /metrics); -1 where
	// not known (Consul, the eager path off).
	EagerDelivered float64
}

// eagerCounts sums, over the agents, the eager-path messages sent and received as
// their /metrics report them; ok is false if any agent does not report both.
func eagerCounts(ctx context.Context, clients []*client) (sent, received float64, ok bool) {
	ok = true
	for _, c := range clients {
		body, _, err := c.get(ctx, "/metrics")
		if err != nil {
			return 0, 0, false
		}
		var haveSent, haveRecv bool
		for _, line := range strings.Split(string(body), "\n") {
			name, val, found := strings.Cut(line, " ")
			if !found {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			switch {
			case strings.HasPrefix(name, "rumor_gossip_eager_messages_sent_total{"):
				sent += v
				haveSent = true
			case name == `rumor_gossip_messages_received_total{type="eager"}`:
				received += v
				haveRecv = true
			}
		}
		ok = ok && haveSent && haveRecv
	}
	return sent, received, ok
}

// mdnsBytes sums, over the agents, the mDNS query and responder bytes their
// /metrics report; ok is false if any agent reports neither (mDNS off).
func mdnsBytes(ctx context.Context, clients []*client) (queries, responses float64, ok bool) {
	ok = true
	for _, c := range clients {
		body, _, err := c.get(ctx, "/metrics")
		if err != nil {
			return 0, 0, false
		}
		found := false
		for _, line := range strings.Split(string(body), "\n") {
			name, val, has := strings.Cut(line, " ")
			if !has {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			switch name {
			case "rumor_mdns_query_bytes_sent_total":
				queries += v
				found = true
			case "rumor_mdns_response_bytes_sent_total":
				responses += v
				found = true
			}
		}
		ok = ok && found
	}
	return queries, responses, ok
}

// measurePropagation registers one service per trial on a rotating agent and times,
// by a blocking query on every other agent, when each answers with it. With
// bytesSent (namespaces), it also reports the bytes every agent sent per change
// beyond idle traffic (idle, in bytes per agent per second), including the
// piggyback retransmits that follow each change.
func measurePropagation(ctx context.Context, clients []*client, trials int, bytesSent func(context.Context) ([]uint64, error),
	idle float64, tr *tracer) (propResult, error) {
	n := len(clients)
	res := propResult{Nodes: n, Trials: trials, IdleBytesPerNodePerSec: -1, BytesPerNodePerChange: -1}
	var wakes, alls []time.Duration
	var before []uint64
	var err error
	if bytesSent != nil {
		if before, err = bytesSent(ctx); err != nil {
			return res, err
		}
	}
	sent0, recv0, _ := eagerCounts(ctx, clients)
	began := time.Now()
	for trial := range trials {
		src := trial % n
		name := fmt.Sprintf("prop-%d-%d", time.Now().UnixNano(), trial)
		seen := make([]time.Time, n)
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		// Every watcher has its first answer (and index) before the registration goes
		// out, so each then waits in a blocking query, as a consumer would.
		ready := make(chan struct{})
		var armed sync.WaitGroup
		armed.Add(n - 1)
		var start time.Time
		var mu sync.Mutex
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			if i == src {
				continue
			}
			wg.Go(func() {
				at, err := clients[i].waitArmed(tctx, "/v1/catalog/service/"+name, countEntries(1), armed.Done, ready)
				mu.Lock()
				seen[i], errs[i] = at, err
				mu.Unlock()
			})
		}
		armed.Wait()
		start = time.Now()
		close(ready)
		regErr := clients[src].put(tctx, "/v1/agent/service/register", map[string]any{"ID": name, "Name": name, "Port": 1})
		wg.Wait()
		cancel()
		if err := errors.Join(append(errs, regErr)...); err != nil {
			return res, fmt.Errorf("registration %d on %s: %w", trial, clients[src].host, err)
		}
		var last time.Duration
		for i, at := range seen {
			if i == src {
				continue
			}
			d := at.Sub(start)
			wakes = append(wakes, d)
			last = max(last, d)
		}
		alls = append(alls, last)
		// Space the trials so one's retransmits do not queue behind the next.
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
		if tr != nil {
			if err := tr.trial(ctx, trial, src, start, seen); err != nil {
				return res, fmt.Errorf("trace of registration %d: %w", trial, err)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil { // the scrape's own load passes
				return res, err
			}
		}
	}
	if bytesSent != nil {
		// Let the piggyback retransmits of the last change go out (memberlist sends
		// them over several gossip intervals) before reading the counters.
		if err := sleep(ctx, 3*time.Second); err != nil {
			return res, err
		}
		after, err := bytesSent(ctx)
		if err != nil {
			return res, err
		}
		elapsed := time.Since(began)
		// Idle traffic varies (push-pull every 10 s carries the member list), so the
		// idle part is measured over a window as long as the trials', right after.
		idleAfter, err := measureIdle(ctx, bytesSent, n, elapsed)
		if err != nil {
			return res, err
		}
		var sent float64
		for i := range after {
			sent += float64(after[i] - before[i])
		}
		res.IdleBytesPerNodePerSec = idle
		res.BytesPerNodePerChange = (sent/float64(n) - idleAfter*elapsed.Seconds()) / float64(trials)
	}
	res.EagerDelivered = -1
	if sent1, recv1, ok := eagerCounts(ctx, clients); ok && sent1 > sent0 {
		res.EagerDelivered = (recv1 - recv0) / (sent1 - sent0)
	}
	res.Wake50, res.Wake99, res.WakeMax = sim.Percentile(wakes, 50), sim.Percentile(wakes, 99), slices.Max(wakes)
	res.All50, res.All99 = sim.Percentile(alls, 50), sim.Percentile(alls, 99)
	return res, nil
}

// waitArmed is waitUntil for a propagation trial: it makes its first request, calls
// armed, waits for ready (the registration is about to go out), then blocks on the
// index until cond holds.
func (c *client) waitArmed(ctx context.Context, path string, cond func([]byte) bool, armed func(), ready <-chan struct{}) (time.Time, error) {
	_, idx, err := c.get(ctx, path)
	armed()
	if err != nil {
		return time.Time{}, err
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	for {
		body, next, err := c.get(ctx, fmt.Sprintf("%s?index=%d&wait=10s", path, idx))
		if err != nil {
			return time.Time{}, err
		}
		if cond(body) {
			return time.Now(), nil
		}
		idx = next
	}
}

// measureIdle returns the bytes per agent per second sent over window.
func measureIdle(ctx context.Context, bytesSent func(context.Context) ([]uint64, error), n int, window time.Duration) (float64, error) {
	before, err := bytesSent(ctx)
	if err != nil {
		return 0, err
	}
	if err := sleep(ctx, window); err != nil {
		return 0, err
	}
	after, err := bytesSent(ctx)
	if err != nil {
		return 0, err
	}
	var sent uint64
	for i := range after {
		sent += after[i] - before[i]
	}
	return float64(sent) / float64(n) / window.Seconds(), nil
}

// localProc is an agent process in this namespace (loopback runs), in a process
// group of its own so that stopping it reaches its children.
type localProc struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

func (p *localProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out.Len() < 1<<20 {
		p.out.Write(b)
	}
	return len(b), nil
}

func (p *localProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startLocal(name, bin string, args ...string) (*localProc, error) {
	p := &localProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *localProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (p *localProc) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// freePorts returns n distinct ports free for TCP and UDP on 127.0.0.1 right now.
func freePorts(n int) ([]int, error) {
	var out []int
	var hold []io.Closer
	defer func() {
		for _, c := range hold {
			c.Close()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		hold = append(hold, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken for UDP: try another
		}
		hold = append(hold, u)
		out = append(out, port)
	}
	return out, nil
}

// localFlags returns the flags an agent binary needs to run beside others in one
// namespace, as far as it has them: DNS on a free port and mDNS off (agents whose
// defaults serve DNS on 127.0.0.1:8600 or multicast on the host's LAN must not).
func localFlags(ctx context.Context, bin string) []string {
	out, _ := exec.CommandContext(ctx, bin, "agent", "--help").CombinedOutput()
	help := string(out)
	var flags []string
	if strings.Contains(help, "--dns-addr") || strings.Contains(help, "-dns-addr ") {
		flags = append(flags, "--dns-addr", "127.0.0.1:0")
	}
	if strings.Contains(help, "--mdns") || strings.Contains(help, "-mdns ") {
		flags = append(flags, "--mdns=false")
	}
	return flags
}

// runLoopback starts n agents of bin on 127.0.0.1 in this namespace (no root needed)
// and measures propagation between them.
func runLoopback(ctx context.Context, bin string, extra []string, n, trials int, progress io.Writer) (res propResult, err error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(progress, "[loopback n=%d] "+format+"\n", append([]any{n}, args...)...)
	}
	dir, err := os.MkdirTemp("", "rumor-netbench-lo-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(2 * n)
	if err != nil {
		return res, err
	}
	flags := localFlags(ctx, bin)
	var procs []*localProc
	defer func() { stopLocal(procs, err != nil, "agent", logf) }()
	var clients []*client
	for i := range n {
		name := fmt.Sprintf("lo%d", i+1)
		gossipAddr := fmt.Sprintf("127.0.0.1:%d", ports[2*i])
		httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
		args := append([]string{"agent", "--node", name, "--bind", gossipAddr, "--data-dir", filepath.Join(dir, name),
			"--http-addr", httpAddr, "--log-level", "warn"}, flags...)
		args = append(args, extra...)
		if i > 0 {
			args = append(args, "--retry-join", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		}
		p, err := startLocal(name, bin, args...)
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
		clients = append(clients, newLocalClient(name, httpAddr))
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	logf("started %d agents; waiting until every one sees all alive", n)
	if err := waitFor(ctx, time.Minute, func() (bool, error) {
		for i, c := range clients {
			if procs[i].exited() {
				return false, fmt.Errorf("agent %s exited", procs[i].name)
			}
			ms, err := c.members(ctx)
			if err != nil || len(ms) != n {
				return false, nil
			}
			for _, m := range ms {
				if m.Status != statusAlive {
					return false, nil
				}
			}
		}
		return true, nil
	}); err != nil {
		return res, fmt.Errorf("loopback agents: %w", err)
	}
	logf("timing %d registrations", trials)
	res, err = measurePropagation(ctx, clients, trials, nil, -1, nil)
	res.Where = "loopback"
	return res, err
}

// runConsulLoopback starts a Consul pool on 127.0.0.1 (one server, n-1 clients, each
// a `consul agent` with its own ports; DNS, gRPC and the WAN pool off) and measures
// propagation as for rumor: a registration on one agent, blocking queries on the
// others (which Consul's clients forward to the server).
func runConsulLoopback(ctx context.Context, bin string, n, trials int, progress io.Writer) (res propResult, err error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(progress, "[consul n=%d] "+format+"\n", append([]any{n}, args...)...)
	}
	dir, err := os.MkdirTemp("", "rumor-netbench-consul-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(4 * n)
	if err != nil {
		return res, err
	}
	var procs []*localProc
	defer func() { stopLocal(procs, err != nil, "consul", logf) }()
	var clients []*client
	for i := range n {
		name := fmt.Sprintf("consul%d", i+1)
		http, lan, server, wan := ports[4*i], ports[4*i+1], ports[4*i+2], ports[4*i+3]
		args := []string{"agent", "-node", name, "-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-data-dir", filepath.Join(dir, name), "-log-level", "warn", "-disable-host-node-id",
			"-hcl", fmt.Sprintf("ports { http = %d, https = -1, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = %d, serf_wan = %d, server = %d }",
				http, lan, wan, server)}
		if i == 0 {
			args = append(args, "-server", "-bootstrap-expect", "1")
		} else {
			args = append(args, "-retry-join", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		}
		p, err := startLocal(name, bin, args...)
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
		clients = append(clients, newLocalClient(name, fmt.Sprintf("127.0.0.1:%d", http)))
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	logf("started 1 server and %d clients; waiting for a leader and every node in the catalog", n-1)
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		for i, c := range clients {
			if procs[i].exited() {
				return false, fmt.Errorf("consul %s exited", procs[i].name)
			}
			body, _, err := c.get(ctx, "/v1/catalog/nodes")
			var nodes []json.RawMessage
			if err != nil || json.Unmarshal(body, &nodes) != nil || len(nodes) != n {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return res, fmt.Errorf("consul pool: %w", err)
	}
	logf("timing %d registrations", trials)
	res, err = measurePropagation(ctx, clients, trials, nil, -1, nil)
	res.System, res.Where = "consul", "loopback"
	return res, err
}

// waitFor polls cond every 200ms until it holds, fails, or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s", d)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// consulVersion returns `consul version`'s first line, or why not.
func consulVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown version: " + err.Error()
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

// writePropTable prints propagation results.
func writePropTable(w io.Writer, rs []propResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\twhere\tagents\tdelay\tregistration → another agent's blocking query wakes: median / p99 / max\tvisible on all: median / p99\tidle B/s per agent\tbytes per agent per change\teager messages delivered")
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) }
	num := func(v float64) string {
		if v < 0 {
			return "–"
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	for _, r := range rs {
		delay := r.Delay
		if delay == "" {
			delay = "–"
		}
		delivered := "–"
		if r.EagerDelivered >= 0 {
			delivered = strconv.FormatFloat(100*r.EagerDelivered, 'f', 1, 64) + "%"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s / %s / %s ms\t%s / %s ms\t%s\t%s\t%s\n", r.System, r.Where, r.Nodes, delay,
			ms(r.Wake50), ms(r.Wake99), ms(r.WakeMax), ms(r.All50), ms(r.All99), num(r.IdleBytesPerNodePerSec), num(r.BytesPerNodePerChange), delivered)
	}
	return tw.Flush()
}

// propRun is what --propagation runs.
type propRun struct {
	sizes            []int
	trials, services int
	steady           time.Duration
	loopback         bool
	bin              string   // rumor (or netemagent with agentArgs)
	agentArgs        []string // flags every agent gets
	baseBin          string   // netemagent, for --baseline; "" for none
	consul           string   // consul binary, for --consul; "" for none
	delay, jitter    time.Duration
	json             bool
	trace            io.Writer // --trace: per-trial hops as JSON lines; nil for none
}

// propagationMain runs --propagation at every size for rumor, then the baseline and
// Consul where asked, and prints one table.
func propagationMain(ctx context.Context, stdout, stderr io.Writer, r propRun) error {
	delay := ""
	if r.delay > 0 || r.jitter > 0 {
		delay = fmt.Sprintf("%s ± %s", r.delay, r.jitter)
	}
	type system struct {
		name string
		bin  string
		args []string
	}
	systems := []system{{"rumor", r.bin, r.agentArgs}}
	if r.baseBin != "" {
		systems = append(systems, system{"rumor, eager path off", r.baseBin, append(netemArgs(r.agentArgs), "--eager=false")})
	}
	var results []propResult
	for _, n := range r.sizes {
		for _, sys := range systems {
			var res propResult
			var err error
			if r.loopback {
				res, err = runLoopback(ctx, sys.bin, sys.args, n, r.trials, stderr)
			} else {
				var full result
				full, err = run(ctx, config{Nodes: n, ServicesPerNode: r.services, Registrations: r.trials,
					SteadyWindow: r.steady, LossWindow: time.Second, Rumor: sys.bin, AgentArgs: sys.args, Progress: stderr, Propagation: true,
					Trace: r.trace})
				if full.Trace != nil {
					fmt.Fprintf(stderr, "%s, %d agents, ", sys.name, n)
					full.Trace.summary(stderr)
				}
				if full.Prop != nil {
					res = *full.Prop
				}
			}
			if err != nil {
				return fmt.Errorf("%s at %d agents: %w", sys.name, n, err)
			}
			res.System, res.Delay = sys.name, delay
			results = append(results, res)
		}
		if r.consul != "" {
			res, err := runConsulLoopback(ctx, r.consul, n, r.trials, stderr)
			if err != nil {
				return fmt.Errorf("consul at %d agents: %w", n, err)
			}
			results = append(results, res)
		}
	}
	if r.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	return writePropTable(stdout, results)
}

// stopLocal stops the processes of a loopback run; when the run failed, it logs the
// last output of each one (a what) that had exited on its own.
func stopLocal(procs []*localProc, failed bool, what string, logf func(string, ...any)) {
	for _, p := range procs {
		if failed && p.exited() {
			out := p.output()
			if len(out) > 2000 {
				out = out[len(out)-2000:]
			}
			logf("%s %s exited; its last output:\n%s", what, p.name, out)
		}
		p.stop()
	}
}

// netemArgs returns the agent flags internal/netemagent takes: all but --mdns=false
// (--no-mdns), which it has no flag for as it never runs mDNS.
func netemArgs(args []string) []string {
	return slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--mdns=false" })
}
