package gossip

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// reconnectState tracks attempts to reach one failed member again. memberlist never
// probes a node it declared dead, so without this two halves of a healed partition
// would stay apart until someone joined them by hand. serf retries every 30 s; we
// retry a recently failed member after 1 s, doubling up to ReconnectMaxBackoff, so a
// heal is noticed within seconds, and cap the attempts per interval. A member failed
// for longer than reconnectSlowAfter backs off further, to serf's 30 s.
type reconnectState struct {
	addr     netip.AddrPort
	failedAt time.Time
	next     time.Time
	backoff  time.Duration
	inFlight bool
}

const (
	// reconnectSlowAfter is how long a failed member is retried at the fast pace. A
	// partition that long is rare and a node gone that long is likely dead: probing it
	// every few seconds from every peer until ReconnectTimeout would be waste.
	reconnectSlowAfter = 5 * time.Minute
	// reconnectSlowBackoff caps the delay between attempts after reconnectSlowAfter.
	reconnectSlowBackoff = 30 * time.Second
)

// scheduleReconnect starts retrying a member that failed at now. The caller holds g.mu.
func (g *Gossip) scheduleReconnect(name string, addr netip.AddrPort, now time.Time) {
	if _, ok := g.reconnect[name]; ok {
		return
	}
	g.reconnect[name] = &reconnectState{addr: addr, failedAt: now, next: now.Add(time.Second), backoff: time.Second}
}

// reconnectLoop attempts due reconnects every ReconnectInterval, at most
// ReconnectBurst at a time, until shutdown.
func (g *Gossip) reconnectLoop() {
	g.every(g.cfg.ReconnectInterval, func() {
		for _, name := range g.dueReconnects(time.Now()) {
			g.attemptReconnect(name)
		}
	})
}

// every runs fn every d until shutdown; the caller has counted it in g.wg.
func (g *Gossip) every(d time.Duration, fn func()) {
	defer g.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// dueReconnects picks the members whose next attempt is due, oldest-due first, up to
// the burst cap, and forgets members failed longer than ReconnectTimeout.
func (g *Gossip) dueReconnects(now time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var due []string
	for name, rs := range g.reconnect {
		if now.Sub(rs.failedAt) > g.cfg.ReconnectTimeout {
			delete(g.reconnect, name)
			continue
		}
		if !rs.inFlight && !now.Before(rs.next) {
			due = append(due, name)
		}
	}
	slices.SortFunc(due, func(a, b string) int { return g.reconnect[a].next.Compare(g.reconnect[b].next) })
	if len(due) > g.cfg.ReconnectBurst {
		due = due[:g.cfg.ReconnectBurst]
	}
	for _, name := range due {
		rs := g.reconnect[name]
		rs.inFlight = true
		rs.next = now.Add(rs.backoff)
		limit := g.cfg.ReconnectMaxBackoff
		if now.Sub(rs.failedAt) >= reconnectSlowAfter {
			limit = max(limit, reconnectSlowBackoff)
		}
		rs.backoff = min(2*rs.backoff, limit)
	}
	return due
}

// attemptReconnect joins a failed member's address in the background. Success shows
// up as a NotifyJoin, which ends the retries.
func (g *Gossip) attemptReconnect(name string) {
	g.mu.Lock()
	rs := g.reconnect[name]
	g.mu.Unlock()
	if rs == nil {
		return
	}
	g.metrics.reconnects.Inc()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		var err error
		if err = g.probeReachable(name, rs.addr); err == nil {
			_, err = g.ml.Join([]string{rs.addr.String()})
		}
		g.mu.Lock()
		if cur := g.reconnect[name]; cur != nil {
			cur.inFlight = false
		}
		g.mu.Unlock()
		if err != nil {
			g.cfg.Logger.Debug("gossip: reconnect failed", "node", name, "addr", rs.addr.String(), "err", err)
		}
	}()
}

// reachDialTimeout bounds the reachability probe before a reconnect attempt.
const reachDialTimeout = time.Second

// probeReachable opens and closes a TCP connection to a failed member before asking
// memberlist to join it. memberlist's join waits out its TCP timeout (10 s on a LAN)
// when packets vanish, as they do across a partition; probing with a 1 s dial first
// means the attempt after a heal is not stuck behind one started during the split.
func (g *Gossip) probeReachable(name string, addr netip.AddrPort) error {
	var conn net.Conn
	var err error
	if g.cfg.Transport != nil {
		conn, err = g.cfg.Transport.DialAddressTimeout(memberlist.Address{Addr: addr.String(), Name: name}, reachDialTimeout)
	} else {
		conn, err = net.DialTimeout("tcp", addr.String(), reachDialTimeout)
	}
	if err != nil {
		return err
	}
	return conn.Close()
}
