package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/config"
	"github.com/rumor-sd/rumor/proxy"
)

// On the first interrupt the agent says goodbye for at most leaveTimeout, and stops
// altogether within stopTimeout (then exits anyway, with a message and status 1).
const (
	leaveTimeout = 5 * time.Second
	stopTimeout  = 10 * time.Second
)

// agentFlags are the flags of `rumor agent`.
type agentFlags struct {
	node, datacenter, bind, advertise, encrypt, dataDir, httpAddr, profile, logLevel string
	join, retryJoin, nodeMeta, configFiles, configDirs                               []string
	dev, enableScriptChecks                                                          bool
	enableLocalScriptChecks                                                          bool
	reapAfter                                                                        time.Duration
	moveRetention, moveWindow                                                        time.Duration
	httpToken, httpTLSCert, httpTLSKey                                               string
	httpTokenReads                                                                   bool
	docker, dockerInternal                                                           bool
	dockerHost                                                                       string
	limits                                                                           agent.Limits
	dns                                                                              dnsFlags  // --dns-* (dnscmd.go)
	mdns                                                                             mdnsFlags // mdnscmd.go

	ui bool // --ui: serve the web UI (ui_config.enabled)
	// upstreams are --upstream's: the local proxy's own listeners.
	upstreams []string
	// probeReachability is --probe-reachability.
	probeReachability bool

	// fs is the parsed flag set, to tell a flag given (on the command line or by
	// its RUMOR_* variable) from its default. Nil counts every flag as given.
	fs *pflag.FlagSet
}

// given reports whether the flag was set on the command line or by environment.
func (f *agentFlags) given(name string) bool { return f.fs == nil || f.fs.Changed(name) }

func newAgentCmd(c *cli) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the rumor agent on this host",
		Long: `Run the rumor agent on this host until interrupted (Ctrl-C or SIGTERM) or told
to leave ('rumor leave'). The first interrupt leaves the pool gracefully (peers
see "left", not "failed") and exits 0; if that takes more than 10s the agent
exits anyway, with status 1. A second interrupt exits at once, with status 1.

With no flags at all, the agent gossips on 0.0.0.0:7946 (UDP and TCP; --bind),
serves the HTTP API on 127.0.0.1:8500 (--http-addr), names itself after the
host (--node), and keeps its node ID, its registered services and its known
peers in the data dir (--data-dir): /var/lib/rumor as root, else
$XDG_STATE_HOME/rumor, else ~/.local/state/rumor. So a restart loses nothing
and rejoins the peers it knew.

Join a pool with --join (tried once at start: the agent exits if no address
answers) or --retry-join (retried in the background until one answers). Both
take "ip", "ip:port", "host" or "host:port" (the port is 7946 if not given) and
may be repeated.

The HTTP API listens on loopback by default. To expose it further, protect it:
--http-token (or $RUMOR_HTTP_TOKEN) makes every write need the token, sent as
X-Consul-Token or "Authorization: Bearer" (CLI commands send $RUMOR_HTTP_TOKEN);
--http-token-reads requires it on reads too; --http-tls-cert and --http-tls-key
serve HTTPS instead of HTTP (point clients at https://host:port).

Script checks (a check's "args") run any program as the agent's user, so they
are off by default. --enable-local-script-checks allows them in config files
only: whoever can write those can run programs anyway. --enable-script-checks
allows them in config files and through the HTTP API, but the API takes them
only when --http-token is set (and sent), since otherwise any local user could
make the agent run anything.

Configuration comes from, highest precedence first:
  1. flags;
  2. environment variables RUMOR_<FLAG> (the flag's name in capitals, '-' as
     '_': RUMOR_NODE, RUMOR_DATA_DIR, RUMOR_RETRY_JOIN, RUMOR_CONFIG_DIR, ...;
     list flags take comma-separated values);
  3. config files: --config-file (repeatable), then every *.json and *.hcl file
     of each --config-dir (repeatable) in name order. They use Consul's schema
     and key names (node_name, datacenter, data_dir, bind_addr, advertise_addr,
     client_addr, addresses.http, ports.http, ports.serf_lan, retry_join,
     start_join, encrypt, node_meta, enable_script_checks,
     enable_local_script_checks, log_level, reconnect_timeout, cert_file, key_file; and rumor's own http_token,
     http_token_reads, move_retention, move_window; ui_config.enabled) and may define services ("service" or "services", with
     "check"/"checks"); later files override earlier ones, lists append;
  4. defaults.
A flag's list (--join, --retry-join) replaces the files' list; --node-meta keys
override the files' keys. 'rumor validate' checks files without starting.

--docker registers the services of this host's Docker (or podman) containers
and follows them, as Registrator did: each published port (with
--docker-internal, each exposed port at the container's own address) becomes a
service, named and checked by the container's SERVICE_* labels or environment
variables (SERVICE_NAME, SERVICE_TAGS, SERVICE_CHECK_HTTP, ...), with a check
that follows the container's state and Docker HEALTHCHECK. A stopped container's
services go (label rumor.deregister=on-success|never keeps them). The engine is
$DOCKER_HOST or /var/run/docker.sock unless --docker-host says otherwise; while
it is unreachable the agent keeps serving, retries, and reports it in the
node check _rumor_docker and the metric rumor_docker_connected.

SIGHUP, 'rumor reload' or PUT /v1/agent/reload re-read the config files'
services and apply only what changed: unchanged services keep their checks'
state, services registered through the API are never touched, and an invalid
file is reported while the previous configuration stays in force. A reload
also applies log_level (unless --log-level is given); other keys need a
restart.

Every registration counts against the node's limits, whatever its source
(HTTP API, CLI, config files): --max-services (default 10000), --max-checks
(default 20000, services' and the node's own) and --max-checks-per-service
(default 100). One past a limit is refused with HTTP 400 naming it (a config
file: an invalid file, naming file and service); raise them for hosts that
run more, such as Docker hosts with thousands of containers.`,
		Example: `  # Try rumor in ten seconds: one node, in memory, verbose logs.
  rumor agent --dev

  # First node of a pool, then others joining it.
  rumor agent --node n1 --bind 10.0.0.1
  rumor agent --node n2 --bind 10.0.0.2 --retry-join 10.0.0.1

  # An encrypted pool.
  rumor agent --encrypt "$(cat /etc/rumor/key)" --retry-join 10.0.0.1

  # Services and settings from Consul-style files; reload them after an edit.
  rumor agent --config-dir /etc/rumor.d
  RUMOR_CONFIG_DIR=/etc/rumor.d RUMOR_LOG_LEVEL=debug rumor agent
  kill -HUP "$(pidof rumor)"    # or: rumor reload

  # Register this host's containers (podman: --docker-host /run/podman/podman.sock).
  rumor agent --docker
  docker run -d -p 8080:80 -e SERVICE_NAME=web -e SERVICE_CHECK_HTTP=/ nginx

  # The HTTP API on every interface, over HTTPS, writes only with the token.
  RUMOR_HTTP_TOKEN=s3cret rumor agent --http-addr 0.0.0.0:8500 \
    --http-tls-cert /etc/rumor/http.pem --http-tls-key /etc/rumor/http-key.pem`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.fs = cmd.Flags()
			if err := applyEnv(c, f.fs); err != nil {
				return err
			}
			return runAgent(cmd.Context(), c, cmd, &f)
		},
	}
	addAgentFlags(cmd.Flags(), &f)
	return cmd
}

// addAgentFlags defines the flags of `rumor agent` on fl, bound to f.
func addAgentFlags(fl *pflag.FlagSet, f *agentFlags) {
	fl.StringArrayVar(&f.configFiles, "config-file", nil, "config file, JSON or HCL in Consul's schema (repeatable)")
	fl.StringArrayVar(&f.configDirs, "config-dir", nil, "directory of config files, *.json and *.hcl read in name order (repeatable)")
	fl.StringVar(&f.node, "node", "", "node name, unique in the pool (default: the host name)")
	fl.StringVar(&f.datacenter, "datacenter", "", "datacenter name (default \"dc1\")")
	fl.StringVar(&f.bind, "bind", "", "gossip address, ip[:port] (default 0.0.0.0:7946; 127.0.0.1:7946 with --dev)")
	fl.StringVar(&f.advertise, "advertise", "", "IP address peers reach this node at (default: the bind IP, or a private IP of this host)")
	fl.StringArrayVar(&f.join, "join", nil, "peer to join at start; the agent exits if none answers (repeatable)")
	fl.StringArrayVar(&f.retryJoin, "retry-join", nil, "peer to join in the background, retried until one answers (repeatable)")
	fl.StringVar(&f.encrypt, "encrypt", "", "gossip encryption key, base64 (see 'rumor keygen'); seeds the keyring of a fresh data dir: later the saved keyring (local.keyring, changed by 'rumor keyring') is used")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the node ID, services and known peers (default /var/lib/rumor as root, else $XDG_STATE_HOME/rumor or ~/.local/state/rumor; in memory with --dev)")
	fl.StringVar(&f.httpAddr, "http-addr", "", "HTTP API listen address, host:port (default: $RUMOR_HTTP_ADDR, else 127.0.0.1:8500)")
	fl.StringVar(&f.httpToken, "http-token", "", "token HTTP API writes require, in X-Consul-Token or Authorization: Bearer (default: $RUMOR_HTTP_TOKEN, else none)")
	fl.BoolVar(&f.httpTokenReads, "http-token-reads", false, "require the --http-token on reads as well")
	fl.StringVar(&f.httpTLSCert, "http-tls-cert", "", "PEM certificate file: serve the HTTP API over HTTPS (needs --http-tls-key)")
	fl.StringVar(&f.httpTLSKey, "http-tls-key", "", "PEM private key file of --http-tls-cert")
	fl.StringVar(&f.profile, "gossip-profile", "", "gossip timing: lan, wan or local (default lan; local with --dev)")
	fl.StringArrayVar(&f.nodeMeta, "node-meta", nil, "node metadata key=value (repeatable)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default info; debug with --dev)")
	fl.DurationVar(&f.reapAfter, "reap-after", 0, "how long a failed node's services stay (critical) before they are dropped (default 72h)")
	fl.DurationVar(&f.moveRetention, "move-retention", 0, "how long this node keeps the forward pointer of a service instance that moved away (default 72h; see 'rumor service move --help')")
	fl.DurationVar(&f.moveWindow, "move-window", 0, "how long after a deregistration the same service ID appearing on another node counts as a move (default 10m; negative: never)")
	fl.BoolVar(&f.dev, "dev", false, "development mode: one node on loopback, in-memory state, fast failure detection, verbose logs")
	fl.BoolVar(&f.enableScriptChecks, "enable-script-checks", false, "allow script checks (Args), which run any program as the agent's user: from config files, and through the HTTP API only with --http-token too")
	fl.BoolVar(&f.enableLocalScriptChecks, "enable-local-script-checks", false, "allow script checks (Args) from config files only, never through the HTTP API")
	fl.BoolVar(&f.docker, "docker", false, "register the services of this host's Docker containers and follow them (SERVICE_* labels or env; see above)")
	fl.StringVar(&f.dockerHost, "docker-host", "", "Docker or podman engine address: unix:///path.sock, tcp://host:port or a socket path (default: $DOCKER_HOST, else /var/run/docker.sock)")
	fl.BoolVar(&f.dockerInternal, "docker-internal", false, "with --docker: register containers' own IP addresses and exposed ports instead of published host ports")
	fl.IntVar(&f.limits.MaxServices, "max-services", 0, "most services registered on this node, from the API and config files together; one more is refused (HTTP 400) (default 10000)")
	fl.IntVar(&f.limits.MaxChecks, "max-checks", 0, "most checks on this node, services' and the node's own (default 20000)")
	fl.IntVar(&f.limits.MaxChecksPerService, "max-checks-per-service", 0, "most checks one service may have (default 100)")
	addDNSFlags(fl, &f.dns)
	fl.BoolVar(&f.probeReachability, "probe-reachability", false, "probe (TCP connect, at most 10/s) the instances asked about to learn which this host cannot reach: they come last in answers, and ?reachable leaves them out")
	fl.StringArrayVar(&f.upstreams, "upstream", nil, "local proxy listener: service=[ip:]port or service:tag=[ip:]port forwards each connection to a healthy instance (repeatable; ip defaults to 127.0.0.1)")
	addMDNSFlags(fl, &f.mdns)
	fl.BoolVar(&f.ui, "ui", true, "serve the web UI at /ui/ on the HTTP address; --ui=false turns it off (ui_config.enabled in a config file)")
}

// applyEnv sets every flag not given on the command line from its RUMOR_<FLAG>
// variable, if set, so flags win over the environment. List flags split the value
// on commas.
func applyEnv(c *cli, fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || fl.Name == "help" {
			return
		}
		name := envName(fl.Name)
		v := c.getenv(name)
		if v == "" {
			return
		}
		vals := []string{v}
		if strings.HasSuffix(fl.Value.Type(), "Array") || strings.HasSuffix(fl.Value.Type(), "Slice") {
			vals = strings.Split(v, ",")
		}
		for _, x := range vals {
			if err := fs.Set(fl.Name, strings.TrimSpace(x)); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
				return
			}
		}
	})
	if len(errs) > 0 {
		return usageErr(errors.Join(errs...))
	}
	return nil
}

// envName is the environment variable of a flag: --retry-join → RUMOR_RETRY_JOIN.
func envName(flag string) string {
	return "RUMOR_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configPaths are the config files and directories to read, files first.
func (f *agentFlags) configPaths() []string {
	return append(slices.Clone(f.configFiles), f.configDirs...)
}

// agentConfig builds the agent config: defaults, overridden by config files,
// overridden by flags (and their RUMOR_* variables, applied as flags). It also
// returns the log level and, when there are config files, the loader of their
// services for Start and Reload. A reload also applies the files' log_level to the
// returned level (unless --log-level fixes it), as Consul's does; other settings
// take effect at the next start.
func agentConfig(c *cli, f *agentFlags) (agent.Config, *slog.LevelVar, error) {
	cfg := agent.DefaultConfig()
	cfg.DNS.Addr = agent.DefaultDNSAddr // the CLI serves DNS by default (the Go API does not)
	defaultLevel := slog.LevelInfo
	if f.dev {
		defaultLevel = slog.LevelDebug
	}
	level := new(slog.LevelVar)
	level.Set(defaultLevel)
	// levelFrom is the level the files' settings give, unless a flag fixes it.
	levelFrom := func(s config.Settings) {
		switch {
		case f.logLevel != "":
		case s.LogLevel != nil:
			level.Set(*s.LogLevel)
		default:
			level.Set(defaultLevel)
		}
	}
	if paths := f.configPaths(); len(paths) > 0 {
		var opts config.Options
		if f.fs != nil && f.fs.Changed("enable-script-checks") {
			opts.EnableScriptChecks = &f.enableScriptChecks
		}
		if f.fs != nil && f.fs.Changed("enable-local-script-checks") {
			opts.EnableLocalScriptChecks = &f.enableLocalScriptChecks
		}
		fc, err := config.Load(paths, opts)
		if err != nil {
			return cfg, nil, usageErr(fmt.Errorf("invalid configuration (check it with 'rumor validate'):\n%w", err))
		}
		fc.Settings.Apply(&cfg)
		levelFrom(fc.Settings)
		cfg.ConfigServices = servicesLoader(fc.Services, paths, opts, levelFrom)
	}
	cfg.Version = version
	override(f, "node", &cfg.NodeName, f.node)
	override(f, "datacenter", &cfg.Datacenter, f.datacenter)
	override(f, "data-dir", &cfg.DataDir, f.dataDir)
	override(f, "dev", &cfg.Dev, f.dev)
	override(f, "gossip-profile", &cfg.GossipProfile, f.profile)
	override(f, "encrypt", &cfg.EncryptKey, f.encrypt)
	override(f, "join", &cfg.Join, f.join)
	override(f, "retry-join", &cfg.RetryJoin, f.retryJoin)
	override(f, "http-addr", &cfg.HTTPAddr, f.httpAddr)
	override(f, "enable-script-checks", &cfg.EnableScriptChecks, f.enableScriptChecks)
	override(f, "enable-local-script-checks", &cfg.EnableLocalScriptChecks, f.enableLocalScriptChecks)
	override(f, "docker", &cfg.Docker.Enabled, f.docker)
	override(f, "docker-host", &cfg.Docker.Host, f.dockerHost)
	override(f, "docker-internal", &cfg.Docker.Internal, f.dockerInternal)
	if (cfg.Docker.Host != "" || cfg.Docker.Internal) && !cfg.Docker.Enabled {
		return cfg, nil, usagef("--docker-host and --docker-internal configure the Docker watcher: add --docker")
	}
	if err := f.mdns.apply(f, &cfg); err != nil {
		return cfg, nil, err
	}
	if f.reapAfter < 0 {
		return cfg, nil, usagef("--reap-after %s: must not be negative", f.reapAfter)
	}
	override(f, "reap-after", &cfg.ReapAfter, f.reapAfter)
	if f.moveRetention < 0 {
		return cfg, nil, usagef("--move-retention %s: must not be negative", f.moveRetention)
	}
	override(f, "move-retention", &cfg.MoveRetention, f.moveRetention)
	override(f, "move-window", &cfg.MoveWindow, f.moveWindow)
	override(f, "http-token", &cfg.HTTPToken, f.httpToken) // or $RUMOR_HTTP_TOKEN, through applyEnv
	override(f, "http-token-reads", &cfg.HTTPTokenReads, f.httpTokenReads)
	override(f, "http-tls-cert", &cfg.HTTPTLSCert, f.httpTLSCert)
	override(f, "http-tls-key", &cfg.HTTPTLSKey, f.httpTLSKey)
	override(f, "max-services", &cfg.Limits.MaxServices, f.limits.MaxServices)
	override(f, "max-checks", &cfg.Limits.MaxChecks, f.limits.MaxChecks)
	override(f, "max-checks-per-service", &cfg.Limits.MaxChecksPerService, f.limits.MaxChecksPerService)
	if err := applyDNSFlags(f, &cfg); err != nil {
		return cfg, nil, err
	}
	if f.given("ui") {
		cfg.DisableUI = !f.ui
	}
	override(f, "probe-reachability", &cfg.ProbeReachability, f.probeReachability)
	for _, s := range f.upstreams {
		u, err := proxy.ParseUpstream(s)
		if err != nil {
			return cfg, nil, usagef("--upstream: %v", err)
		}
		cfg.Proxy.Upstreams = append(cfg.Proxy.Upstreams, u)
	}
	if (cfg.HTTPTLSCert == "") != (cfg.HTTPTLSKey == "") {
		return cfg, nil, usagef("--http-tls-cert and --http-tls-key go together (cert_file and key_file in a config file): give both or neither")
	}
	if cfg.HTTPTokenReads && cfg.HTTPToken == "" {
		return cfg, nil, usagef("--http-token-reads needs a token: give --http-token, set RUMOR_HTTP_TOKEN or http_token in a config file")
	}
	if f.bind != "" {
		host, port, err := splitHostPort(f.bind, cfg.BindPort)
		if err != nil {
			return cfg, nil, usagef("--bind %q: %v", f.bind, err)
		}
		cfg.BindAddr, cfg.BindPort = host, port
	}
	if f.advertise != "" {
		if _, err := netip.ParseAddr(f.advertise); err != nil {
			return cfg, nil, usagef("--advertise %q: want an IP address", f.advertise)
		}
		cfg.AdvertiseAddr = f.advertise
	}
	for _, kv := range f.nodeMeta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return cfg, nil, usagef("--node-meta %q: want key=value", kv)
		}
		cfg.NodeMeta = maps.Clone(cfg.NodeMeta)
		if cfg.NodeMeta == nil {
			cfg.NodeMeta = map[string]string{}
		}
		cfg.NodeMeta[k] = v
	}
	if f.logLevel != "" {
		l, err := config.ParseLogLevel(f.logLevel)
		if err != nil {
			return cfg, nil, usagef("--log-level %v", err)
		}
		level.Set(l)
	}
	return cfg, level, nil
}

// override sets *dst to v when the flag name was given on the command line or by
// its RUMOR_* variable, so a flag left at its default keeps what files set.
func override[T any](f *agentFlags, name string, dst *T, v T) {
	if f.given(name) {
		*dst = v
	}
}

// servicesLoader returns the agent's Config.ConfigServices: the services read at
// startup for the first call (Start), then the files read again (each Reload), whose
// settings it hands to reloaded.
func servicesLoader(first []agent.ConfigService, paths []string, opts config.Options, reloaded func(config.Settings)) func() ([]agent.ConfigService, error) {
	var mu sync.Mutex
	used := false
	return func() ([]agent.ConfigService, error) {
		mu.Lock()
		defer mu.Unlock()
		if !used {
			used = true
			return first, nil
		}
		fc, err := config.Load(paths, opts)
		if err != nil {
			return nil, err
		}
		reloaded(fc.Settings)
		return fc.Services, nil
	}
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
	c.handlesAgain.Store(true) // a second interrupt ends the leave: see stopAgent
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	a, err := agent.New(cfg)
	if err != nil {
		return usageErr(err)
	}
	// SIGHUP reloads the config files, as for Consul. Registered before Start so a
	// SIGHUP sent once the agent answers never finds the default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := a.Start(ctx); err != nil {
		return err
	}
	reloads := make(chan struct{})
	reloadCtx, stopReloads := context.WithCancel(ctx)
	go func() { // ends with reloadCtx, before runAgent returns
		defer close(reloads)
		for {
			select {
			case <-reloadCtx.Done():
				return
			case <-hup:
				_, _ = a.Reload(reloadCtx) // the agent logs what it did, or why not
			}
		}
	}()
	// Also when the agent stops at an API request (rumor leave), with ctx still live.
	defer func() { stopReloads(); <-reloads }()
	httpAddr := a.HTTPAddr().String()
	log.Info("rumor agent running", "version", version, "node", a.NodeName(),
		"http", httpAddr, "gossip", a.GossipAddr().String(), "dev", cfg.Dev)
	if d := a.DNSAddr(); d.IsValid() {
		log.Info("DNS interface listening", "dns", d.String(), "domain", cfg.DNS.Domain)
	}
	if cfg.Dev {
		scheme, hint := "http", ""
		if cfg.HTTPTLSCert != "" {
			scheme = "https"
		}
		if httpAddr != agent.DefaultHTTPAddr || scheme == "https" {
			hint = " --http-addr " + scheme + "://" + httpAddr
		}
		fmt.Fprintf(c.stderr, "\nDev agent ready. Try, in another terminal:\n  rumor register%s --name web --port 8080 --tag v1\n  rumor services%s\n  curl %s://%s/v1/health/service/web\n\n", hint, hint, scheme, httpAddr)
	}
	select {
	case <-ctx.Done():
		log.Info("leaving the pool (interrupt again to exit at once)")
	case <-a.LeaveRequested():
		log.Info("left the pool at an API request (rumor leave); shutting down")
	case <-a.Failed(): // another node holds this name (a retry-join refused)
		_ = a.Shutdown()
		return exitError{code: exitFailed, err: a.Err()}
	}
	return stopAgent(c, log, a)
}

// stopAgent leaves the pool gracefully and shuts a down, within stopTimeout; an
// interrupt meanwhile (c.again) exits at once with a failure.
func stopAgent(c *cli, log *slog.Logger, a *agent.Agent) error {
	done := make(chan error, 1)
	go func() {
		lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		done <- a.Leave(lctx)
	}()
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
		log.Info("left the pool; bye")
		return nil
	case <-c.again:
		return exitError{code: exitFailed, err: errors.New("interrupted again: exiting without finishing the graceful leave")}
	case <-timer.C:
		return exitError{code: exitFailed, err: fmt.Errorf("the agent did not stop within %s; exiting anyway (peers may see it failed rather than left)", stopTimeout)}
	}
}
