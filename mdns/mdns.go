package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// MDNS is the running adapter: announcer, querier, zero-config join and import.
// Create it with New, run it with Start, stop it with Close.
type MDNS struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	q       *querier
	ann     *announcer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// The announcer stops first, so that its goodbyes go out on the querier's
	// sockets before they close.
	annCancel context.CancelFunc
	annDone   chan struct{}
	kick      chan struct{} // wakes the join loop

	mu       sync.Mutex
	started  bool
	ifaces   []string
	services []catalog.Service
	peers    map[string]map[string]Instance // by interface, then node: agents of this pool
	views    map[snapshotKey][]Instance     // imported types' instances
	imported map[string][]catalog.Service   // what Sink was last given, by interface
	lastJoin map[string]time.Time           // by node

	closeOnce sync.Once
}

// New checks cfg and returns an adapter that has not touched the network.
func New(cfg Config) (*MDNS, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("mdns: metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &MDNS{cfg: cfg, log: cfg.Logger.With("component", "mdns"), metrics: m, ctx: ctx, cancel: cancel,
		kick: make(chan struct{}, 1), peers: map[string]map[string]Instance{}, views: map[snapshotKey][]Instance{},
		imported: map[string][]catalog.Service{}, lastJoin: map[string]time.Time{}}, nil
}

// Start opens the mDNS sockets and starts announcing, browsing and joining. It
// refuses to run in the root network namespace of a test binary (see
// GuardRootNamespace).
func (m *MDNS) Start() error {
	if err := checkGuard(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("mdns: already started")
	}
	m.started = true
	types := slices.Clone(m.cfg.Import)
	if m.cfg.Joiner != nil || len(m.cfg.Import) > 0 {
		types = append(types, RumorType)
	}
	q, err := openQuerier(m.log, m.metrics, types, false, m.onChange, nil)
	if err != nil {
		return err
	}
	m.q = q
	m.ann = newAnnouncer(m.log, m.metrics, q)
	m.ifaces = m.selectIfaces()
	q.setIfaces(m.ifaces)
	m.announceLocked()
	annCtx, annCancel := context.WithCancel(m.ctx)
	m.annCancel, m.annDone = annCancel, make(chan struct{})
	m.wg.Go(func() { q.run(m.ctx) })
	m.wg.Go(func() { defer close(m.annDone); m.ann.run(annCtx) })
	m.wg.Go(m.watchIfaces)
	if m.cfg.Joiner != nil {
		m.wg.Go(m.joinLoop)
	}
	m.log.Info("mdns: started", "ifaces", m.ifaces, "announce", m.cfg.Announce, "import", m.cfg.Import,
		"zero_config_join", m.cfg.Joiner != nil)
	return nil
}

// Close says goodbye to everything announced, stops every goroutine and waits for
// them. It is idempotent.
func (m *MDNS) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		annCancel, annDone := m.annCancel, m.annDone
		m.mu.Unlock()
		if annCancel != nil {
			annCancel()
			<-annDone
		}
		m.cancel()
		m.wg.Wait()
	})
	return nil
}

// Ifaces returns the interfaces in use.
func (m *MDNS) Ifaces() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ifaces)
}

// SetServices replaces the local services to announce (filtered by Config.Announce).
// It never blocks for long: the announcer catches up in the background.
func (m *MDNS) SetServices(svcs []catalog.Service) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.services = slices.Clone(svcs)
	if m.started {
		m.announceLocked()
	}
}

// announceLocked hands the announcer the instances wanted now.
func (m *MDNS) announceLocked() {
	host := hostLabel(m.cfg.Node)
	w := wanted{ifaces: slices.Clone(m.ifaces), host: host, svcs: map[string]serviceSpec{}}
	if m.cfg.GossipPort > 0 && m.cfg.Fingerprint != "" {
		w.svcs[RumorType+"/"+m.cfg.Node] = serviceSpec{Name: m.cfg.Node, Type: RumorType,
			Port: m.cfg.GossipPort, Text: map[string]string{"v": "1", MarkerKey: m.cfg.Node, "id": m.cfg.NodeID,
				"dc": m.cfg.Datacenter, "fp": m.cfg.Fingerprint}}
	}
	for _, s := range m.services {
		if !m.announces(s) {
			continue
		}
		t := ServiceType(s.Name)
		if ValidateType(t) != nil {
			m.log.Debug("mdns: service name is not a DNS-SD type, not announced", "service", s.ID, "name", s.Name)
			continue
		}
		name := InstanceName(s.ID, m.cfg.Node)
		w.svcs[t+"/"+name] = serviceSpec{Name: name, Type: t, Port: s.Port, Text: ServiceText(m.cfg.Node, s)}
	}
	m.ann.set(w)
}

// announces reports whether the announce mode covers s (services without a port
// have nothing to announce).
func (m *MDNS) announces(s catalog.Service) bool {
	switch {
	case s.Port <= 0:
		return false
	case m.cfg.Announce == AnnounceAll:
		return true
	case strings.HasPrefix(m.cfg.Announce, AnnounceTagPrefix):
		return s.HasTag(strings.TrimPrefix(m.cfg.Announce, AnnounceTagPrefix))
	}
	return false
}

func (m *MDNS) selectIfaces() []string {
	ifs, err := systemIfaces()
	if err != nil {
		m.log.Warn("mdns: list interfaces", "error", err)
		return nil
	}
	return Select(ifs, m.cfg.Ifaces, m.cfg.IfacesExclude)
}

// watchIfaces follows interfaces that come and go.
func (m *MDNS) watchIfaces() {
	t := time.NewTicker(m.cfg.IfacePoll)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		now := m.selectIfaces()
		m.mu.Lock()
		if !slices.Equal(now, m.ifaces) {
			m.log.Info("mdns: interfaces changed", "ifaces", now)
			m.ifaces = now
			m.q.setIfaces(now)
			m.announceLocked()
		}
		m.mu.Unlock()
	}
}

// onChange takes the querier's views (on the querier's loop).
func (m *MDNS) onChange(iface, typ string, insts []Instance) {
	m.mu.Lock()
	if typ == RumorType {
		peers := map[string]Instance{}
		for _, in := range insts {
			node := in.Text[MarkerKey]
			if in.Text["v"] != "1" || node == "" || node == m.cfg.Node || in.Text["id"] == m.cfg.NodeID ||
				in.Text["fp"] != m.cfg.Fingerprint || in.Text["dc"] != m.cfg.Datacenter {
				continue // ourselves, or another pool: never tried
			}
			peers[node] = in
		}
		m.peers[iface] = peers
	} else {
		m.views[snapshotKey{iface, typ}] = insts
	}
	svcs, changed := m.importsLocked(iface)
	m.mu.Unlock()
	if typ == RumorType {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	if changed {
		m.metrics.imported.Set(float64(len(svcs)))
		m.cfg.Sink.SetImported(iface, svcs)
	}
}

// importsLocked computes what this agent imports on iface. Several agents on one link
// see the same instances; only one imports them, so each shows once: the agent with
// the lowest node name among the agents of this pool seen on the link (all of them
// see the same set, so they agree; when it goes, its _rumor._udp instance expires and
// the next takes over).
func (m *MDNS) importsLocked(iface string) ([]catalog.Service, bool) {
	if m.cfg.Sink == nil {
		return nil, false
	}
	var out []catalog.Service
	designated := true
	for node := range m.peers[iface] {
		if node < m.cfg.Node {
			designated = false
		}
	}
	if designated {
		for _, t := range m.cfg.Import {
			for _, in := range m.views[snapshotKey{iface, t}] {
				s, err := Imported(in)
				if err != nil {
					m.log.Debug("mdns: not imported", "instance", in.FullName(), "iface", iface, "error", err)
					continue
				}
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b catalog.Service) int { return strings.Compare(a.ID, b.ID) })
	out = slices.CompactFunc(out, func(a, b catalog.Service) bool { return a.ID == b.ID })
	prev := m.imported[iface]
	if slices.EqualFunc(prev, out, equalService) {
		return out, false
	}
	m.imported[iface] = out
	return out, true
}

func equalService(a, b catalog.Service) bool {
	if a.ID != b.ID || a.Name != b.Name || a.Address != b.Address || a.Port != b.Port ||
		!slices.Equal(a.Tags, b.Tags) || len(a.Meta) != len(b.Meta) {
		return false
	}
	for k, v := range a.Meta {
		if w, ok := b.Meta[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// joinLoop joins the peers found on the link that are not members yet, at most once
// per JoinInterval each. It runs for ever, so it also re-finds peers after a
// partition or a restart.
func (m *MDNS) joinLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		case <-t.C:
		}
		for node, addrs := range m.joinable(time.Now()) {
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			err := m.cfg.Joiner.Join(ctx, addrs)
			cancel()
			if err != nil {
				m.metrics.joins.WithLabelValues("error").Inc()
				m.log.Debug("mdns: join a peer found on the link", "node", node, "addrs", addrs, "error", err)
				continue
			}
			m.metrics.joins.WithLabelValues("ok").Inc()
			m.log.Info("mdns: joined a peer found on the link", "node", node, "addrs", addrs)
		}
	}
}

// joinable returns the gossip addresses of the peers to try now, by node, and notes
// the attempt.
func (m *MDNS) joinable(now time.Time) map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]string{}
	for _, peers := range m.peers {
		for node, in := range peers {
			if now.Sub(m.lastJoin[node]) < m.cfg.JoinInterval || m.cfg.Joiner.IsMember(node) {
				continue
			}
			out[node] = append(out[node], joinAddrs(in)...)
		}
	}
	for node := range out {
		if len(out[node]) == 0 {
			delete(out, node)
			continue
		}
		m.lastJoin[node] = now
	}
	return out
}

// joinAddrs lists an agent instance's gossip addresses, IPv4 first, then global
// IPv6, then link-local IPv6 with its zone (used to join only: a node's own address
// is what gossip spreads).
func joinAddrs(in Instance) []string {
	addrs := slices.Clone(in.Addrs)
	rank := func(a netip.Addr) int {
		switch {
		case a.Is4():
			return 0
		case !a.IsLinkLocalUnicast():
			return 1
		}
		return 2
	}
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int { return rank(a) - rank(b) })
	var out []string
	for _, a := range addrs {
		out = append(out, net.JoinHostPort(a.String(), strconv.Itoa(in.Port)))
	}
	return out
}
