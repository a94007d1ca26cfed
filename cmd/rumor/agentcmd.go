package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/agent"
)

// leaveTimeout bounds the graceful leave on the first interrupt.
const leaveTimeout = 10 * time.Second

// agentFlags are the flags of `rumor agent`.
type agentFlags struct {
	node, datacenter, bind, advertise, encrypt, dataDir, httpAddr, profile, logLevel string
	join, retryJoin, nodeMeta                                                        []string
	dev, enableScriptChecks                                                          bool
	reapAfter                                                                        time.Duration
	debugGossipDelay, debugGossipJitter                                              time.Duration // testing only
}

func newAgentCmd(c *cli) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the rumor agent on this host",
		Long: `Run the rumor agent on this host until interrupted (Ctrl-C or SIGTERM). The
first interrupt leaves the pool gracefully (peers see "left", not "failed") and
exits 0; a second one exits at once.

The agent gossips with its peers on --bind (UDP and TCP, default 0.0.0.0:7946),
serves the HTTP API on --http-addr (default 127.0.0.1:8500), and keeps its node
ID, its registered services and its known peers in --data-dir (default
/var/lib/rumor as root, else ~/.local/state/rumor), so a restart loses nothing
and rejoins the peers it knew.

Join a pool with --join (tried once at start: the agent exits if no address
answers) or --retry-join (retried in the background until one answers). Both
take "ip", "ip:port" or "host:port" and may be repeated.`,
		Example: `  # Try rumor in ten seconds: one node, in memory, verbose logs.
  rumor agent --dev

  # First node of a pool, then others joining it.
  rumor agent --node n1 --bind 10.0.0.1
  rumor agent --node n2 --bind 10.0.0.2 --retry-join 10.0.0.1

  # An encrypted pool.
  rumor agent --encrypt "$(cat /etc/rumor/key)" --retry-join 10.0.0.1`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), c, cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.node, "node", "", "node name, unique in the pool (default: the host name)")
	fl.StringVar(&f.datacenter, "datacenter", "", "datacenter name (default \"dc1\")")
	fl.StringVar(&f.bind, "bind", "", "gossip address, ip[:port] (default 0.0.0.0:7946; 127.0.0.1:7946 with --dev)")
	fl.StringVar(&f.advertise, "advertise", "", "IP address peers reach this node at (default: the bind IP, or a private IP of this host)")
	fl.StringArrayVar(&f.join, "join", nil, "peer to join at start; the agent exits if none answers (repeatable)")
	fl.StringArrayVar(&f.retryJoin, "retry-join", nil, "peer to join in the background, retried until one answers (repeatable)")
	fl.StringVar(&f.encrypt, "encrypt", "", "gossip encryption key, base64 (see 'rumor keygen')")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the node ID, services and known peers (default /var/lib/rumor as root, else ~/.local/state/rumor; in memory with --dev)")
	fl.StringVar(&f.httpAddr, "http-addr", "", "HTTP API listen address, host:port (default: $RUMOR_HTTP_ADDR, else 127.0.0.1:8500)")
	fl.StringVar(&f.profile, "gossip-profile", "", "gossip timing: lan, wan or local (default lan; local with --dev)")
	fl.StringArrayVar(&f.nodeMeta, "node-meta", nil, "node metadata key=value (repeatable)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default info; debug with --dev)")
	fl.DurationVar(&f.reapAfter, "reap-after", 0, "how long a failed node's services stay (critical) before they are dropped (default 72h)")
	fl.BoolVar(&f.dev, "dev", false, "development mode: one node on loopback, in-memory state, fast failure detection, verbose logs")
	fl.BoolVar(&f.enableScriptChecks, "enable-script-checks", false, "allow script checks (Args) in service registrations: they run any program as the agent's user")
	// Testing only, hence hidden: emulate a slow, jittery network (tests and benchmarks
	// on kernels without tc netem).
	fl.DurationVar(&f.debugGossipDelay, "debug-gossip-delay", 0, "FOR TESTING ONLY: delay every gossip packet and stream this agent sends")
	fl.DurationVar(&f.debugGossipJitter, "debug-gossip-jitter", 0, "FOR TESTING ONLY: spread each delay uniformly over delay ± jitter (reorders packets)")
	_ = fl.MarkHidden("debug-gossip-delay")
	_ = fl.MarkHidden("debug-gossip-jitter")
	return cmd
}

// agentConfig turns the flags into an agent config.
func agentConfig(c *cli, f *agentFlags) (agent.Config, slog.Level, error) {
	cfg := agent.DefaultConfig()
	cfg.NodeName, cfg.Datacenter, cfg.DataDir = f.node, f.datacenter, f.dataDir
	cfg.Dev, cfg.GossipProfile, cfg.EncryptKey = f.dev, f.profile, f.encrypt
	cfg.Join, cfg.RetryJoin, cfg.Version = f.join, f.retryJoin, version
	cfg.HTTPAddr, cfg.EnableScriptChecks = f.httpAddr, f.enableScriptChecks
	if f.reapAfter < 0 {
		return cfg, 0, usagef("--reap-after %s: must not be negative", f.reapAfter)
	}
	cfg.ReapAfter = f.reapAfter
	if f.debugGossipDelay < 0 || f.debugGossipJitter < 0 {
		return cfg, 0, usagef("--debug-gossip-delay %s / --debug-gossip-jitter %s: must not be negative", f.debugGossipDelay, f.debugGossipJitter)
	}
	cfg.DebugGossipDelay, cfg.DebugGossipJitter = f.debugGossipDelay, f.debugGossipJitter
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = c.getenv("RUMOR_HTTP_ADDR")
	}
	if f.bind != "" {
		host, port, err := splitHostPort(f.bind, agent.DefaultBindPort)
		if err != nil {
			return cfg, 0, usagef("--bind %q: %v", f.bind, err)
		}
		cfg.BindAddr, cfg.BindPort = host, port
	}
	if f.advertise != "" {
		if _, err := netip.ParseAddr(f.advertise); err != nil {
			return cfg, 0, usagef("--advertise %q: want an IP address", f.advertise)
		}
		cfg.AdvertiseAddr = f.advertise
	}
	for _, kv := range f.nodeMeta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return cfg, 0, usagef("--node-meta %q: want key=value", kv)
		}
		if cfg.NodeMeta == nil {
			cfg.NodeMeta = map[string]string{}
		}
		cfg.NodeMeta[k] = v
	}
	level := slog.LevelInfo
	if f.dev {
		level = slog.LevelDebug
	}
	if f.logLevel != "" {
		if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
			return cfg, 0, usagef("--log-level %q: want debug, info, warn or error", f.logLevel)
		}
	}
	return cfg, level, nil
}

// splitHostPort parses "ip" or "ip:port".
func splitHostPort(s string, defPort int) (string, int, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.String(), defPort, nil
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, errors.New("want ip or ip:port, such as 10.0.0.1:7946")
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", 0, fmt.Errorf("%q is not an IP address", host)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0–65535", p)
	}
	return host, port, nil
}

// runAgent runs an agent until ctx ends, then leaves gracefully.
func runAgent(ctx context.Context, c *cli, cmd *cobra.Command, f *agentFlags) error {
	cfg, level, err := agentConfig(c, f)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	a, err := agent.New(cfg)
	if err != nil {
		return usageErr(err)
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	httpAddr := a.HTTPAddr().String()
	log.Info("rumor agent running", "version", version, "node", a.NodeName(),
		"http", httpAddr, "gossip", a.GossipAddr().String(), "dev", cfg.Dev)
	if cfg.Dev {
		hint := ""
		if httpAddr != agent.DefaultHTTPAddr {
			hint = " --http-addr " + httpAddr
		}
		fmt.Fprintf(c.stderr, "\nDev agent ready. Try, in another terminal:\n  rumor register%s --name web --port 8080 --tag v1\n  rumor services%s\n  curl http://%s/v1/health/service/web\n\n", hint, hint, httpAddr)
	}
	<-ctx.Done()
	log.Info("leaving the pool (interrupt again to exit at once)")
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	done := make(chan error, 1)
	go func() {
		lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		done <- a.Leave(lctx)
	}()
	select {
	case err := <-done:
		return err
	case <-again:
		return exitError{code: exitFailed, err: errors.New("interrupted again: exiting without a graceful leave")}
	}
}
