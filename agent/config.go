package agent

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/gossip"
)

// Config configures an Agent. The zero value of every field means its default, except
// BindPort, where 0 asks the kernel for a free port (as net.Listen does): start from
// DefaultConfig to get the well-known port. New never modifies the caller's Config.
type Config struct {
	// NodeName is this node's unique name in the pool and its catalog origin.
	// Default: the host name.
	NodeName string

	// Datacenter names this node's datacenter: letters, digits, '-' and '_'.
	// Default "dc1".
	Datacenter string

	// NodeMeta is free-form metadata published with the node record (Consul's
	// node_meta). Default: none.
	NodeMeta map[string]string

	// DataDir holds the node's identity (node-id, generation), its registered services
	// (services.log) and known peers (peers.json). Default: /var/lib/rumor when run as
	// root, else $XDG_STATE_HOME/rumor or ~/.local/state/rumor. With Dev, an empty
	// DataDir means in-memory: nothing is read or written, and a restart forgets all.
	DataDir string

	// BindAddr is the IP address gossip listens on, UDP and TCP. Default "0.0.0.0"
	// ("127.0.0.1" with Dev).
	BindAddr string

	// BindPort is the gossip port. 0 picks a free port (tests); DefaultConfig sets
	// DefaultBindPort, 7946.
	BindPort int

	// AdvertiseAddr is the IP address other nodes reach this one at, for gossip and in
	// the node record. Default: BindAddr if specific, else a private IP of this host
	// chosen by memberlist.
	AdvertiseAddr string

	// Join lists peers ("ip", "ip:port", "host" or "host:port"; the port defaults to
	// DefaultBindPort, 7946) joined once at Start; Start fails if none answers.
	// Default: none.
	Join []string

	// RetryJoin lists peers joined in the background, retried with exponential backoff
	// (RetryJoinInterval doubling up to RetryJoinMaxInterval) until one answers.
	// Default: none. With neither Join nor RetryJoin, the peers known from the last run
	// (peers.json) are retried the same way.
	RetryJoin []string

	// RetryJoinInterval is the first delay between join attempts. Default 1s.
	RetryJoinInterval time.Duration

	// RetryJoinMaxInterval caps the delay between join attempts. Default 30s.
	RetryJoinMaxInterval time.Duration

	// EncryptKey enables gossip encryption: the base64 encoding of a 16, 24 or 32-byte
	// key, as `consul keygen` or `rumor keygen` prints. Every node of the pool needs
	// the same key. Default: no encryption.
	EncryptKey string

	// GossipProfile picks gossip timing: "lan" (default), "wan" or "local" (the
	// default with Dev: fast failure detection on loopback).
	GossipProfile string

	// HTTPAddr is where the HTTP API listens, "host:port"; port 0 picks a free port
	// (see Agent.HTTPAddr). Default "127.0.0.1:8500".
	HTTPAddr string

	// HTTPToken, when set, is required on every write to the HTTP API (PUT and the
	// like), in X-Consul-Token or "Authorization: Bearer"; requests without it get
	// 403. Default: none (the API listens on loopback by default).
	HTTPToken string

	// HTTPTokenReads requires HTTPToken on reads too. It needs HTTPToken.
	// Default off.
	HTTPTokenReads bool

	// HTTPBodyTimeout bounds how long a client may take to send a request's body,
	// from the end of its headers; the connection is closed after it. It does not
	// bound how long a request lasts (blocking queries wait minutes). Default 30s.
	HTTPBodyTimeout time.Duration

	// HTTPMaxConns caps the HTTP connections open at once; more are closed at once
	// (rumor_http_connections_refused_total). Default 512.
	HTTPMaxConns int

	// DisableUI turns off the web UI that the HTTP API serves at /ui/. Default: on.
	DisableUI bool

	// HTTPTLSCert and HTTPTLSKey are PEM files of a certificate and its key: with
	// both, the HTTP API serves HTTPS (TLS 1.2 or later) only. Give both or neither.
	// Default: plain HTTP.
	HTTPTLSCert string
	HTTPTLSKey  string

	// Dev runs a one-node development agent: gossip on loopback with the "local"
	// profile and, unless DataDir is set, in-memory state.
	Dev bool

	// ReapAfter is how long a failed node's services stay in the catalog (reported
	// critical) before they are dropped. Default 72h (catalog.DefaultReapAfter). Gossip
	// keeps trying to reach a failed node for its own ReconnectTimeout (72h) whatever
	// this is, so a partition longer than ReapAfter still heals by itself: the reaped
	// node's records come back with it.
	ReapAfter time.Duration

	// MoveRetention is how long this node keeps a forward pointer (catalog.Move) for
	// a service instance that moved away from it, before it deletes it. Default 72h
	// (DefaultMoveRetention), like ReapAfter: long enough for clients that cached the
	// old location over a weekend.
	MoveRetention time.Duration
	// MoveWindow is how long after a service instance is deregistered here the agent
	// watches for the same service ID and name to appear on another node (one that
	// did not already hold it), which it then records as a move. Default 10m
	// (DefaultMoveWindow); negative turns detection off (`rumor service move` still
	// records moves).
	MoveWindow time.Duration

	// MaintenanceInterval is how often the agent expires catalog entries, checks for
	// an older incarnation of itself and saves known peers. Default 1s.
	MaintenanceInterval time.Duration

	// Logger receives the agent's logs, gossip's included. Default: discard.
	Logger *slog.Logger

	// Clock supplies the time for the catalog and the node's generation. Default: the
	// wall clock.
	Clock catalog.Clock

	// EnableScriptChecks lets service registrations define script checks, which run
	// any program as the agent's user (Consul's --enable-script-checks): from config
	// files, and through the HTTP API only when HTTPToken is set too, since anyone who
	// can reach an API without a token could otherwise run anything as the agent.
	// Default off: such a registration is refused.
	EnableScriptChecks bool

	// EnableLocalScriptChecks lets the services of config files define script checks,
	// and nothing else (Consul's enable_local_script_checks): only who can write the
	// agent's config files can make it run a program. Default off.
	EnableLocalScriptChecks bool

	// Limits bound the services and checks registered on this node, from every
	// source (HTTP API, config files): at most MaxServices services (default
	// 10,000), MaxChecks checks (20,000) and MaxChecksPerService checks in one service
	// (100). A registration past one is refused (HTTP 400, a config file's error),
	// naming the limit. Zero fields mean their default.
	Limits Limits

	// Version is rumor's version, reported by /v1/agent/self. Default "dev".
	Version string

	// ConfigServices returns the services defined in config files (the config
	// package reads them). Start applies them over the local state, and Reload
	// re-reads them and applies the difference; an error stops Start and leaves a
	// Reload with no effect. It is called without the agent's locks held, so it may
	// read files. Default: none (nil), and services a previous run took from config
	// files are dropped at Start.
	ConfigServices func() ([]ConfigService, error)

	// Docker configures the Docker watcher, which registers this host's containers
	// (agent/docker.go). Default: off.
	Docker DockerConfig

	// DNS configures the DNS server (agent/dns.go), which answers from this agent's
	// catalog. Default: off (DNS.Addr ""); `rumor agent` sets 127.0.0.1:8600.
	DNS DNSConfig

	// Proxy configures the local proxy (agent/proxy.go): its own upstreams and
	// timings. The proxy always runs; without upstreams it listens nowhere.
	Proxy ProxyConfig

	// ProbeReachability lets the agent probe (TCP connect, at most 10 a second) the
	// instances consumers ask it about, to learn which it cannot reach from this host
	// (--probe-reachability). Default off: only the local proxy's connects teach it.
	ProbeReachability bool
	// MDNS configures mDNS/DNS-SD: announce, browse and import, zero-config join
	// (agent/mdns.go). Default: off (the CLI turns it on).
	MDNS MDNSConfig

	// GossipHook, if set, sees (and may adjust) the gossip config just before gossip
	// starts. For tests and test tools: internal/netemagent wraps the transport to
	// delay what the node sends. Default: none.
	GossipHook func(*gossip.Config)

	// newCluster replaces gossip in unit tests; nil means gossip.New.
	newCluster func(clusterConfig) (cluster, error)
}

// Limits bound the services and checks of a node (Config.Limits).
type Limits = localstate.Limits

// Defaults for Config fields.
const (
	DefaultDatacenter           = "dc1"
	DefaultBindAddr             = "0.0.0.0"
	DefaultBindPort             = 7946
	DefaultHTTPAddr             = "127.0.0.1:8500"
	DefaultRetryJoinInterval    = time.Second
	DefaultRetryJoinMaxInterval = 30 * time.Second
	DefaultMaintenanceInterval  = time.Second
	DefaultMoveRetention        = 72 * time.Hour
	DefaultMoveWindow           = 10 * time.Minute
)

// DefaultConfig returns the configuration of a production agent: every default, and
// the well-known gossip port.
func DefaultConfig() Config {
	return Config{BindPort: DefaultBindPort}
}

// wallClock is the default Clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// DefaultDataDir returns the data directory used when Config.DataDir is empty (and
// Dev is off): /var/lib/rumor for root, else the XDG state directory.
func DefaultDataDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/rumor", nil
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "rumor"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("agent: no data dir given and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "rumor"), nil
}

// withDefaults returns a copy of c with defaults filled in and checked, or an error
// naming the field.
func (c Config) withDefaults() (Config, error) {
	c.NodeMeta = maps.Clone(c.NodeMeta)
	c.Join = slices.Clone(c.Join)
	c.RetryJoin = slices.Clone(c.RetryJoin)
	c.Proxy.Upstreams = slices.Clone(c.Proxy.Upstreams)
	c.MDNS.Ifaces, c.MDNS.IfacesExclude = slices.Clone(c.MDNS.Ifaces), slices.Clone(c.MDNS.IfacesExclude)
	c.MDNS.Import = slices.Clone(c.MDNS.Import)
	if err := c.MDNS.check(); err != nil {
		return c, err
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("agent: no node name given and no host name: %w", err)
		}
		c.NodeName = h
	}
	if c.Datacenter == "" {
		c.Datacenter = DefaultDatacenter
	}
	if c.DataDir == "" && !c.Dev {
		d, err := DefaultDataDir()
		if err != nil {
			return c, err
		}
		c.DataDir = d
	}
	if c.BindAddr == "" {
		c.BindAddr = DefaultBindAddr
		if c.Dev {
			c.BindAddr = "127.0.0.1"
		}
	}
	if c.GossipProfile == "" {
		c.GossipProfile = "lan"
		if c.Dev {
			c.GossipProfile = "local"
		}
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.HTTPBodyTimeout <= 0 {
		c.HTTPBodyTimeout = DefaultHTTPBodyTimeout
	}
	if c.HTTPMaxConns <= 0 {
		c.HTTPMaxConns = DefaultHTTPMaxConns
	}
	if c.RetryJoinInterval <= 0 {
		c.RetryJoinInterval = DefaultRetryJoinInterval
	}
	if c.RetryJoinMaxInterval <= 0 {
		c.RetryJoinMaxInterval = DefaultRetryJoinMaxInterval
	}
	if c.ReapAfter < 0 {
		return c, fmt.Errorf("agent: ReapAfter %s is negative", c.ReapAfter)
	}
	if c.ReapAfter == 0 {
		c.ReapAfter = catalog.DefaultReapAfter
	}
	if c.MaintenanceInterval <= 0 {
		c.MaintenanceInterval = DefaultMaintenanceInterval
	}
	if c.MoveRetention < 0 {
		return c, fmt.Errorf("agent: MoveRetention %s is negative", c.MoveRetention)
	}
	if c.MoveRetention == 0 {
		c.MoveRetention = DefaultMoveRetention
	}
	if c.MoveWindow == 0 {
		c.MoveWindow = DefaultMoveWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c, c.validate()
}

// validate checks what can be checked before anything starts, reporting every
// problem at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	probe := catalog.Node{ID: "00000000-0000-4000-8000-000000000000", Name: c.NodeName,
		Datacenter: c.Datacenter, Meta: c.NodeMeta, Address: c.AdvertiseAddr}
	if err := probe.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := netip.ParseAddr(c.BindAddr); err != nil {
		bad("bind address %q: want an IP address such as 0.0.0.0 or 10.0.0.5", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		bad("bind port %d: want 0–65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" {
		if _, err := netip.ParseAddr(c.AdvertiseAddr); err != nil {
			bad("advertise address %q: want an IP address", c.AdvertiseAddr)
		}
	}
	switch c.GossipProfile {
	case "lan", "wan", "local":
	default:
		bad("gossip profile %q: want lan, wan or local", c.GossipProfile)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP address %q: want host:port such as 127.0.0.1:8500", c.HTTPAddr)
	}
	if c.HTTPTokenReads && c.HTTPToken == "" {
		bad("HTTP token reads: requiring the token on reads needs a token (--http-token)")
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		bad("HTTP TLS: give both a certificate (--http-tls-cert) and its key (--http-tls-key), or neither")
	}
	if _, err := c.keys(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := definition.ValidateUpstreams("upstreams", c.Proxy.Upstreams); err != nil {
		errs = append(errs, err)
	}
	for _, a := range slices.Concat(c.Join, c.RetryJoin) {
		if strings.TrimSpace(a) == "" {
			bad("join address is empty")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: invalid config: %w", err)
	}
	return nil
}

// keys decodes EncryptKey into gossip's keyring keys.
func (c *Config) keys() ([][]byte, error) {
	if c.EncryptKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(c.EncryptKey)
	if err != nil {
		return nil, fmt.Errorf("encrypt key: not base64 (generate one with `rumor keygen` or `consul keygen`): %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return [][]byte{k}, nil
	}
	return nil, fmt.Errorf("encrypt key: %d bytes once decoded, want 16, 24 or 32 (32 from `consul keygen`)", len(k))
}

// ValidateEncryptKey checks a gossip encryption key as Config.EncryptKey takes it:
// base64 of 16, 24 or 32 bytes.
func ValidateEncryptKey(key string) error {
	_, err := (&Config{EncryptKey: key}).keys()
	return err
}
