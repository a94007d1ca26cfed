// Command netemagent is a test binary: a rumor agent whose gossip is delayed by
// gossip/netem, for namespace tests and benchmarks on kernels without tc netem. It
// stands in for `rumor agent` (`netemagent agent --node h1 --bind … --delay 30ms
// --jitter 20ms`), taking the agent flags those tests use, so the shipped rumor binary
// needs no hidden test flags and links no test support: the delay reaches the agent
// through agent.Config.GossipHook and gossip.Config.WrapTransport.
//
// Like `rumor agent`, it runs until SIGINT or SIGTERM (or an API request to leave),
// then leaves the pool gracefully; it exits 2 on bad flags and 1 if the agent fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/gossip/netem"
)

// leaveTimeout bounds the graceful leave, as `rumor agent` does.
const leaveTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

// run parses args into an agent config, runs the agent until ctx ends and returns
// the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, delay, level, eager, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "netemagent:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	cfg.GossipHook = func(gc *gossip.Config) {
		gc.WrapTransport = netem.Wrapper(delay)
		gc.Eager.Disabled = !eager // --eager=false: the baseline of sim/netbench --baseline
	}
	a, err := agent.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "netemagent:", err)
		return 2
	}
	if err := a.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "netemagent:", err)
		return 1
	}
	log.Warn("debug gossip delay is on: everything this node sends is delayed (for testing only)",
		"latency", delay.Latency, "jitter", delay.Jitter)
	select {
	case <-ctx.Done():
	case <-a.LeaveRequested():
	}
	lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := a.Leave(lctx); err != nil {
		fmt.Fprintln(stderr, "netemagent:", err)
		return 1
	}
	return 0
}

// parse reads `[agent] flags`; the flags are `rumor agent`'s, as far as the tests use
// them, and the delay's.
func parse(args []string, stderr io.Writer) (agent.Config, netem.Config, slog.Level, bool, error) {
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	cfg := agent.DefaultConfig()
	var delay netem.Config
	var bind, logLevel string
	var retryJoin, join list
	fs := flag.NewFlagSet("netemagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.NodeName, "node", "", "node name")
	fs.StringVar(&bind, "bind", "", "gossip address, ip[:port]")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "data directory")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "", "HTTP API address, host:port")
	fs.StringVar(&cfg.EncryptKey, "encrypt", "", "gossip encryption key, base64")
	fs.DurationVar(&cfg.ReapAfter, "reap-after", 0, "how long a failed node's services stay")
	fs.Var(&retryJoin, "retry-join", "peer to join in the background (repeatable)")
	fs.Var(&join, "join", "peer to join at start (repeatable)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&delay.Latency, "delay", 0, "delay added to everything this agent's gossip sends")
	fs.DurationVar(&delay.Jitter, "jitter", 0, "each delay is drawn uniformly from delay ± jitter (packets reorder)")
	eager := fs.Bool("eager", true, "send local changes on gossip's eager path (false: piggyback and anti-entropy only)")
	if err := fs.Parse(args); err != nil {
		return cfg, delay, 0, *eager, err
	}
	if fs.NArg() > 0 {
		return cfg, delay, 0, *eager, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := delay.Validate(); err != nil {
		return cfg, delay, 0, *eager, err
	}
	cfg.RetryJoin, cfg.Join = retryJoin, join
	if bind != "" {
		host, port, err := net.SplitHostPort(bind)
		if err != nil {
			host, port = bind, strconv.Itoa(cfg.BindPort)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return cfg, delay, 0, *eager, fmt.Errorf("--bind %q: port %q is not a number", bind, port)
		}
		cfg.BindAddr, cfg.BindPort = host, p
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, delay, 0, *eager, fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
	}
	return cfg, delay, level, *eager, nil
}
