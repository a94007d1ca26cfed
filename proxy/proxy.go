package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Proxy runs the local listeners of a set of upstreams. Create it with New, give it
// upstreams with Set, stop it with Close.
type Proxy struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	eng engine // how connections are forwarded (see Engine)

	mu     sync.Mutex
	ups    map[string]*upstream // by upstreamKey
	closed bool
}

// New returns a proxy with no upstreams.
func New(cfg Config) (*Proxy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{cfg: cfg, log: cfg.Logger, m: m, ctx: ctx, cancel: cancel, ups: make(map[string]*upstream)}
	if cfg.Engine == EngineEpoll {
		p.eng = newLoops(p, cfg.Loops)
	} else {
		p.eng = goEngine{p}
	}
	return p, nil
}

// Set makes ups the proxy's upstreams: it opens the listeners of new ones, closes
// those no longer listed (their open connections finish, bounded by DrainTimeout)
// and leaves the others untouched. Every upstream is validated first; on an invalid
// one, or two on the same address, nothing changes. A listener that cannot be opened
// is reported and the others still apply.
func (p *Proxy) Set(ups []Upstream) error {
	if err := definition.ValidateUpstreams("upstreams", ups); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy: closed")
	}
	want := make(map[string]Upstream, len(ups))
	for _, u := range ups {
		want[upstreamKey(u)] = u
	}
	for addr, up := range p.ups {
		if u, ok := want[addr]; !ok || u != up.def {
			up.stop()
			delete(p.ups, addr)
		}
	}
	var errs []error
	for addr, u := range want {
		if p.ups[addr] != nil {
			continue
		}
		up, err := p.start(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.ups[addr] = up
	}
	return errors.Join(errs...)
}

// upstreamKey names an upstream: its address, and its service for port 0 (tests),
// where two upstreams get different ports.
func upstreamKey(u Upstream) string {
	if u.LocalBindPort == 0 {
		return u.Addr() + " " + u.Service + ":" + u.Tag
	}
	return u.Addr()
}

// Close stops every listener, closes every connection and waits for every
// goroutine. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, up := range p.ups {
			up.stop()
		}
		p.cancel()
		p.eng.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// InstanceStatus is one instance as an upstream sees it.
type InstanceStatus struct {
	Node         string
	ServiceID    string
	Address      string
	Weight       int64
	Active       int64     // open connections
	Failures     int32     // consecutive connect failures
	Ejections    int32     // times ejected
	EjectedUntil time.Time `json:",omitzero"`
	Draining     bool      `json:",omitempty"`
}

// UpstreamStatus is an upstream and its instances.
type UpstreamStatus struct {
	Upstream
	Listen    string // the address actually listened on
	Instances []InstanceStatus
}

// Upstreams returns the upstreams with their instances, sorted by listen address.
func (p *Proxy) Upstreams() []UpstreamStatus {
	p.mu.Lock()
	ups := make([]*upstream, 0, len(p.ups))
	for _, up := range p.ups {
		ups = append(ups, up)
	}
	p.mu.Unlock()
	out := make([]UpstreamStatus, 0, len(ups))
	for _, up := range ups {
		st := UpstreamStatus{Upstream: up.def, Listen: up.listen, Instances: []InstanceStatus{}}
		up.mu.Lock()
		for b := range up.all {
			is := InstanceStatus{Node: b.node, Address: b.addr, Weight: b.weight.Load(), Active: b.active.Load(),
				Failures: b.fails.Load(), Ejections: b.ejections.Load(), Draining: b.draining.Load(), ServiceID: b.serviceID}
			if u := b.ejectedUntil.Load(); u > time.Now().UnixNano() {
				is.EjectedUntil = time.Unix(0, u)
			}
			st.Instances = append(st.Instances, is)
		}
		up.mu.Unlock()
		slices.SortFunc(st.Instances, func(a, b InstanceStatus) int {
			if a.Node != b.Node {
				return cmpStr(a.Node, b.Node)
			}
			return cmpStr(a.ServiceID, b.ServiceID)
		})
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b UpstreamStatus) int { return cmpStr(a.Listen, b.Listen) })
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// upstream is one listener and its instances.
type upstream struct {
	p      *Proxy
	def    Upstream
	listen string           // the address actually listened on
	ln     *net.TCPListener // the goroutine engine's listener
	ll     *loopListener    // the event loops' listener
	cur    atomicSet
	// keepAliveInherited is set when accepted connections have the listener's
	// keep-alive settings already (see listen).
	keepAliveInherited bool
	noBackend          prometheus.Counter // resolved once: not a label lookup per connection

	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex
	all map[*backend]struct{} // live and draining instances
	// index finds the current set's instances by key once the set is larger than
	// scanMax; smaller sets are scanned, which is cheaper than hashing a key.
	index map[string]*backend
	// eps and next are rebuild's scratch space, reused so that a rebuild which
	// finds the set unchanged allocates nothing.
	eps  []catalog.Endpoint
	next []*backend
}

// scanMax is the largest set rebuild searches by scanning rather than by index.
const scanMax = 32

func (p *Proxy) start(u Upstream) (*upstream, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	up := &upstream{p: p, def: u, ctx: ctx, cancel: cancel,
		all: make(map[*backend]struct{}), noBackend: p.m.noBackend.WithLabelValues(u.Service)}
	up.cur.Store(&set{})
	up.rebuild() // before accepting, so the first connection finds the instances
	if err := p.eng.listen(up); err != nil {
		cancel()
		return nil, fmt.Errorf("proxy: upstream %s: listen on %s: %w", u.Service, u.Addr(), err)
	}
	p.wg.Go(up.watch)
	p.log.Info("proxy upstream listening", "service", u.Service, "tag", u.Tag, "addr", up.listen)
	return up, nil
}

// engine forwards an upstream's connections: goroutines (goEngine) or event loops
// (loops, Linux). Its methods are called with Proxy.mu held.
type engine interface {
	// listen opens up's listener, sets up.listen and starts accepting.
	listen(up *upstream) error
	// unlisten stops accepting and closes the listener before it returns, so that
	// the address is free for the next listen.
	unlisten(up *upstream)
	// close ends the engine once every upstream is stopped: its connections close
	// and its goroutines end (Proxy.wg waits for them).
	close()
}

// goEngine forwards each connection on goroutines of its own: an accept goroutine
// per upstream, which serves the connection it accepts, and one more per connection
// for its second direction.
type goEngine struct{ p *Proxy }

func (e goEngine) listen(up *upstream) error {
	ln, inherits, err := listen(e.p.ctx, up.def.Addr(), e.p.cfg.KeepAlive)
	if err != nil {
		return err
	}
	up.ln, up.keepAliveInherited, up.listen = ln, inherits, ln.Addr().String()
	e.p.wg.Go(up.accept)
	return nil
}

func (goEngine) unlisten(up *upstream) { _ = up.ln.Close() }

// close has nothing to do: each connection's goroutines end when the upstream's
// context is cancelled or their instance's drain closes it.
func (goEngine) close() {}

// stop closes the listener; open connections drain for DrainTimeout, then close.
func (up *upstream) stop() {
	up.p.eng.unlisten(up)
	up.cancel()
	up.mu.Lock()
	for b := range up.all {
		up.drainLocked(b)
	}
	up.mu.Unlock()
}

// watch rebuilds the set whenever the service's topic moves.
func (up *upstream) watch() {
	topic := catalog.ServiceTopic(up.def.Service)
	for {
		_, ch := up.p.cfg.Catalog.Watch(topic)
		up.rebuild()
		select {
		case <-ch:
		case <-up.ctx.Done():
			return
		}
	}
}

// rebuild reads the service's endpoints and publishes a new set if its instances
// changed. Instances that stay keep their counters; those that left drain. A rebuild
// that finds the same instances (only weights or distances moved, which are atomics
// of the instances) publishes nothing and allocates nothing.
func (up *upstream) rebuild() {
	start := time.Now()
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.ctx.Err() != nil {
		return
	}
	eps := up.p.cfg.Catalog.Endpoints(up.eps[:0], up.def.Service, up.def.Tag)
	up.eps = eps
	var rtts map[string]time.Duration
	if f := up.p.cfg.RTTs; f != nil {
		rtts = f()
	}
	old := up.cur.Load().live
	next := up.next[:0]
	added := false
	for i := range eps {
		ep := &eps[i]
		var w int
		switch ep.Status {
		case catalog.StatusPassing:
			w = ep.Weights.Passing
		case catalog.StatusWarning:
			w = ep.Weights.Warning
		}
		if w <= 0 || ep.Address == "" || ep.Port <= 0 {
			continue
		}
		if f := up.p.cfg.Filter; f != nil && !f(ep) {
			continue
		}
		b := up.find(old, ep.Node, ep.ServiceID)
		if b == nil || b.host != ep.Address || b.port != ep.Port {
			b = up.newBackend(ep.Node, ep.ServiceID, ep.Address, ep.Port, start)
			added = true
		}
		b.weight.Store(int64(w))
		if d, ok := rtts[ep.Node]; ok {
			b.rtt.Store(int64(max(d, 1)))
		}
		next = append(next, b)
	}
	up.next = next
	// Keys are unique in a service, so without a new instance every one found is a
	// distinct member of old: the same count means the same set.
	if !added && len(next) == len(old) {
		clear(next) // hold no instance past its drain
		up.p.m.rebuild.Observe(time.Since(start).Seconds())
		return
	}
	live := slices.Clone(next)
	clear(next)
	var index map[string]*backend
	if len(live) > scanMax {
		index = make(map[string]*backend, len(live))
		for _, b := range live {
			index[b.key] = b
		}
	}
	// Published before the instances that left drain, so that a connection which
	// finds its pick draining also finds a new set to pick from (upstream.pick).
	up.index = index
	up.cur.Store(&set{live: live})
	for _, b := range old {
		if !contains(live, index, b) {
			up.drainLocked(b)
		}
	}
	up.p.m.rebuild.Observe(time.Since(start).Seconds())
}

// find returns the instance node/serviceID of the current set old, or nil.
func (up *upstream) find(old []*backend, node, serviceID string) *backend {
	if up.index == nil {
		// An instance whose record did not change hands back the very strings of
		// its last rebuild: comparing where they point finds it without comparing
		// bytes (which most of the others would cost, names being of a length).
		sid := unsafe.StringData(serviceID)
		for _, b := range old {
			if unsafe.StringData(b.serviceID) == sid && len(b.serviceID) == len(serviceID) && b.node == node {
				return b
			}
		}
		for _, b := range old {
			if b.serviceID == serviceID && b.node == node {
				return b
			}
		}
		return nil
	}
	var buf [128]byte
	k := append(append(append(buf[:0], node...), '/'), serviceID...)
	return up.index[string(k)] // the compiler does not allocate for this conversion
}

// contains reports whether b is in live, whose index is nil when live is small.
func contains(live []*backend, index map[string]*backend, b *backend) bool {
	if index != nil {
		return index[b.key] == b
	}
	return slices.Contains(live, b)
}

// newBackend makes the state of instance node/serviceID. It keeps the catalog's
// strings (find compares where they point).
func (up *upstream) newBackend(node, serviceID, host string, port int, now time.Time) *backend {
	b := &backend{up: up, key: node + "/" + serviceID, node: node, serviceID: serviceID, host: host, port: port,
		addr: net.JoinHostPort(host, strconv.Itoa(port)), added: now}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		b.ip = ip.Unmap() // names and zoned addresses are resolved per connect
	}
	up.all[b] = struct{}{}
	return b
}

// drainLocked takes b out of rotation at once and closes its connections after
// DrainTimeout (or at Close). It starts no goroutine: a timer and a context callback
// wait, whichever comes first, so draining thousands of instances at once costs no
// stacks.
func (up *upstream) drainLocked(b *backend) {
	if b.draining.Swap(true) {
		return
	}
	p := up.p
	p.wg.Add(1)
	finish := func() {
		up.mu.Lock()
		if b.drained {
			up.mu.Unlock()
			return
		}
		b.drained = true
		delete(up.all, b)
		t, stop := b.drainTimer, b.drainStop
		up.mu.Unlock()
		t.Stop()
		stop() // forget the context callback, so a drained instance is not kept
		b.closeAll()
		p.wg.Done()
	}
	// Both are set under up.mu, which finish takes before reading them.
	b.drainTimer = time.AfterFunc(p.cfg.DrainTimeout, finish)
	b.drainStop = context.AfterFunc(p.ctx, finish)
}

// accept waits for a connection, then hands the listener to a new accept goroutine
// and serves the connection itself: the connection starts at once, on the goroutine
// the poller woke, rather than after a new goroutine is scheduled (the hand-off moves
// off the connection's path to the next accept).
func (up *upstream) accept() {
	var delay time.Duration
	for {
		c, err := up.ln.AcceptTCP()
		if err != nil {
			if up.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			up.p.log.Error("proxy: accept failed; retrying", "service", up.def.Service, "in", delay, "error", err)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-up.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		up.p.wg.Go(up.accept)
		up.serve(c)
		return
	}
}

// serve forwards one client connection to an instance, trying up to Attempts
// instances when connects fail. It closes c.
func (up *upstream) serve(c *net.TCPConn) {
	p := up.p
	if !up.keepAliveInherited {
		setKeepAlive(c, p.cfg.KeepAlive)
	}
	d := net.Dialer{Timeout: p.cfg.ConnectTimeout, KeepAlive: -1}
	var tried []*backend
	for range p.cfg.Attempts {
		now := time.Now()
		b := up.pick(now, tried)
		if b == nil {
			break
		}
		b.active.Add(1)
		// Not Dialer.DialTCP with a parsed address: without a local address it still
		// binds the socket to port 0 before connecting (a system call more, and a
		// local port not shared with other destinations).
		conn, err := d.DialContext(up.ctx, "tcp", b.addr)
		if err != nil {
			b.active.Add(-1)
			up.failed(b, err)
			tried = append(tried, b)
			continue
		}
		b.fails.Store(0)
		if r := p.cfg.Reporter; r != nil && b.reportDue(now) {
			r.Report(b.addr, true)
		}
		bc := conn.(*net.TCPConn)
		setKeepAlive(bc, p.cfg.KeepAlive)
		up.pipe(c, bc, b)
		b.active.Add(-1)
		return
	}
	_ = c.Close()
	up.noBackend.Inc()
}

// pick picks an instance from the current set (set.pick), or nil. A rebuild
// publishes a new set, then drains the instances it dropped: when the set changed
// while the pick found no instance, it picks again from the new one, rather than
// refuse a connection during a change.
func (up *upstream) pick(now time.Time, tried []*backend) *backend {
	for {
		s := up.cur.Load()
		if b := s.pick(now, up.p.cfg.SlowStart, tried); b != nil || up.cur.Load() == s {
			return b
		}
	}
}

// failed counts a connect failure and ejects b after EjectAfter in a row, unless
// half of the set is already out.
func (up *upstream) failed(b *backend, err error) {
	p := up.p
	m := b.metrics()
	m.fails.Inc()
	b.failedNow()
	if r := p.cfg.Reporter; r != nil {
		// A refused connect reached the host: the instance is down, not cut off.
		r.Report(b.addr, errors.Is(err, syscall.ECONNREFUSED))
	}
	if int(b.fails.Add(1)) < p.cfg.EjectAfter {
		return
	}
	now := time.Now()
	s := up.cur.Load()
	out := 0
	for _, o := range s.live {
		if o.ejectedUntil.Load() > now.UnixNano() {
			out++
		}
	}
	if (out+1)*2 > len(s.live) || b.ejectedUntil.Load() > now.UnixNano() {
		return // the panic threshold: keep at least half in rotation
	}
	n := b.ejections.Add(1)
	b.ejectedUntil.Store(now.Add(time.Duration(n) * p.cfg.BaseEjection).UnixNano())
	b.fails.Store(0)
	m.ejections.Inc()
	p.log.Warn("proxy: instance ejected", "service", up.def.Service, "instance", b.key, "addr", b.addr,
		"for", time.Duration(n)*p.cfg.BaseEjection, "error", err)
}

// pipe copies both ways until both sides are done, forwarding half-closes, and
// closes both.
func (up *upstream) pipe(c, bc *net.TCPConn, b *backend) {
	if !b.track(bc) {
		_ = bc.Close()
		_ = c.Close()
		return
	}
	m := b.metrics()
	m.conns.Inc()
	m.active.Inc()
	pp := &pipeState{c: c, bc: bc}
	pp.wg.Add(1)
	go pp.copyUp() // owned by pipe, which waits for it
	down, peer, err := copyAdaptive(c, bc)
	if err != nil {
		pp.abort(peer)
	} else {
		_ = c.CloseWrite()
	}
	pp.wg.Wait()
	pp.close()
	b.untrack(bc)
	m.active.Dec()
	m.bytesUp.Add(float64(pp.up))
	m.bytesDown.Add(float64(down))
}

// pipeState is one forwarded connection: one allocation for what both directions
// share.
type pipeState struct {
	c, bc  *net.TCPConn
	wg     sync.WaitGroup
	closed atomic.Bool
	up     int64 // bytes copied to the instance
}

// copyUp copies the client's bytes to the instance, then forwards the half-close.
func (pp *pipeState) copyUp() {
	defer pp.wg.Done()
	n, peer, err := copyAdaptive(pp.bc, pp.c)
	pp.up = n
	if err != nil {
		pp.abort(peer)
		return
	}
	_ = pp.bc.CloseWrite()
}

// abort closes both connections after an error (mostly a reset by one side),
// resetting peer, the side that did not fail (both when peer is nil): an abort is
// forwarded as one, and the proxy's end keeps no TIME_WAIT.
func (pp *pipeState) abort(peer *net.TCPConn) {
	if pp.closed.Swap(true) {
		return
	}
	if peer != nil {
		_ = peer.SetLinger(0)
	} else {
		_ = pp.c.SetLinger(0)
		_ = pp.bc.SetLinger(0)
	}
	_ = pp.c.Close()
	_ = pp.bc.Close()
}

// close closes both connections normally, unless abort did. A second Close would
// only make an error to drop.
func (pp *pipeState) close() {
	if !pp.closed.Swap(true) {
		_ = pp.c.Close()
		_ = pp.bc.Close()
	}
}

// setKeepAlive turns TCP keep-alive on with the first probe after period of
// silence; the interval and count stay the kernel's (two system calls per
// connection rather than four).
func setKeepAlive(c *net.TCPConn, period time.Duration) {
	if period > 0 {
		_ = c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: period, Interval: -1, Count: -1})
	}
}

// bufPool holds the copy buffers of copyAdaptive.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

const copyBuf = 16 << 10

// copyAdaptive copies src to dst until EOF. Short exchanges (most connections) go
// through a pooled buffer, one read and one write each; once a read fills the
// buffer the stream is bulk, and the rest goes through io.Copy, which splices
// between two *net.TCPConn on Linux (no copy through user space, but two splice
// calls and a pipe per transfer, which costs more than it saves on small ones).
// On an error, peer is the side that did not fail: dst when reading src failed, src
// when writing dst did, nil when the error does not tell (a splice).
func copyAdaptive(dst, src *net.TCPConn) (total int64, peer *net.TCPConn, err error) {
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				bufPool.Put(bp)
				return total, src, werr
			}
		}
		if err != nil {
			bufPool.Put(bp)
			if errors.Is(err, io.EOF) {
				return total, nil, nil
			}
			return total, dst, err
		}
		if n == len(buf) {
			bufPool.Put(bp)
			m, err := io.Copy(dst, src)
			return total + m, nil, err
		}
	}
}
