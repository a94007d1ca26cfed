package dnsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// Catalog is what the server reads. Calls may run concurrently and must not block
// for long; the catalog package's *Catalog implements it.
type Catalog interface {
	ServiceInstances(name string, f catalog.Filter) []catalog.Instance
	Services(f catalog.Filter) []catalog.ServiceSummary
	Nodes(f catalog.Filter) []catalog.NodeEntry
	TopicIndex(t catalog.Topic) uint64
	Watch(t catalog.Topic) (uint64, <-chan struct{})
}

var _ Catalog = (*catalog.Catalog)(nil)

// Coordinates estimates round-trip times from network coordinates (the agent's
// gossip). Calls may run concurrently; they must not block for long.
type Coordinates interface {
	// RTTsFrom returns the estimated round-trip time from the node named from to every
	// node whose coordinate is known, by name; ok is false when from's own coordinate
	// is unknown.
	RTTsFrom(from string) (rtts map[string]time.Duration, ok bool)
}

// Reachability is what the server asks about instances' reachability from this
// host. Calls may run concurrently and must not block on the network.
type Reachability interface {
	// Reachable reports whether an "ip:port" is reachable from here (unknown counts
	// as reachable); asking may schedule a probe.
	Reachable(addr string) bool
	// Active reports whether answers may need reordering: probes are on or some
	// address is known unreachable.
	Active() bool
}

// Config configures a Server. The zero value of every field means its default.
// New never modifies the caller's Config.
type Config struct {
	// Addr is where the server listens, UDP and TCP, "host:port"; port 0 picks a free
	// port (the same for both; see Server.Addr). Required.
	Addr string

	// Domain is the zone answered. Default "consul." (so existing setups work).
	Domain string

	// AltDomain is a second zone answered the same way (Consul's alt_domain).
	// Default: none.
	AltDomain string

	// Datacenter is this node's datacenter: names may carry it
	// (web.service.dc1.consul); names of another datacenter are unknown (NXDOMAIN).
	// Default "dc1".
	Datacenter string

	// NodeName is this node's name: the zone's NS record points at ns.<domain>, whose
	// address is this node's. Default: none (no NS glue).
	NodeName string

	// Catalog is what the answers come from. Required.
	Catalog Catalog

	// OnlyPassing answers only instances whose checks all pass; by default warning
	// instances are answered too. Critical and maintenance instances, and instances
	// on nodes gossip marks failed or left, are never answered.
	OnlyPassing bool

	// OrderNear orders service answers nearest first (as the HTTP API's ?near=_agent),
	// by Near's estimates of the round-trip time from NodeName, refreshed every
	// NearRefresh; instances on nodes without a coordinate come last, at random.
	// Default off: answers are shuffled (or weighted) per query.
	OrderNear bool

	// Near supplies the estimates for OrderNear. Required with OrderNear.
	Near Coordinates

	// NearRefresh is how often the estimates are read again. Default 1s.
	NearRefresh time.Duration

	// Reachability is this host's knowledge of which instances it can reach (the
	// firewall problem). With it, while it is Active, service and DNS-SD answers put
	// the instances this host can reach first. Default: none (no reordering).
	Reachability Reachability

	// OnlyReachable leaves out of answers the instances Reachability knows this host
	// cannot reach (the HTTP API's ?reachable). Default off: they come last.
	OnlyReachable bool

	// ServiceTTL gives the TTL of service answers by service name; a key ending in
	// "*" matches names with that prefix (the longest match wins), "*" alone any.
	// Default: none, so 0 (Consul's default).
	ServiceTTL map[string]time.Duration

	// NodeTTL is the TTL of node and addr answers. Default 0.
	NodeTTL time.Duration

	// NegativeTTL is the TTL of the SOA sent with NXDOMAIN and NODATA answers, and its
	// minimum field (RFC 2308). Default 30s; a negative value means 0.
	NegativeTTL time.Duration

	// ARecordLimit caps how many instances an answer holds (Consul's
	// a_record_limit). Default 0: as many as fit.
	ARecordLimit int

	// MaxUDPSize caps the UDP answer size a client's EDNS0 buffer size may ask for.
	// Without EDNS0, UDP answers fit 512 bytes. Default 1232 (DNS flag day 2020).
	MaxUDPSize int

	// Recursors are "host[:port]" DNS servers that names outside the domains are
	// forwarded to: the first at once, the next after RecursorStagger or when the
	// previous fails, the first good answer wins, SERVFAIL when all fail within
	// RecursorTimeout. Default: none, and such names are REFUSED.
	Recursors []string

	// RecursorStagger is how long a forwarded query waits for an answer before the
	// next recursor is asked too. Default 100ms.
	RecursorStagger time.Duration

	// RecursorTimeout bounds a forwarded query. Default 2s.
	RecursorTimeout time.Duration

	// MaxForwards bounds the forwarded queries in flight; more are answered SERVFAIL
	// at once. Default 256.
	MaxForwards int

	// UDPReaders is the number of UDP sockets (SO_REUSEPORT). Default GOMAXPROCS.
	UDPReaders int

	// Workers is, on Linux, the number of threads reading and answering each UDP
	// socket; with NetpollUDP (and off Linux), the number of goroutines answering
	// the queries the sockets' readers queue. Default GOMAXPROCS.
	Workers int

	// NetpollUDP serves UDP with goroutines in Go's netpoller (one reader per socket
	// and a queue for the workers), the design before the threads and the only one
	// off Linux. By default on Linux each socket is blocking, never registered with
	// the netpoller, and read by Workers threads of their own in recvmmsg(2), which
	// answer inline and write with sendmmsg(2): a datagram wakes its thread directly
	// instead of waiting for the runtime to poll and schedule a reader.
	NetpollUDP bool

	// MaxQueue bounds the UDP queries waiting to be answered; when it is full the
	// oldest is dropped. With threads each has an equal share of it (at least 64).
	// Default 1024.
	MaxQueue int

	// LIFOAbove is the queue length past which workers answer the newest UDP query
	// first (overload) rather than the oldest. Default 64.
	LIFOAbove int

	// MaxQueueDelay drops a UDP query that waited longer than this for a worker while
	// more than LIFOAbove queries wait (overload): its client has likely retried, and
	// answering it would only delay newer ones. Without a backlog a late query is
	// still answered (it was delayed by scheduling, not by load). Default 5ms.
	MaxQueueDelay time.Duration

	// OverloadQueueDelay is MaxQueueDelay for a query taken from a queue longer than
	// LIFOAbove (newest first: overload), and on a UDP thread for the rest of that
	// queue until it empties, checked before it is answered and again before its
	// answer is written. It is stricter because a query's latency at its
	// client is its wait here plus the write, loopback and the client's own
	// scheduling, which under overload added 1–2 ms (README, DNS interface); the
	// queries it sheds would be shed anyway. Default MaxQueueDelay/2; at most
	// MaxQueueDelay.
	OverloadQueueDelay time.Duration

	// MaxTCPConns bounds open TCP connections; more are closed at once. Default 512.
	MaxTCPConns int

	// MaxCacheEntries bounds the names whose answers are kept; past it the cache is
	// emptied. Default 10,000.
	MaxCacheEntries int

	// Registerer receives the server's metrics (rumor_dns_*). Default: none.
	Registerer prometheus.Registerer

	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
}

// Defaults of Config fields.
const (
	DefaultAddr            = "127.0.0.1:8600"
	DefaultDomain          = "consul."
	DefaultDatacenter      = "dc1"
	DefaultNegativeTTL     = 30 * time.Second
	DefaultMaxUDPSize      = 1232
	DefaultRecursorStagger = 100 * time.Millisecond
	DefaultRecursorTimeout = 2 * time.Second
	DefaultMaxForwards     = 256
	DefaultMaxQueue        = 1024
	DefaultMaxQueueDelay   = 5 * time.Millisecond
	DefaultLIFOAbove       = 64
	DefaultMaxTCPConns     = 512
	DefaultMaxCacheEntries = 10000
)

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("dnsserver: bad config")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// withDefaults returns a copy of c with defaults filled in, or an error naming the
// field that is wrong.
func (c Config) withDefaults() (Config, error) {
	c.ServiceTTL = maps.Clone(c.ServiceTTL)
	c.Recursors = slices.Clone(c.Recursors)
	if c.Addr == "" {
		return c, configErr("no listen address (Addr)")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, configErr("listen address %q: %v", c.Addr, err)
	}
	if c.Catalog == nil {
		return c, configErr("no Catalog")
	}
	var err error
	if c.Domain, err = zone(c.Domain, DefaultDomain, "domain"); err != nil {
		return c, err
	}
	if c.AltDomain != "" {
		if c.AltDomain, err = zone(c.AltDomain, "", "alt domain"); err != nil {
			return c, err
		}
		if c.AltDomain == c.Domain {
			c.AltDomain = ""
		}
	}
	if c.Datacenter == "" {
		c.Datacenter = DefaultDatacenter
	}
	c.Datacenter = strings.ToLower(c.Datacenter)
	for k, v := range c.ServiceTTL {
		if v < 0 {
			return c, configErr("service TTL %q: negative (%s)", k, v)
		}
	}
	if c.NodeTTL < 0 {
		return c, configErr("node TTL: negative (%s)", c.NodeTTL)
	}
	switch {
	case c.NegativeTTL == 0:
		c.NegativeTTL = DefaultNegativeTTL
	case c.NegativeTTL < 0:
		c.NegativeTTL = 0
	}
	if c.ARecordLimit < 0 {
		return c, configErr("a_record_limit: negative (%d)", c.ARecordLimit)
	}
	switch {
	case c.MaxUDPSize == 0:
		c.MaxUDPSize = DefaultMaxUDPSize
	case c.MaxUDPSize < 512 || c.MaxUDPSize > dns.MaxMsgSize:
		return c, configErr("max UDP size %d: want 512 to %d", c.MaxUDPSize, dns.MaxMsgSize)
	}
	for i, r := range c.Recursors {
		if _, _, err := net.SplitHostPort(r); err != nil {
			r = net.JoinHostPort(strings.Trim(r, "[]"), "53")
		}
		host, _, _ := net.SplitHostPort(r)
		if host == "" {
			return c, configErr("recursor %q: no host", c.Recursors[i])
		}
		c.Recursors[i] = r
	}
	pos := func(v *int, def int, name string) error {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			return configErr("%s: negative (%d)", name, *v)
		}
		return nil
	}
	procs := runtime.GOMAXPROCS(0)
	for _, f := range []struct {
		v    *int
		def  int
		name string
	}{{&c.MaxForwards, DefaultMaxForwards, "max forwards"}, {&c.UDPReaders, procs, "UDP readers"},
		{&c.Workers, procs, "workers"}, {&c.MaxQueue, DefaultMaxQueue, "max queue"}, {&c.LIFOAbove, DefaultLIFOAbove, "LIFO threshold"},
		{&c.MaxTCPConns, DefaultMaxTCPConns, "max TCP connections"},
		{&c.MaxCacheEntries, DefaultMaxCacheEntries, "max cache entries"}} {
		if err := pos(f.v, f.def, f.name); err != nil {
			return c, err
		}
	}
	for _, d := range []struct {
		v    *time.Duration
		def  time.Duration
		name string
	}{{&c.RecursorStagger, DefaultRecursorStagger, "recursor stagger"}, {&c.RecursorTimeout, DefaultRecursorTimeout, "recursor timeout"},
		{&c.MaxQueueDelay, DefaultMaxQueueDelay, "max queue delay"}, {&c.OverloadQueueDelay, 0, "overload queue delay"}} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return c, configErr("%s: negative (%s)", d.name, *d.v)
		}
	}
	if c.OverloadQueueDelay == 0 {
		c.OverloadQueueDelay = c.MaxQueueDelay / 2
	}
	c.OverloadQueueDelay = min(c.OverloadQueueDelay, c.MaxQueueDelay)
	if c.OrderNear && c.Near == nil {
		return c, configErr("OrderNear needs Near (network coordinates)")
	}
	if c.NearRefresh <= 0 {
		c.NearRefresh = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// zone returns d as a lower-case fully qualified name, def if d is empty.
func zone(d, def, what string) (string, error) {
	if d == "" {
		d = def
	}
	d = strings.ToLower(dns.Fqdn(d))
	if d == "." {
		return "", configErr("%s: the root zone cannot be served", what)
	}
	if _, ok := dns.IsDomainName(d); !ok {
		return "", configErr("%s %q: not a domain name", what, d)
	}
	return d, nil
}

// ttlFor returns the TTL of a service's answers in seconds.
func (c *Config) ttlFor(service string) uint32 {
	if d, ok := c.ServiceTTL[service]; ok {
		return secs(d)
	}
	best, bestLen := time.Duration(0), -1
	for k, d := range c.ServiceTTL {
		p, ok := strings.CutSuffix(k, "*")
		if ok && strings.HasPrefix(service, p) && len(p) > bestLen {
			best, bestLen = d, len(p)
		}
	}
	return secs(best)
}

func secs(d time.Duration) uint32 { return uint32(d / time.Second) }
