package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
)

// Server is a DNS server answering from a Catalog. Create it with New, start it with
// Start, stop it with Close.
type Server struct {
	cfg     Config
	serial  uint32
	soas    map[string]dns.RR // by zone
	metrics *metrics

	cache  sync.Map // lower-case name → *entry
	cached atomic.Int64
	rtts   atomic.Pointer[map[string]time.Duration] // OrderNear's estimates; nil when off or unknown
	names  atomic.Pointer[names]                    // service names by lower case
	// gen moves whenever cached entries are dropped: each scratch's cache of entries
	// (the UDP fast path's) is cleared when it sees gen move.
	gen atomic.Uint64
	// optWire is the OPT record of an answer to an EDNS0 query, packed.
	optWire []byte

	udp []*net.UDPConn // NetpollUDP's sockets
	fds []int          // the UDP threads' blocking sockets (Linux without NetpollUDP)
	// stopping tells the UDP threads to return once Close woke them.
	stopping atomic.Bool
	raw      []syscall.RawConn // udp's, for drain
	// lastRead is when a reader last read a datagram (Unix ns): workers drain the
	// sockets only when the readers have not run for a while.
	lastRead atomic.Int64
	tcp      net.Listener
	tcpS     *dns.Server
	addr     netip.AddrPort

	q        queue
	forwards chan struct{} // semaphore of forwarded queries

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New checks cfg and returns a server, not yet listening.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, serial: uint32(time.Now().Unix()), forwards: make(chan struct{}, c.MaxForwards)}
	s.soas = map[string]dns.RR{c.Domain: s.soa(c.Domain)}
	if c.AltDomain != "" {
		s.soas[c.AltDomain] = s.soa(c.AltDomain)
	}
	if s.metrics, err = newMetrics(c.Registerer); err != nil {
		return nil, err
	}
	s.q.init(c.MaxQueue, c.LIFOAbove)
	opt := new(dns.Msg).SetEdns0(uint16(c.MaxUDPSize), false).Extra[0]
	s.optWire = make([]byte, dns.Len(opt))
	if _, err := dns.PackRR(opt, s.optWire, 0, nil, false); err != nil {
		return nil, fmt.Errorf("dnsserver: pack OPT: %w", err)
	}
	return s, nil
}

// Start listens on Config.Addr, UDP and TCP, and serves until Close.
func (s *Server) Start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(s.cfg.Addr)
	var ln net.Listener
	var err error
	// With port 0 the kernel picks a free UDP port, whose TCP twin may be taken:
	// try again with another.
	for attempt := 0; ; attempt++ {
		ln, err = s.listen(ctx)
		if err == nil || port != "0" || attempt == 20 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		return err
	}
	s.tcp = &limitListener{Listener: ln, sem: make(chan struct{}, s.cfg.MaxTCPConns), refused: s.metrics.tcpRefused}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, c := range s.udp {
		rc, err := c.SyscallConn()
		if err != nil {
			s.closeSockets()
			s.closeFDs()
			_ = ln.Close()
			return fmt.Errorf("dnsserver: udp socket: %w", err)
		}
		s.raw = append(s.raw, rc)
	}
	if s.threadsUDP() {
		s.startThreads()
	} else {
		for _, c := range s.udp {
			s.wg.Go(func() { s.readUDP(c) })
		}
		for range s.cfg.Workers {
			s.wg.Go(s.work)
		}
	}
	started := make(chan struct{})
	s.tcpS = &dns.Server{Listener: s.tcp, Net: "tcp", Handler: dns.HandlerFunc(s.serveTCP),
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxTCPQueries: -1, IdleTimeout: func() time.Duration { return 8 * time.Second },
		NotifyStartedFunc: func() { close(started) }}
	s.wg.Go(func() {
		if err := s.tcpS.ActivateAndServe(); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("dns tcp server stopped", "err", err)
		}
	})
	s.wg.Go(func() { s.watch(ctx) })
	if s.cfg.OrderNear { // read in the loop, not here: Start's caller may hold locks Near takes
		s.wg.Go(func() { s.nearLoop(ctx) })
	}
	<-started
	s.cfg.Logger.Info("dns server listening", "addr", s.addr.String(), "domain", s.cfg.Domain, "udp_sockets", len(s.udp))
	return nil
}

// listen opens the UDP sockets and the TCP listener on one port.
func (s *Server) listen(ctx context.Context) (net.Listener, error) {
	s.udp = nil
	if s.threadsUDP() {
		ua, err := net.ResolveUDPAddr("udp", s.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("dnsserver: listen udp %s: %w", s.cfg.Addr, err)
		}
		ap := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
		if !ap.Addr().IsValid() { // no host: every address, both families
			ap = netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
		}
		if s.addr, err = s.listenThreads(ap); err != nil {
			return nil, err
		}
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.addr.String())
		if err != nil {
			s.closeFDs()
			return nil, fmt.Errorf("dnsserver: listen tcp %s: %w", s.addr, err)
		}
		return ln, nil
	}
	lc := net.ListenConfig{Control: reusePort}
	pc, err := lc.ListenPacket(ctx, "udp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: listen udp %s: %w", s.cfg.Addr, err)
	}
	first := pc.(*net.UDPConn)
	s.udp = append(s.udp, first)
	s.addr = first.LocalAddr().(*net.UDPAddr).AddrPort()
	bound := s.addr.String()
	readers := s.cfg.UDPReaders
	if !reusePortWorks {
		readers = 1
	}
	for i := 1; i < readers; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", bound)
		if err != nil {
			s.closeSockets()
			return nil, fmt.Errorf("dnsserver: listen udp %s (socket %d): %w", bound, i+1, err)
		}
		s.udp = append(s.udp, pc.(*net.UDPConn))
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", bound)
	if err != nil {
		s.closeSockets()
		return nil, fmt.Errorf("dnsserver: listen tcp %s: %w", bound, err)
	}
	return ln, nil
}

// Addr returns the address the server listens on (UDP and TCP); invalid before Start.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Answered counts the queries answered since New (UDP and TCP, any rcode).
func (s *Server) Answered() uint64 { return s.metrics.answered.Load() }

// Close stops serving and waits for every goroutine Start started. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel == nil {
			return
		}
		s.cancel()
		s.stopping.Store(true)
		s.stopThreads()
		s.closeSockets()
		if s.tcpS != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.tcpS.ShutdownContext(ctx); err != nil {
				s.closeErr = fmt.Errorf("dnsserver: stop tcp: %w", err)
			}
			cancel()
		}
		s.q.close()
		s.wg.Wait()
		s.closeFDs() // after the threads and forwards, which write to them, returned
	})
	return s.closeErr
}

func (s *Server) closeSockets() {
	for _, c := range s.udp {
		_ = c.Close()
	}
}

// watch drops cached entries whenever the catalog changes.
func (s *Server) watch(ctx context.Context) {
	for {
		_, ch := s.cfg.Catalog.Watch(catalog.TopicAll)
		s.invalidate()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// refreshNear reads the round-trip estimates OrderNear sorts by.
func (s *Server) refreshNear() {
	rtts, ok := s.cfg.Near.RTTsFrom(s.cfg.NodeName)
	if !ok {
		s.rtts.Store(nil)
		return
	}
	s.rtts.Store(&rtts)
}

// nearLoop refreshes the estimates every NearRefresh until ctx ends.
func (s *Server) nearLoop(ctx context.Context) {
	s.refreshNear()
	t := time.NewTicker(s.cfg.NearRefresh)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.refreshNear()
		case <-ctx.Done():
			return
		}
	}
}

// A packet is one UDP query waiting for a worker.
type packet struct {
	buf  *[]byte
	n    int
	from netip.AddrPort
	conn *net.UDPConn
	at   time.Time
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, dns.MaxMsgSize); return &b }}

// inlineBelow is how old (since the kernel received it) a datagram may be for its
// reader to answer it at once: older ones mean a queue is building in the socket, and
// go to the workers' queue so the reader can drain the socket.
const inlineBelow = time.Millisecond

// readUDP reads one socket until it closes. While the workers' queue is empty and
// datagrams are fresh, it answers them itself (no hand-off, no wake-up); otherwise it
// queues them for the workers, newest first under overload.
func (s *Server) readUDP(c *net.UDPConn) {
	_ = c.SetReadBuffer(4 << 20) // room for bursts; capped by net.core.rmem_max
	oob := make([]byte, oobSize)
	sc := newScratch()
	for {
		bp := bufPool.Get().(*[]byte)
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(*bp, oob)
		if err != nil {
			bufPool.Put(bp)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Logger.Debug("dns udp read", "err", err)
			continue
		}
		now := time.Now()
		s.lastRead.Store(now.UnixNano())
		p := packet{buf: bp, n: n, from: from, conn: c, at: arrival(oob[:oobn], now)}
		if now.Sub(p.at) < inlineBelow && s.q.empty() {
			s.serveUDP(p, sc)
			bufPool.Put(bp)
			continue
		}
		s.admit(p, now)
	}
}

// shedTooOld reports whether a query received at at has waited longer than
// MaxQueueDelay by now (OverloadQueueDelay when it came from a queue in LIFO order:
// overload), and counts it shed (too_old) if so. Callers ask it only behind a
// backlog: a late query alone is a scheduling hiccup, not overload.
func (s *Server) shedTooOld(at, now time.Time, overload bool) bool {
	limit := s.cfg.MaxQueueDelay
	if overload {
		limit = s.cfg.OverloadQueueDelay
	}
	if now.Sub(at) <= limit {
		return false
	}
	s.metrics.shed.WithLabelValues("too_old").Inc()
	return true
}

// admit queues a datagram for the workers, or sheds it when it is already older
// than OverloadQueueDelay while a backlog waits: overload, so its client has likely
// given up, and answering it would delay fresher ones.
func (s *Server) admit(p packet, now time.Time) {
	if s.q.backlogged() && s.shedTooOld(p.at, now, true) {
		bufPool.Put(p.buf)
		return
	}
	if old, dropped := s.q.push(p); dropped {
		bufPool.Put(old.buf)
		s.metrics.shed.WithLabelValues("queue_full").Inc()
	}
}

// drainMax is how many waiting datagrams a worker reads per socket after each answer
// while a backlog waits: more than arrive meanwhile at twice the rate the server
// answers, so the sockets stay short and the queue holds the excess.
const drainMax = 8

// drain reads the datagrams already waiting in the sockets into the queue, without
// waiting. Workers call it while a backlog waits: then every P may be busy answering,
// and the readers, parked in the netpoller, run only when the runtime polls it,
// which with every P busy can be 10 ms apart (sysmon); meanwhile queries would age in
// the sockets, unseen by the LIFO order and the shedding.
func (s *Server) drain(sc *scratch) {
	for i, c := range s.udp {
		var ps [drainMax]packet
		got := 0
		_ = s.raw[i].Control(func(fd uintptr) {
			for got < drainMax {
				bp := bufPool.Get().(*[]byte)
				n, oobn, from, ok := readNow(fd, *bp, sc.oob)
				if !ok {
					bufPool.Put(bp)
					return
				}
				ps[got] = packet{buf: bp, n: n, from: from, conn: c, at: arrival(sc.oob[:oobn], time.Now())}
				got++
			}
		})
		now := time.Now()
		for _, p := range ps[:got] {
			s.admit(p, now)
		}
	}
}

// work answers queued UDP queries, newest first, until the queue closes.
func (s *Server) work() {
	sc := newScratch()
	for {
		p, backlog, ok := s.q.pop()
		if !ok {
			return
		}
		// Stale and behind a backlog: overload, not a scheduling hiccup.
		if backlog && s.shedTooOld(p.at, time.Now(), true) {
			bufPool.Put(p.buf)
			continue
		}
		s.serveUDP(p, sc)
		bufPool.Put(p.buf)
		if time.Now().UnixNano()-s.lastRead.Load() > int64(readersLate) && !s.q.empty() {
			s.drain(sc)
		}
	}
}

// readersLate is how long no reader may have read for a worker to drain the sockets
// itself while a backlog waits. Draining when the readers do run would only cost
// a system call (EAGAIN) per socket and answer.
const readersLate = time.Millisecond

// scratch is what one goroutine reuses from query to query: the answer's buffer and
// packMsg's compression table. A UDP reader or worker owns one; TCP answers borrow
// one from scratchPool.
type scratch struct {
	out  []byte
	comp map[string]int
	rrs  rrCopies
	oob  []byte // drain's control messages

	// The fast path's (fastpath.go): the name asked (lower case), the entries of
	// names asked before (nil: the general path answers it) as of Server.gen moving
	// to gen, and choose's and assemble's working slices.
	lower         [255]byte
	cache         map[string]*entry
	gen           uint64
	picks         picks
	bases, starts []int
}

func newScratch() *scratch {
	return &scratch{out: make([]byte, dns.MaxMsgSize), comp: make(map[string]int, 32), oob: make([]byte, oobSize),
		cache: map[string]*entry{}}
}

var scratchPool = sync.Pool{New: func() any { return newScratch() }}

// serveUDP answers one packet with sc's buffers.
func (s *Server) serveUDP(p packet, sc *scratch) {
	b, qtype, rcode, fwd := s.answerUDP((*p.buf)[:p.n], sc, p.at)
	if fwd != nil {
		s.forwardUDP(fwd, p.at, func(b []byte) { _, _ = p.conn.WriteToUDPAddrPort(b, p.from) })
		return
	}
	if b == nil {
		return
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, p.from); err != nil {
		s.cfg.Logger.Debug("dns udp write", "err", err)
	}
	s.metrics.observe(qtype, rcode, p.at)
}

// forwarding is a UDP query to forward to the recursors, and its prepared reply.
type forwarding struct{ req, m *dns.Msg }

// answerUDP answers one UDP query (received at at) into sc.out: the answer to write
// and what metrics.observe needs once it is written. It returns nil when there is
// nothing to write (dropped: counted here), or the query to forward (forwardUDP).
func (s *Server) answerUDP(data []byte, sc *scratch, at time.Time) (wire []byte, qtype uint16, rcode int, fwd *forwarding) {
	if b, qt, ok := s.answerFast(data, sc); ok {
		return b, qt, dns.RcodeSuccess, nil
	}
	return s.answerGeneral(data, sc, at)
}

// answerGeneral is answerUDP for every query, with miekg/dns's messages: handle and
// pack.
func (s *Server) answerGeneral(data []byte, sc *scratch, at time.Time) (wire []byte, qtype uint16, rcode int, fwd *forwarding) {
	req := new(dns.Msg)
	if err := req.Unpack(data); err != nil {
		m := formErr(data)
		if m == nil {
			s.metrics.observe(0, -1, at)
			return nil, 0, 0, nil
		}
		b, err := packMsg(m, sc.out, sc.comp, &sc.rrs)
		if err != nil {
			return nil, 0, 0, nil
		}
		return b, 0, dns.RcodeFormatError, nil
	}
	r, act := s.handle(req, false)
	switch act {
	case actDrop:
		s.metrics.observe(0, -1, at)
		return nil, 0, 0, nil
	case actForward:
		return nil, 0, 0, &forwarding{req: req, m: r.m}
	}
	b, err := s.pack(r, sc.out, sc)
	if err != nil {
		s.cfg.Logger.Warn("dns pack", "err", err)
		return nil, 0, 0, nil
	}
	return b, qtypeOf(req), r.m.Rcode, nil
}

// forwardUDP forwards f and sends its answer with send, from another goroutine.
func (s *Server) forwardUDP(f *forwarding, at time.Time, send func([]byte)) {
	s.forward(f.req, f.m, func(r *dns.Msg) {
		if b, err := r.Pack(); err == nil {
			send(b)
		}
		s.metrics.observe(qtypeOf(f.req), r.Rcode, at)
	})
}

// serveTCP answers one query of a TCP connection.
func (s *Server) serveTCP(w dns.ResponseWriter, req *dns.Msg) {
	at := time.Now()
	rep, act := s.handle(req, true)
	switch act {
	case actDrop:
		s.metrics.observe(0, -1, at)
		return
	case actForward:
		done := make(chan struct{})
		s.forward(req, rep.m, func(r *dns.Msg) {
			_ = w.WriteMsg(r)
			s.metrics.observe(qtypeOf(req), r.Rcode, at)
			close(done)
		})
		<-done
		return
	}
	sc := scratchPool.Get().(*scratch)
	wire, err := s.pack(rep, sc.out, sc)
	if err == nil {
		_, err = w.Write(wire)
	}
	scratchPool.Put(sc)
	if err != nil {
		s.cfg.Logger.Debug("dns tcp answer", "err", err)
	}
	s.metrics.observe(qtypeOf(req), rep.m.Rcode, at)
}

func qtypeOf(m *dns.Msg) uint16 {
	if len(m.Question) == 0 {
		return 0
	}
	return m.Question[0].Qtype
}

// formErr returns the FORMERR answer (RFC 1035 §4.1.1) to a packet that does not
// parse, or nil when not even its header is there, or it is a response: those are
// dropped.
func formErr(data []byte) *dns.Msg {
	if len(data) < 12 || data[2]&0x80 != 0 {
		return nil
	}
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Id: uint16(data[0])<<8 | uint16(data[1]), Response: true,
		Opcode: int(data[2]>>3) & 0xf, Rcode: dns.RcodeFormatError}}
	return m
}

// limitListener closes TCP connections past a bound at once.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	refused interface{ Inc() }
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			_ = c.Close()
			l.refused.Inc()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
