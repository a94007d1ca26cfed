// Command netbench benchmarks rumor with real agent processes: it starts N `rumor
// agent` processes, each in its own network namespace on one bridge (internal/testnet),
// with 10 services each, and prints the same table as `rumor sim`: time from a
// registration on one agent until 50%, 99% and 100% of agents answer with it (each
// watched by a blocking query on its HTTP API), time from kill -9 of one agent until
// every other one reports it failed (next to memberlist's suspicion bound), bytes per
// second each agent sends while idle (its bridge port's counters: whole frames), and
// how many healthy agents are declared failed under 10% packet loss on every host.
//
// It needs root, iproute2 and nftables, and runs in real time (about two minutes per
// size with the default windows, plus start-up):
//
//	sudo go run ./sim/netbench --nodes 10,25,50
//	sudo go run ./sim/netbench --nodes 5 --trials 5 --steady-window 10s --loss-window 20s
//	sudo go run ./sim/netbench --nodes 10 --delay 30ms --jitter 20ms
//
// With --delay or --jitter, which this kernel cannot add (no tc netem), the agents are
// the test agent internal/netemagent, a stand-in for `rumor agent` whose gossip goes
// through gossip/netem, so that the shipped rumor binary carries no test flags.
//
// Exit status: 0 measured, 1 failed (or cannot run here), 2 bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rumor-sd/rumor/internal/testnet"
	"github.com/rumor-sd/rumor/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks bad flags (exit 2).
type usageError struct{ error }

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := benchMain(ctx, args, stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "netbench:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "netbench:", err)
		return 1
	}
}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("netbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("nodes", "10,25,50", "cluster sizes to run, comma-separated (each at least 3)")
	trials := fs.Int("trials", 20, "registrations timed per size")
	services := fs.Int("services", 10, "services each agent registers")
	steady := fs.Duration("steady-window", 20*time.Second, "how long idle traffic is measured")
	lossWindow := fs.Duration("loss-window", 60*time.Second, "how long loss is applied while counting false failures")
	loss := fs.Int("loss", 10, "packet loss on every host during the loss window, percent")
	rumorBin := fs.String("rumor", "", "rumor binary the agents run (default: build ./cmd/rumor)")
	delay := fs.Duration("delay", 0, "delay every agent adds to what its gossip sends (runs internal/netemagent)")
	jitter := fs.Duration("jitter", 0, "spread each delay over delay ± jitter, so packets reorder (runs internal/netemagent)")
	jsonOut := fs.Bool("json", false, "print JSON for scripts instead of a table")
	propagation := fs.Bool("propagation", false, "time only propagation: registration on one agent → blocking query on the others, idle bytes and bytes per change")
	loopback := fs.Bool("loopback", false, "with --propagation: run the agents on 127.0.0.1 in this namespace (no root needed; no byte counts)")
	consulBin := fs.String("consul", "", "with --propagation --loopback: also time a Consul pool (1 server, N-1 clients) run from this consul binary")
	baseline := fs.Bool("baseline", false, "with --propagation: also time rumor with its eager path off (runs internal/netemagent --eager=false)")
	traceFile := fs.String("trace", "", "with --propagation in namespaces: write each trial's hops, by the agents' own timestamps, to this file (JSON lines) and print their percentiles")
	noMDNS := fs.Bool("no-mdns", false, "run the rumor agents with --mdns=false (mDNS is on by default in the CLI, and its multicast counts in idle traffic; internal/netemagent never runs it)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: netbench [flags]

Benchmark real rumor agents, one per network namespace: registration spread,
kill -9 detection, idle traffic and false failures under loss. Needs root,
iproute2 and nftables.

Examples:
  sudo go run ./sim/netbench                      # N = 10, 25, 50
  sudo go run ./sim/netbench --nodes 5 --trials 5 --steady-window 10s --loss-window 20s

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 || n > 253 {
			return usageError{fmt.Errorf("--nodes %q: want a comma-separated list of sizes, each from 3 to 253", *sizes)}
		}
		ns = append(ns, n)
	}
	switch {
	case *trials < 1:
		return usageError{fmt.Errorf("--trials %d: want at least 1", *trials)}
	case *services < 0:
		return usageError{fmt.Errorf("--services %d: must not be negative", *services)}
	case *steady <= 0 || *lossWindow <= 0:
		return usageError{errors.New("--steady-window and --loss-window must be positive")}
	case *loss < 0 || *loss > 100:
		return usageError{fmt.Errorf("--loss %d: want 0 to 100", *loss)}
	case *delay < 0 || *jitter < 0:
		return usageError{fmt.Errorf("--delay %s / --jitter %s: must not be negative", *delay, *jitter)}
	case (*delay > 0 || *jitter > 0) && *rumorBin != "":
		return usageError{errors.New("--delay and --jitter run the test agent internal/netemagent: drop --rumor")}
	case (*loopback || *baseline) && !*propagation:
		return usageError{errors.New("--loopback and --baseline go with --propagation")}
	case *consulBin != "" && !*loopback:
		return usageError{errors.New("--consul runs a Consul pool on loopback: add --propagation --loopback")}
	case *traceFile != "" && (!*propagation || *loopback):
		return usageError{errors.New("--trace goes with --propagation in namespaces: drop --loopback")}
	case *loopback && (*delay > 0 || *jitter > 0):
		return usageError{errors.New("--delay and --jitter need namespaces: drop --loopback")}
	}
	if !*loopback {
		if err := testnet.Available(); err != nil {
			return fmt.Errorf("cannot run agents in network namespaces here (run as root with iproute2 and nftables): %w", err)
		}
	}
	binDir, err := os.MkdirTemp("", "rumor-netbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	build := func(pkg string) (string, error) {
		bin := filepath.Join(binDir, filepath.Base(pkg))
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
		fmt.Fprintln(stderr, "building", pkg, "...")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("build %s (or pass --rumor): %w", pkg, err)
		}
		return bin, nil
	}
	const netemPkg = "github.com/rumor-sd/rumor/internal/netemagent"
	bin, pkg := *rumorBin, "github.com/rumor-sd/rumor/cmd/rumor"
	var agentArgs []string
	if *delay > 0 || *jitter > 0 {
		pkg = netemPkg
		agentArgs = []string{"--delay", delay.String(), "--jitter", jitter.String()}
	} else if *noMDNS {
		agentArgs = []string{"--mdns=false"}
	}
	if bin == "" {
		if bin, err = build(pkg); err != nil {
			return err
		}
	} else if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	if *propagation {
		var trace io.Writer
		if *traceFile != "" {
			f, err := os.Create(*traceFile)
			if err != nil {
				return err
			}
			defer f.Close()
			trace = f
		}
		var baseBin string
		if *baseline {
			if baseBin, err = build(netemPkg); err != nil {
				return err
			}
		}
		if *consulBin != "" {
			fmt.Fprintln(stderr, "consul:", consulVersion(ctx, *consulBin))
		}
		return propagationMain(ctx, stdout, stderr, propRun{sizes: ns, trials: *trials, services: *services, steady: *steady,
			loopback: *loopback, bin: bin, agentArgs: agentArgs, baseBin: baseBin, consul: *consulBin,
			delay: *delay, jitter: *jitter, json: *jsonOut, trace: trace})
	}
	var results []result
	for _, n := range ns {
		res, err := run(ctx, config{Nodes: n, ServicesPerNode: *services, Registrations: *trials,
			SteadyWindow: *steady, LossWindow: *lossWindow, LossPercent: *loss, Rumor: bin, AgentArgs: agentArgs, Progress: stderr})
		if err != nil {
			return fmt.Errorf("at %d agents: %w", n, err)
		}
		results = append(results, res)
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	rs := make([]sim.Result, len(results))
	for i, r := range results {
		rs[i] = r.Result
	}
	if err := sim.WriteTable(stdout, rs); err != nil {
		return err
	}
	for _, r := range results {
		fmt.Fprintf(stdout, "agents' memory at %d: %d MiB resident in all, %d MiB each\n", r.Nodes, r.AgentRSS>>20, r.AgentRSS/uint64(r.Nodes)>>20)
	}
	return nil
}
