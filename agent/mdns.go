package agent

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/mdns"
)

// mDNS (package mdns) announces this node's services on the LAN, imports the LAN's
// services of chosen types, and finds peers on the link for zero-config join. It is
// off in the Go API (Config.MDNS.Enabled) and on by default in the CLI (--mdns). An
// agent whose gossip binds to loopback (and --dev) never uses it: nobody on the LAN
// could reach what it would announce.
//
// Imported instances are records of origin "mdns:<iface>@<node>": one external origin
// per importing agent and interface, with its own node record, spread by gossip like
// any other records. Their liveness follows the importing node's (mdnsFollow), so
// they go when it fails or leaves.

// MDNSConfig configures the mDNS adapter.
type MDNSConfig struct {
	// Enabled runs it (--mdns). Default off in the Go API; the CLI turns it on.
	Enabled bool
	// Ifaces and IfacesExclude are glob allow and deny lists of interfaces
	// (--mdns-iface, --mdns-iface-exclude); see mdns.Select.
	Ifaces, IfacesExclude []string
	// Announce is which local services are announced: "all" (default), "none" or
	// "tag:<tag>" (--mdns-announce).
	Announce string
	// Import lists the DNS-SD types imported into the catalog (--mdns-import).
	Import []string
}

// mdnsUsable reports whether mDNS may run: on, and gossip bound where the LAN can
// reach it.
func (a *Agent) mdnsUsable() bool {
	if !a.cfg.MDNS.Enabled || a.cfg.Dev {
		return false
	}
	ip, err := netip.ParseAddr(a.cfg.BindAddr)
	return err != nil || !ip.IsLoopback()
}

// agentMDNS is the agent's side of the adapter: its sink and joiner.
type agentMDNS struct {
	a *Agent
	m *mdns.MDNS

	mu      sync.Mutex
	writers map[string]*catalog.Writer            // by origin
	held    map[string]map[string]catalog.Service // by origin, then service ID
}

// startMDNS starts the adapter once gossip runs; a failure is logged, not fatal: the
// agent works without it. Called with a.mu held.
func (a *Agent) startMDNSLocked(keys [][]byte) {
	if !a.mdnsUsable() {
		if a.cfg.MDNS.Enabled {
			a.log.Info("mDNS off: gossip binds to loopback, where nobody on the LAN can reach it")
		}
		return
	}
	var key []byte
	if len(keys) > 0 {
		key = keys[0]
	}
	am := &agentMDNS{a: a, writers: map[string]*catalog.Writer{}, held: map[string]map[string]catalog.Service{}}
	c := a.cfg.MDNS
	m, err := mdns.New(mdns.Config{Node: a.cfg.NodeName, NodeID: a.nodeID, Datacenter: a.cfg.Datacenter,
		Fingerprint: mdns.Fingerprint(a.cfg.Datacenter, key), GossipPort: int(a.cl.LocalAddr().Port()),
		Ifaces: c.Ifaces, IfacesExclude: c.IfacesExclude, Announce: c.Announce, Import: c.Import,
		Joiner: am, Sink: am, Logger: a.cfg.Logger.With("node", a.cfg.NodeName), Registerer: a.reg})
	if err == nil {
		m.SetServices(a.local.Services())
		err = m.Start()
	}
	if err != nil {
		a.log.Error("mDNS off: cannot start it", "error", err)
		return
	}
	am.m = m
	a.mdns = am
	a.wg.Go(a.mdnsFollow)
}

// announceLocal hands the adapter this node's services after a change.
func (a *Agent) announceLocal() {
	a.mu.Lock()
	am, local := a.mdns, a.local
	var svcs []catalog.Service
	if am != nil && local != nil {
		svcs = local.Services()
	}
	a.mu.Unlock()
	if am != nil {
		am.m.SetServices(svcs)
	}
}

// closeMDNS says goodbye on the LAN and withdraws what this node imported, before
// gossip stops so the deletions still spread.
func (a *Agent) closeMDNS() {
	a.mu.Lock()
	am := a.mdns
	a.mu.Unlock()
	if am == nil {
		return
	}
	_ = am.m.Close()
	am.mu.Lock()
	origins := slices.Collect(maps.Keys(am.held))
	am.mu.Unlock()
	for _, o := range origins {
		am.setOrigin(o, "", nil)
	}
}

// mdnsFollow makes the liveness of every "mdns:<iface>@<node>" origin follow its
// node's, so the instances a failed or departed agent imported go with it.
func (a *Agent) mdnsFollow() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	// Only the nodes' names are needed: NodeIndexes lists them without copying
	// every node's records, as Nodes would, every second on every agent.
	names := map[string]uint64{}
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		a.cat.NodeIndexes(names)
		for name := range names {
			if !strings.HasPrefix(name, "mdns:") {
				continue
			}
			_, owner, ok := strings.Cut(name, "@")
			if !ok || owner == a.cfg.NodeName {
				continue
			}
			state, _ := a.cat.Liveness(owner)
			if cur, _ := a.cat.Liveness(name); cur != state {
				a.cat.SetLiveness(name, state)
			}
		}
	}
}

var (
	_ mdns.Sink   = (*agentMDNS)(nil)
	_ mdns.Joiner = (*agentMDNS)(nil)
)

// IsMember implements mdns.Joiner.
// mDNS asks about every peer on the link every second: one lookup each, not a
// sorted copy of the member list with round-trip estimates (that was 1.4 % of both
// cores at 50 agents, perf, 3 December).
func (am *agentMDNS) IsMember(node string) bool {
	am.a.mu.Lock()
	cl := am.a.cl
	am.a.mu.Unlock()
	if cl == nil {
		return false
	}
	state, ok := cl.Liveness(node)
	return ok && (state == catalog.LivenessAlive || state == catalog.LivenessSuspect)
}

// Join implements mdns.Joiner.
func (am *agentMDNS) Join(ctx context.Context, addrs []string) error {
	am.a.mu.Lock()
	cl := am.a.cl
	am.a.mu.Unlock()
	if cl == nil {
		return ErrNotRunning
	}
	_, err := cl.Join(ctx, addrs)
	return err
}

// SetImported implements mdns.Sink: the services imported on iface become the
// records of origin "mdns:<iface>@<node>".
func (am *agentMDNS) SetImported(iface string, svcs []catalog.Service) {
	am.setOrigin("mdns:"+iface+"@"+am.a.cfg.NodeName, iface, svcs)
}

// setOrigin makes origin hold exactly svcs, applying and publishing the difference.
func (am *agentMDNS) setOrigin(origin, iface string, svcs []catalog.Service) {
	a := am.a
	am.mu.Lock()
	defer am.mu.Unlock()
	w := am.writers[origin]
	held := am.held[origin]
	if held == nil {
		held = map[string]catalog.Service{}
	}
	var recs []catalog.Record
	if w == nil && len(svcs) > 0 {
		w = catalog.NewWriter(origin, uint64(a.cfg.Clock.Now().UnixMilli()))
		am.writers[origin] = w
		addr := a.GossipAddr().Addr().Unmap().String()
		n := catalog.Node{ID: newUUID(), Name: origin, Address: addr, Datacenter: a.cfg.Datacenter,
			Meta: map[string]string{"mdns-iface": iface, "mdns-importer": a.cfg.NodeName}}
		recs = append(recs, w.PutNode(&n))
	}
	if w == nil {
		return
	}
	want := map[string]catalog.Service{}
	for _, s := range svcs {
		want[s.ID] = s
		if old, ok := held[s.ID]; !ok || !sameService(old, s) {
			recs = append(recs, w.PutService(&s))
		}
	}
	for id := range held {
		if _, ok := want[id]; !ok {
			recs = append(recs, w.Delete(catalog.Key{Kind: catalog.KindService, ID: id}))
		}
	}
	if len(want) == 0 {
		recs = append(recs, w.Delete(catalog.Key{Kind: catalog.KindNode}))
		delete(am.writers, origin)
		delete(am.held, origin)
	} else {
		am.held[origin] = want
	}
	if len(recs) == 0 {
		return
	}
	if _, err := a.cat.Apply(recs...); err != nil {
		a.log.Error("mDNS import rejected by the catalog", "origin", origin, "error", err)
		return
	}
	a.mu.Lock()
	cl := a.cl
	a.mu.Unlock()
	if cl != nil {
		cl.Publish(recs)
	}
	a.log.Debug("mDNS import", "origin", origin, "services", len(want), "records", len(recs))
}

func sameService(a, b catalog.Service) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Address == b.Address && a.Port == b.Port &&
		slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Meta, b.Meta)
}

// checkMDNS validates the mDNS settings for New.
func (c MDNSConfig) check() error {
	if c.Announce != "" {
		if err := mdns.ValidateAnnounce(c.Announce); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	for _, t := range c.Import {
		if err := mdns.ValidateType(t); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	for _, g := range [][]string{c.Ifaces, c.IfacesExclude} {
		if bad := mdns.ValidGlobs(g); bad != "" {
			return fmt.Errorf("agent: mDNS interface pattern %q is malformed", bad)
		}
	}
	return nil
}
