package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/gossip"
)

// cluster is what the agent needs of gossip. *gossip.Gossip implements it; unit
// tests use a fake. Calls may run concurrently; Join and Leave block until their
// context ends at most, the others return promptly.
type cluster interface {
	// Join contacts addrs and returns how many answered; an error only if none did.
	Join(ctx context.Context, addrs []string) (int, error)
	// Publish broadcasts this node's own records, already applied to the catalog.
	Publish(recs []catalog.Record)
	// Members returns the pool as this node sees it, itself included, by name.
	Members() []gossip.Member
	// Liveness is one member's state as Members reports it; ok is false for a node
	// never seen. Cheap: no copy of the member list.
	Liveness(name string) (state catalog.Liveness, ok bool)
	// LocalAddr is the address this node advertises for gossip.
	LocalAddr() netip.AddrPort
	// ForceLeave marks a failed node left, here and on the members reachable now;
	// gossip.ErrUnknownNode or gossip.ErrNotFailed when it cannot.
	ForceLeave(ctx context.Context, node string, prune bool) error
	// Leave says goodbye to the pool, then stops gossip.
	Leave(ctx context.Context) error
	// Shutdown stops gossip without a goodbye; idempotent.
	Shutdown() error
}

var _ cluster = (*gossip.Gossip)(nil)

// clusterConfig is what the agent decides about gossip.
type clusterConfig struct {
	NodeName      string
	BindAddr      string
	BindPort      int
	AdvertiseAddr string
	Profile       string
	Keys          [][]byte
	Store         gossip.Store
	Logger        *slog.Logger
	Registerer    prometheus.Registerer // the agent's registry
	Hook          func(*gossip.Config)  // Config.GossipHook

	// OnKeyringChange persists the keyring (gossip.Config.OnKeyringChange); nil
	// without a data dir.
	OnKeyringChange func([][]byte) error

	// NodeID is the node's persistent ID (gossip.Config.NodeID: name conflicts).
	NodeID string
}

// newGossip starts real gossip.
func newGossip(cc clusterConfig) (cluster, error) {
	gc := gossip.Config{
		NodeName:      cc.NodeName,
		BindAddr:      cc.BindAddr,
		BindPort:      cc.BindPort,
		AdvertiseAddr: cc.AdvertiseAddr,
		Profile:       cc.Profile,
		Keys:          cc.Keys,
		Store:         cc.Store,
		Logger:        cc.Logger,
		Registerer:    cc.Registerer,
	}
	gc.OnKeyringChange = cc.OnKeyringChange
	gc.NodeID = cc.NodeID
	if cc.Hook != nil {
		cc.Hook(&gc)
	}
	g, err := gossip.New(gc)
	if err != nil {
		// Not g itself: a nil *Gossip in a cluster interface is not nil, and Start's
		// clean-up would call Shutdown on it.
		return nil, explainGossipStart(err)
	}
	return g, nil
}

// explainGossipStart adds a hint to why gossip could not start.
func explainGossipStart(err error) error {
	switch msg := err.Error(); {
	case errors.Is(err, syscall.EADDRINUSE) || strings.Contains(msg, "address already in use"):
		return fmt.Errorf("gossip port in use: is another agent running? choose another with --bind (or --node and --data-dir for a second agent): %w", err)
	case errors.Is(err, syscall.EADDRNOTAVAIL) || strings.Contains(msg, "assign requested address"):
		return fmt.Errorf("the bind address is not an address of this host: choose one of its addresses with --bind, or 0.0.0.0: %w", err)
	}
	return err
}
