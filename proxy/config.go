package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// ErrInvalid is wrapped by errors about a malformed upstream.
var ErrInvalid = errors.New("invalid upstream")

// Upstream is one local listener forwarding to the instances of a service, like
// Consul's upstream (without mTLS): {service, local_bind_address, local_bind_port,
// tag, near}.
type Upstream struct {
	// Service is the name of the service to forward to. Required.
	Service string `json:"Service"`
	// Tag, when set, keeps only the instances carrying it.
	Tag string `json:"Tag,omitempty"`
	// Near, when "_agent", prefers the instances nearest to this agent by network
	// coordinates on ties (the default too, when coordinates are known); "" leaves
	// ties to chance.
	Near string `json:"Near,omitempty"`
	// LocalBindAddress is the IP address to listen on. Default 127.0.0.1.
	LocalBindAddress string `json:"LocalBindAddress,omitempty"`
	// LocalBindPort is the port to listen on, 1–65535 (0 only in tests: a free port).
	LocalBindPort int `json:"LocalBindPort"`
}

// Addr is the listen address, "ip:port".
func (u Upstream) Addr() string {
	ip := u.LocalBindAddress
	if ip == "" {
		ip = "127.0.0.1"
	}
	return net.JoinHostPort(ip, strconv.Itoa(u.LocalBindPort))
}

// Validate reports what is wrong with u, naming the field.
func (u Upstream) Validate() error {
	var errs []error
	if u.Service == "" {
		errs = append(errs, fmt.Errorf("%w: service: required", ErrInvalid))
	} else if err := (&catalog.Service{ID: u.Service, Name: u.Service, Weights: catalog.DefaultWeights}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: service %q: not a valid service name", ErrInvalid, u.Service))
	}
	if u.LocalBindAddress != "" {
		if _, err := netip.ParseAddr(u.LocalBindAddress); err != nil {
			errs = append(errs, fmt.Errorf("%w: local_bind_address %q: not an IP address", ErrInvalid, u.LocalBindAddress))
		}
	}
	if u.LocalBindPort < 0 || u.LocalBindPort > 65535 {
		errs = append(errs, fmt.Errorf("%w: local_bind_port %d: want 1-65535", ErrInvalid, u.LocalBindPort))
	}
	if u.Near != "" && u.Near != "_agent" {
		errs = append(errs, fmt.Errorf("%w: near %q: only \"_agent\" is supported", ErrInvalid, u.Near))
	}
	return errors.Join(errs...)
}

// ParseUpstream reads the --upstream flag's form: "service=port",
// "service=ip:port" or "service:tag=ip:port".
func ParseUpstream(s string) (Upstream, error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok || name == "" || addr == "" {
		return Upstream{}, fmt.Errorf("%w: %q: want service=[ip:]port or service:tag=[ip:]port", ErrInvalid, s)
	}
	var u Upstream
	u.Service, u.Tag, _ = strings.Cut(name, ":")
	port := addr
	if strings.Contains(addr, ":") {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return Upstream{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
		}
		u.LocalBindAddress, port = host, p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 {
		return Upstream{}, fmt.Errorf("%w: %q: port %q: want 1-65535", ErrInvalid, s, port)
	}
	u.LocalBindPort = n
	if err := u.Validate(); err != nil {
		return Upstream{}, fmt.Errorf("upstream %q: %w", s, err)
	}
	return u, nil
}

// Catalog is what the proxy reads: a service's endpoints and a watch on its topic.
// *catalog.Catalog implements it. Calls may run concurrently and do not block.
type Catalog interface {
	Endpoints(dst []catalog.Endpoint, name, tag string) []catalog.Endpoint
	Watch(t catalog.Topic) (uint64, <-chan struct{})
}

var _ Catalog = (*catalog.Catalog)(nil)

// Reporter learns the result of every connect attempt to an instance's address
// ("ip:port"): the agent's reachability tracker. It is called on the connection's
// goroutine and must not block.
type Reporter interface {
	Report(addr string, reachable bool)
}

// Config configures a Proxy. The zero value of every field but Catalog means its
// default.
type Config struct {
	// Catalog is where instances come from. Required.
	Catalog Catalog
	// Logger receives the proxy's logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the proxy's metrics. Default: none.
	Registerer prometheus.Registerer
	// Reporter, if set, learns every connect result. Default: none.
	Reporter Reporter
	// RTT returns the estimated round-trip time to a node (network coordinates), to
	// prefer the nearer of two otherwise equal instances. Default: none.
	RTT func(node string) (time.Duration, bool)
	// Filter, if set, is asked at every rebuild whether an instance's address may be
	// used (the agent's reachability and moves). Default: all may.
	Filter func(ep *catalog.Endpoint) bool

	// ConnectTimeout bounds one connect to an instance. Default 2s.
	ConnectTimeout time.Duration
	// Attempts is how many instances a connection tries before it is closed. Default 3.
	Attempts int
	// EjectAfter is how many consecutive connect failures eject an instance. Default 3.
	EjectAfter int
	// BaseEjection is how long the first ejection lasts; the n-th lasts n times as
	// long. Default 30s.
	BaseEjection time.Duration
	// SlowStart is how long a new instance takes to reach its full weight (from a
	// tenth). Default 10s; negative disables.
	SlowStart time.Duration
	// DrainTimeout is how long the connections of an instance that left the set may
	// stay open. Default 30s.
	DrainTimeout time.Duration
	// KeepAlive is the TCP keep-alive period of both sides. Default 15s.
	KeepAlive time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Catalog == nil {
		return c, errors.New("proxy: config has no Catalog")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, 2*time.Second)
	def(&c.BaseEjection, 30*time.Second)
	def(&c.SlowStart, 10*time.Second)
	def(&c.DrainTimeout, 30*time.Second)
	def(&c.KeepAlive, 15*time.Second)
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.EjectAfter <= 0 {
		c.EjectAfter = 3
	}
	return c, nil
}
