package mdns

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
)

// RumorType is the DNS-SD type every agent announces its gossip address under.
const RumorType = "_rumor._udp"

// Announce modes (Config.Announce, --mdns-announce).
const (
	AnnounceAll  = "all"  // every local service (the default)
	AnnounceNone = "none" // none: only the agent itself, for zero-config join
	// AnnounceTagPrefix followed by a tag announces the services carrying it.
	AnnounceTagPrefix = "tag:"
)

// Defaults.
const (
	DefaultIfacePoll    = 5 * time.Second
	DefaultJoinInterval = 10 * time.Second
)

// Joiner is how the adapter joins peers it finds: the agent's gossip. Its calls come
// one at a time from the adapter's loop; Join may block up to its context's end.
type Joiner interface {
	// IsMember reports whether node is an alive member of the pool already.
	IsMember(node string) bool
	// Join joins the pool through the given gossip addresses (host:port).
	Join(ctx context.Context, addrs []string) error
}

// Sink receives the services imported from the LAN. Level-triggered: each call gives
// the whole set imported on one interface, nil when none. Calls come one at a time
// from the adapter's loop and must not block for long.
type Sink interface {
	SetImported(iface string, svcs []catalog.Service)
}

// Config configures the adapter. The zero value of each field means its default; New
// does not modify it.
type Config struct {
	// Node is this node's name; NodeID its UUID; Datacenter its datacenter. Node is
	// required.
	Node, NodeID, Datacenter string
	// Fingerprint is the cluster fingerprint (see Fingerprint) announced and required
	// of peers. Required when Joiner is set.
	Fingerprint string
	// GossipPort is the port announced in the _rumor._udp instance; 0 announces none
	// (and zero-config join is off).
	GossipPort int
	// Ifaces and IfacesExclude are glob allow and deny lists of interface names (see
	// Select). Default: every suitable interface.
	Ifaces, IfacesExclude []string
	// Announce says which local services are announced: AnnounceAll (default),
	// AnnounceNone, or AnnounceTagPrefix + tag.
	Announce string
	// Import lists the service types ("_ipp._tcp") whose LAN instances go to Sink.
	Import []string
	// Joiner, when set, turns on zero-config join.
	Joiner Joiner
	// Sink receives imports; required when Import is not empty.
	Sink Sink
	// JoinInterval is the least time between two join attempts with one peer.
	// Default DefaultJoinInterval.
	JoinInterval time.Duration
	// IfacePoll is how often interfaces are listed again, to follow ones that come
	// and go. Default DefaultIfacePoll.
	IfacePoll time.Duration
	// Logger receives the adapter's logs. Default: discard.
	Logger *slog.Logger
	// Registerer registers the adapter's metrics. Default: none.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	if c.Node == "" {
		return c, fmt.Errorf("mdns: no node name")
	}
	if c.Announce == "" {
		c.Announce = AnnounceAll
	}
	if err := ValidateAnnounce(c.Announce); err != nil {
		return c, err
	}
	for _, t := range c.Import {
		if err := ValidateType(t); err != nil {
			return c, err
		}
	}
	if len(c.Import) > 0 && c.Sink == nil {
		return c, fmt.Errorf("mdns: Import needs a Sink")
	}
	if c.Joiner != nil && c.Fingerprint == "" {
		return c, fmt.Errorf("mdns: zero-config join needs a cluster fingerprint")
	}
	if g := ValidGlobs(c.Ifaces); g != "" {
		return c, fmt.Errorf("mdns: bad interface pattern %q", g)
	}
	if g := ValidGlobs(c.IfacesExclude); g != "" {
		return c, fmt.Errorf("mdns: bad interface pattern %q", g)
	}
	if c.JoinInterval <= 0 {
		c.JoinInterval = DefaultJoinInterval
	}
	if c.IfacePoll <= 0 {
		c.IfacePoll = DefaultIfacePoll
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// ValidateAnnounce checks an announce mode.
func ValidateAnnounce(mode string) error {
	switch {
	case mode == AnnounceAll || mode == AnnounceNone:
		return nil
	case strings.HasPrefix(mode, AnnounceTagPrefix) && len(mode) > len(AnnounceTagPrefix):
		return nil
	}
	return fmt.Errorf("mdns: announce mode %q: want all, none or tag:<tag>", mode)
}

// ValidateType checks a DNS-SD service type given by a user: "_name._tcp" or
// "_name._udp", the name 1–15 letters, digits or '-' (RFC 6763 §7).
func ValidateType(t string) error {
	labels := strings.Split(t, ".")
	if len(labels) != 2 || (labels[1] != "_tcp" && labels[1] != "_udp") || !strings.HasPrefix(labels[0], "_") ||
		len(labels[0]) < 2 || len(labels[0]) > 16 {
		return fmt.Errorf("mdns: service type %q: want _name._tcp or _name._udp with a name of 1-15 characters", t)
	}
	for _, r := range labels[0][1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("mdns: service type %q: the name may hold only letters, digits and '-'", t)
		}
	}
	return nil
}
