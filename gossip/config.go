package gossip

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Gossip. The zero value of every field but NodeName and Store
// means its default.
type Config struct {
	// NodeName is this node's unique name in the pool; it is also its catalog origin.
	NodeName string

	// NodeID is this node's persistent ID (the agent's data dir keeps it). It travels
	// in memberlist's node meta, so that another agent using the same name is refused
	// (ErrNameConflict) and the same node at a new address is not (identity.go).
	// Empty: no identity check for this node's own name.
	NodeID string

	// BindAddr and BindPort are where gossip listens, UDP and TCP. Default
	// "0.0.0.0":7946; port 0 picks a free port (tests).
	BindAddr string
	BindPort int

	// AdvertiseAddr and AdvertisePort are what other nodes are told to reach this one
	// at. Default: the bind address if it is specific, else memberlist's choice of a
	// private IP; the bound port.
	AdvertiseAddr string
	AdvertisePort int

	// Profile picks memberlist's timing defaults: "lan" (default), "wan" or "local".
	Profile string

	// Keys enables encryption: each a 16, 24 or 32-byte AES key; the first is used to
	// encrypt, all are tried to decrypt (so a key can be rotated without a restart).
	// Empty means no encryption.
	Keys [][]byte

	// OnKeyringChange, if set, is called after each change of this node's keyring
	// (install, use, remove: asked here or by a pool-wide rotation) with every key,
	// primary first, so the caller can persist it. Calls are serialized, in the order
	// of the changes. Its error fails the operation (the change stays in memory).
	OnKeyringChange func(keys [][]byte) error

	// Transport replaces memberlist's UDP/TCP transport (tests and the simulator use
	// internal/memnet's in-memory network). When set, BindAddr/BindPort must match it.
	Transport memberlist.NodeAwareTransport

	// WrapTransport, if set, wraps the transport this node uses (memberlist's UDP/TCP
	// one, bound first so that a port of 0 is resolved, or Transport); the wrapper owns
	// it from then on. For tests: gossip/netem delays what a node sends this way on
	// hosts without tc netem (internal/netemagent runs an agent so). Default: none.
	WrapTransport func(memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error)

	// Store is the catalog gossip feeds and reads. Required.
	Store Store

	// Logger receives gossip's and memberlist's logs. Default: discard.
	Logger *slog.Logger

	// Registerer receives gossip's Prometheus metrics. Default: a private registry.
	Registerer prometheus.Registerer

	// ReconnectInterval is how often failed members are considered for a reconnect
	// attempt. Default 1s. Each member is retried with backoff from 1s up to
	// ReconnectMaxBackoff, at most ReconnectBurst attempts per interval.
	ReconnectInterval time.Duration
	// ReconnectMaxBackoff caps the delay between attempts on one member. Default 2s,
	// so a healed partition is noticed within about 2s. A member failed for over 5
	// minutes is retried less often, backing off to 30s (serf's reconnect interval).
	ReconnectMaxBackoff time.Duration
	// ReconnectBurst caps the attempts per interval. Default 3.
	ReconnectBurst int
	// ReconnectTimeout is how long a failed member is retried at all. Default 72h,
	// matching the catalog's default ReapAfter.
	ReconnectTimeout time.Duration

	// LivenessPoll is how often membership is polled for suspect members, which
	// memberlist reports through no event. Default 500ms.
	LivenessPoll time.Duration

	// UnknownOriginGrace is how long the catalog may hold records of a node that
	// memberlist never reported (anti-entropy brought them) before gossip marks that
	// node failed, so it is reported critical and reaped rather than alive forever.
	// Default: three push-pull intervals (30 s with the LAN profile), time enough for
	// memberlist to announce a node that is really there.
	UnknownOriginGrace time.Duration

	// MaxGenerationSkew is how far in the future (after this node's clock) the
	// generation of a record from the network may be; generations are the Unix
	// milliseconds of an agent's start. Records beyond it are refused and counted
	// (rumor_gossip_messages_dropped_total{reason="future_generation"}): a forged
	// generation near 2^64 must not outrank its owner. Default 24h, far above any
	// sane clock skew.
	MaxGenerationSkew time.Duration

	// LeaveIntentTTL is how long a node's announced leave (msgLeave) is believed: a
	// departure reported by membership within it is a graceful leave, after it a
	// failure. A forged leave therefore cannot make a later crash look graceful.
	// Default 30s (a real leave is reported within a few gossip rounds).
	LeaveIntentTTL time.Duration

	// MemberlistHook, if set, sees (and may adjust) memberlist's config just before
	// memberlist starts: tests shorten intervals, the simulator reads the timings.
	MemberlistHook func(*memberlist.Config)

	// Eager configures the eager path, which sends a local change to peers at once
	// (eager.go). The zero value means its defaults; Eager.Disabled turns it off.
	Eager EagerConfig
}

// Defaults for Config fields left zero.
const (
	DefaultBindPort            = 7946
	DefaultReconnectInterval   = time.Second
	DefaultReconnectMaxBackoff = 2 * time.Second
	DefaultReconnectBurst      = 3
	DefaultReconnectTimeout    = 72 * time.Hour
	DefaultLivenessPoll        = 500 * time.Millisecond
	DefaultMaxGenerationSkew   = 24 * time.Hour
	DefaultLeaveIntentTTL      = 30 * time.Second
)

// withDefaults returns a copy of c with defaults filled in, or an error naming what
// is wrong.
func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		return c, fmt.Errorf("gossip: config has no NodeName")
	}
	if c.Store == nil {
		return c, fmt.Errorf("gossip: config has no Store")
	}
	switch c.Profile {
	case "":
		c.Profile = "lan"
	case "lan", "wan", "local":
	default:
		return c, fmt.Errorf("gossip: unknown profile %q: want lan, wan or local", c.Profile)
	}
	for i, k := range c.Keys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return c, fmt.Errorf("gossip: key %d is %d bytes: want 16, 24 or 32", i, l)
		}
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if net.ParseIP(c.BindAddr) == nil {
		return c, fmt.Errorf("gossip: bind address %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return c, fmt.Errorf("gossip: advertise address %q is not an IP address", c.AdvertiseAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return c, fmt.Errorf("gossip: port out of range (bind %d, advertise %d)", c.BindPort, c.AdvertisePort)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.ReconnectMaxBackoff <= 0 {
		c.ReconnectMaxBackoff = DefaultReconnectMaxBackoff
	}
	if c.ReconnectBurst <= 0 {
		c.ReconnectBurst = DefaultReconnectBurst
	}
	if c.ReconnectTimeout <= 0 {
		c.ReconnectTimeout = DefaultReconnectTimeout
	}
	if c.LivenessPoll <= 0 {
		c.LivenessPoll = DefaultLivenessPoll
	}
	eager, err := c.Eager.withDefaults()
	if err != nil {
		return c, err
	}
	c.Eager = eager
	if c.MaxGenerationSkew <= 0 {
		c.MaxGenerationSkew = DefaultMaxGenerationSkew
	}
	if c.LeaveIntentTTL <= 0 {
		c.LeaveIntentTTL = DefaultLeaveIntentTTL
	}
	return c, nil
}
