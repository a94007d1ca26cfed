package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Upstream is one local listener: definition.Upstream.
type Upstream = definition.Upstream

// ParseUpstream reads the --upstream flag's form: "service=port",
// "service=ip:port" or "service:tag=ip:port".
func ParseUpstream(s string) (Upstream, error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok || name == "" || addr == "" {
		return Upstream{}, fmt.Errorf("%w: upstream %q: want service=[ip:]port or service:tag=[ip:]port", catalog.ErrInvalid, s)
	}
	var u Upstream
	u.Service, u.Tag, _ = strings.Cut(name, ":")
	port := addr
	if strings.Contains(addr, ":") {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return Upstream{}, fmt.Errorf("%w: upstream %q: %v", catalog.ErrInvalid, s, err)
		}
		u.LocalBindAddress, port = host, p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 {
		return Upstream{}, fmt.Errorf("%w: upstream %q: port %q: want 1-65535", catalog.ErrInvalid, s, port)
	}
	u.LocalBindPort = n
	if err := u.Validate("upstream"); err != nil {
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
	// RTTs returns the estimated round-trip times from this agent to other nodes
	// (network coordinates), by node name, to prefer the nearer of two otherwise
	// equal instances. It is called once per rebuild. Default: none.
	RTTs func() map[string]time.Duration
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

	// Engine is how connections are forwarded: EngineEpoll (event loops, Linux only)
	// or EngineGoroutines (goroutines and the Go runtime's poller, any system).
	// Default: DefaultEngine.
	Engine Engine
	// Loops is how many event loops (threads) EngineEpoll runs. Default 1.
	Loops int
}

// Engine names a way of forwarding connections.
type Engine string

const (
	// EngineGoroutines serves each connection on goroutines of its own (two: one
	// per direction), through the Go runtime's network poller. It runs anywhere.
	EngineGoroutines Engine = "goroutines"
	// EngineEpoll serves every connection on event loops, each an OS thread of its
	// own waiting in epoll, that accept, connect and copy without a goroutine per
	// connection, like HAProxy. Linux only.
	EngineEpoll Engine = "epoll"
)

// DefaultEngine is the Engine of a Config that names none: see engineDefault in
// the engine's files.
const DefaultEngine = engineDefault

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
	if c.Loops <= 0 {
		c.Loops = 1
	}
	switch c.Engine {
	case "":
		c.Engine = DefaultEngine
	case EngineGoroutines:
	case EngineEpoll:
		if !epollSupported {
			return c, fmt.Errorf("proxy: engine %q: Linux only", c.Engine)
		}
	default:
		return c, fmt.Errorf("proxy: unknown engine %q: want %q or %q", c.Engine, EngineEpoll, EngineGoroutines)
	}
	return c, nil
}
