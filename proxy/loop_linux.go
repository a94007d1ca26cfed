//go:build linux

package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// engineDefault is the engine of a Config that names none. See the README's
	// "Local proxy against HAProxy" for the measurements behind the choice.
	engineDefault  = EngineEpoll
	epollSupported = true
)

// The event-loop engine (EngineEpoll) serves connections the way HAProxy does: each
// loop is a goroutine locked to an OS thread of its own that waits in epoll_wait and
// does everything else itself — accept4, a non-blocking connect to the picked
// instance, and the copying both ways — so a connection costs no goroutine, and no
// wake-up of another thread or of the Go runtime's poller. Everything a loop owns
// (its connections, their file descriptors and buffers) is touched by its goroutine
// only; other goroutines talk to it through its command queue and an eventfd.
//
// Sockets are registered edge-triggered: a side is marked readable or writable when
// epoll says so, and stays marked until a read or write finds it no longer is (a short
// read or write, or EAGAIN), so each event costs at most the system calls that move
// bytes.

// loops is the event-loop engine: its loops start at the first listen.
type loops struct {
	p  *Proxy
	n  int
	ls []*loop
}

func newLoops(p *Proxy, n int) engine { return &loops{p: p, n: n} }

func (e *loops) listen(up *upstream) error {
	if e.ls == nil {
		for range e.n {
			lp, err := newLoop(e.p)
			if err != nil {
				e.close()
				return err
			}
			e.ls = append(e.ls, lp)
			e.p.wg.Go(lp.run)
		}
	}
	fd, addr, err := listenFD(up.def.Addr(), e.p.cfg.KeepAlive)
	if err != nil {
		return err
	}
	ll := &loopListener{fd: fd, up: up}
	for i, lp := range e.ls {
		if err := lp.call(cmd{kind: cmdListen, ll: ll}); err != nil {
			for _, lp := range e.ls[:i] {
				_ = lp.call(cmd{kind: cmdUnlisten, ll: ll})
			}
			_ = unix.Close(fd)
			return err
		}
	}
	up.ll, up.listen = ll, addr
	return nil
}

func (e *loops) unlisten(up *upstream) {
	for _, lp := range e.ls {
		_ = lp.call(cmd{kind: cmdUnlisten, ll: up.ll}) // fails only if the loop stopped
	}
	_ = unix.Close(up.ll.fd) // no loop watches it any more: its number cannot be reused under one
}

func (e *loops) close() {
	for _, lp := range e.ls {
		lp.post(cmd{kind: cmdExit})
	}
	e.ls = nil
}

// loopListener is an upstream's listening socket, watched by every loop.
type loopListener struct {
	fd int
	up *upstream
}

// listenFD opens a non-blocking listening socket on addr (an IP and a port), with
// keep-alive set for the connections it accepts to inherit. A wildcard address
// listens on both IPv4 and IPv6, as net.Listen("tcp") does.
func listenFD(addr string, keepAlive time.Duration) (fd int, bound string, err error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, "", err
	}
	ip := ap.Addr().Unmap()
	family := unix.AF_INET
	if ip.Is6() || ip.IsUnspecified() {
		family = unix.AF_INET6
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil && family == unix.AF_INET6 && ip.Is4() { // no IPv6 here: 0.0.0.0 on IPv4
		family = unix.AF_INET
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, "", fmt.Errorf("socket: %w", err)
	}
	fail := func(op string, err error) (int, string, error) {
		_ = unix.Close(fd)
		return -1, "", fmt.Errorf("%s: %w", op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if family == unix.AF_INET6 && ip.IsUnspecified() {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail("setsockopt", err)
		}
	}
	if keepAlive > 0 {
		if err := setKeepAliveFD(fd, keepAlive); err != nil {
			return fail("set keep-alive", err)
		}
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, 4096); err != nil { // the kernel caps it at somaxconn
		return fail("listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		bound = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		bound = net.JoinHostPort(netip.AddrFrom16(a.Addr).String(), strconv.Itoa(a.Port))
	}
	return fd, bound, nil
}

// setKeepAliveFD turns keep-alive on with the first probe after period of silence.
func setKeepAliveFD(fd int, period time.Duration) error {
	secs := int((period + time.Second - 1) / time.Second)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
}

type cmdKind uint8

const (
	cmdListen   cmdKind = iota // watch ll
	cmdUnlisten                // stop watching ll
	cmdKill                    // close c: its instance drained
	cmdResolved                // the address of c's instance (a name) is sa, or err
	cmdExit                    // close everything and end
)

// cmd is a request to a loop from another goroutine.
type cmd struct {
	kind    cmdKind
	ll      *loopListener
	c       *lconn
	attempt uint32
	sa      unix.Sockaddr
	err     error
	done    chan error // answered once done, if not nil
}

var errLoopStopped = errors.New("proxy: event loop stopped")

// errConnectTimeout is a connect that took longer than ConnectTimeout.
var errConnectTimeout = fmt.Errorf("connect timed out: %w", unix.ETIMEDOUT)

const (
	bufSize     = 64 << 10 // a read's size, and that of a direction's unsent bytes
	freeBufs    = 64       // buffers a loop keeps for reuse
	acceptBatch = 16       // accepts per listener event, before others get a turn
	flowTurns   = 64       // reads per direction and event, before others get a turn
	maxEvents   = 256
)

// loop is one event loop. Fields below mu are its goroutine's alone.
type loop struct {
	p          *Proxy
	epfd, evfd int
	tid        atomic.Int32 // the loop's thread, for tests

	mu    sync.Mutex
	cmds  []cmd
	woken bool // evfd has been written since the loop last took cmds
	dead  bool // the loop ended: evfd is closed

	fds     []fdRef // by file descriptor
	conns   map[*lconn]struct{}
	lns     []*loopListener
	dials   []dialDeadline // connects in progress, in order of their deadlines
	dh      int            // dials' head
	paused  []pausedListener
	again   []*lconn // connections that stopped copying to let others run
	scratch []byte
	free    [][]byte
	events  []unix.EpollEvent
	exiting bool
}

// fdRef is what a file descriptor a loop watches belongs to. gen tells a stale event
// (of a descriptor closed and reused in the same batch) from a current one.
type fdRef struct {
	gen  uint32
	ln   *loopListener
	c    *lconn
	side int
}

type dialDeadline struct {
	c       *lconn
	attempt uint32
	at      time.Time
}

// pausedListener is a listener a loop stopped watching after an accept failed (out
// of file descriptors, say) until at.
type pausedListener struct {
	ll *loopListener
	at time.Time
}

func newLoop(p *Proxy) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("proxy: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("proxy: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(evfd)
		return nil, fmt.Errorf("proxy: epoll_ctl: %w", err)
	}
	return &loop{p: p, epfd: epfd, evfd: evfd, conns: make(map[*lconn]struct{}),
		scratch: make([]byte, bufSize), events: make([]unix.EpollEvent, maxEvents)}, nil
}

// post queues c for the loop and wakes it. It reports false if the loop has ended.
func (lp *loop) post(c cmd) bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.dead {
		return false
	}
	lp.cmds = append(lp.cmds, c)
	if !lp.woken {
		lp.woken = true
		var one [8]byte // the eventfd counter's increment, in the machine's order
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(lp.evfd, one[:]) // under mu: the loop closes evfd under it
	}
	return true
}

// call posts c and waits until the loop has done it.
func (lp *loop) call(c cmd) error {
	c.done = make(chan error, 1)
	if !lp.post(c) {
		return errLoopStopped
	}
	return <-c.done
}

// run is the loop's goroutine.
func (lp *loop) run() {
	// Not unlocked: a goroutine that ends locked ends its thread too, so Close
	// leaves no thread behind; except the process's main thread, which the runtime
	// would keep wedged instead: that one goes back to the runtime.
	runtime.LockOSThread()
	tid := unix.Gettid()
	lp.tid.Store(int32(tid))
	defer func() {
		if tid == unix.Getpid() {
			runtime.UnlockOSThread()
		}
	}()
	for !lp.exiting {
		n, err := unix.EpollWait(lp.epfd, lp.events, lp.timeout(time.Now()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			lp.p.log.Error("proxy: epoll_wait failed; the event loop stops", "error", err)
			break
		}
		now := time.Now()
		for _, ev := range lp.events[:max(n, 0)] {
			lp.event(ev, now)
		}
		lp.expire(now)
		if len(lp.again) > 0 {
			again := lp.again
			lp.again = nil
			for _, c := range again {
				c.queued = false
				if c.state == stOpen {
					lp.copy(c)
				}
			}
		}
	}
	lp.shutdown()
}

// timeout is how long epoll_wait may wait: until the first connect deadline or
// paused listener, not at all when connections wait for their turn.
func (lp *loop) timeout(now time.Time) int {
	if len(lp.again) > 0 {
		return 0
	}
	var next time.Time
	for lp.dh < len(lp.dials) && !lp.dials[lp.dh].live() {
		lp.dials[lp.dh] = dialDeadline{}
		lp.dh++
	}
	if lp.dh < len(lp.dials) {
		next = lp.dials[lp.dh].at
	}
	for _, pl := range lp.paused {
		if next.IsZero() || pl.at.Before(next) {
			next = pl.at
		}
	}
	if next.IsZero() {
		return -1
	}
	return int(max((next.Sub(now)+time.Millisecond-1)/time.Millisecond, 0))
}

// live reports whether the connect d times is still in progress.
func (d *dialDeadline) live() bool {
	return (d.c.state == stConnecting || d.c.state == stResolving) && d.c.attempt == d.attempt
}

// expire fails the connects past their deadline and resumes paused listeners.
func (lp *loop) expire(now time.Time) {
	for lp.dh < len(lp.dials) {
		d := lp.dials[lp.dh]
		if d.live() && now.Before(d.at) {
			break
		}
		lp.dials[lp.dh] = dialDeadline{}
		lp.dh++
		if d.live() {
			lp.attemptFailed(d.c, errConnectTimeout, now)
		}
	}
	if lp.dh == len(lp.dials) {
		lp.dials, lp.dh = lp.dials[:0], 0
	} else if lp.dh > 1024 && lp.dh > len(lp.dials)/2 {
		lp.dials = lp.dials[:copy(lp.dials, lp.dials[lp.dh:])]
		lp.dh = 0
	}
	for i := 0; i < len(lp.paused); {
		if pl := lp.paused[i]; !now.Before(pl.at) {
			lp.paused = slices.Delete(lp.paused, i, i+1)
			lp.watchListener(pl.ll)
			continue
		}
		i++
	}
}

func (lp *loop) event(ev unix.EpollEvent, now time.Time) {
	fd := int(ev.Fd)
	if fd == lp.evfd {
		lp.commands(now)
		return
	}
	if fd >= len(lp.fds) || lp.fds[fd].gen != uint32(ev.Pad) {
		return
	}
	r := lp.fds[fd]
	switch {
	case r.ln != nil:
		lp.accept(r.ln, now)
	case r.c != nil:
		lp.ready(r.c, r.side, ev.Events, now)
	}
}

// watch registers fd, edge-triggered, as side of c.
func (lp *loop) watch(fd int, c *lconn, side int) error {
	gen := lp.ref(fd, fdRef{c: c, side: side})
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: int32(gen)}
	if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		lp.fds[fd] = fdRef{gen: gen}
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// ref records what fd belongs to and returns its new generation.
func (lp *loop) ref(fd int, r fdRef) uint32 {
	if fd >= len(lp.fds) {
		n := max(fd+1, 2*len(lp.fds))
		lp.fds = slices.Grow(lp.fds, n-len(lp.fds))[:n]
	}
	r.gen = lp.fds[fd].gen + 1
	lp.fds[fd] = r
	return r.gen
}

// watchListener registers a listener, level-triggered, waking one loop of those
// that watch it per connection (EPOLLEXCLUSIVE).
func (lp *loop) watchListener(ll *loopListener) {
	gen := lp.ref(ll.fd, fdRef{ln: ll})
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(ll.fd), Pad: int32(gen)}
	if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, ll.fd, &ev); err != nil {
		lp.p.log.Error("proxy: cannot watch a listener", "service", ll.up.def.Service, "error", err)
	}
}

func (lp *loop) unwatchListener(ll *loopListener) {
	for i, pl := range lp.paused {
		if pl.ll == ll {
			lp.paused = slices.Delete(lp.paused, i, i+1)
			return // a paused listener is not registered
		}
	}
	_ = unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, ll.fd, nil)
	lp.fds[ll.fd] = fdRef{gen: lp.fds[ll.fd].gen}
}

// commands does what other goroutines asked.
func (lp *loop) commands(now time.Time) {
	var cnt [8]byte
	_, _ = unix.Read(lp.evfd, cnt[:])
	lp.mu.Lock()
	cmds := lp.cmds
	lp.cmds, lp.woken = nil, false
	lp.mu.Unlock()
	for _, c := range cmds {
		var err error
		switch c.kind {
		case cmdListen:
			lp.lns = append(lp.lns, c.ll)
			lp.watchListener(c.ll)
		case cmdUnlisten:
			if i := slices.Index(lp.lns, c.ll); i >= 0 {
				lp.lns = slices.Delete(lp.lns, i, i+1)
				lp.unwatchListener(c.ll)
			}
		case cmdKill:
			if c.c.state == stOpen {
				lp.abort(c.c, 0) // reset the client, as closing the instance's side does
			}
		case cmdResolved:
			if cc := c.c; cc.state == stResolving && cc.attempt == c.attempt {
				cerr := c.err
				if cerr == nil {
					cerr = lp.connect(cc, c.sa, now)
				}
				if cerr != nil {
					lp.attemptFailed(cc, cerr, now)
				} else {
					lp.probe(cc, now)
				}
			}
		case cmdExit:
			lp.exiting = true
		}
		if c.done != nil {
			c.done <- err
		}
	}
}

// shutdown closes everything the loop owns, once it has stopped.
func (lp *loop) shutdown() {
	for c := range lp.conns {
		if c.state == stOpen {
			lp.abort(c, 0)
		} else {
			lp.close(c)
		}
	}
	for _, ll := range lp.lns {
		lp.unwatchListener(ll)
	}
	_ = unix.Close(lp.epfd)
	lp.mu.Lock()
	lp.dead = true
	_ = unix.Close(lp.evfd)
	cmds := lp.cmds
	lp.cmds = nil
	lp.mu.Unlock()
	for _, c := range cmds {
		if c.done != nil {
			c.done <- errLoopStopped
		}
	}
}

// accept takes the listener's waiting connections, a batch at most.
func (lp *loop) accept(ll *loopListener, now time.Time) {
	for range acceptBatch {
		// accept4 without an address: the peer's is not needed.
		fd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(ll.fd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			lp.serve(ll.up, int(fd), now)
			continue
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		}
		// Out of file descriptors and the like: stop watching the listener for a
		// while, or the loop would spin on it.
		delay := 50 * time.Millisecond
		lp.p.log.Error("proxy: accept failed; retrying", "service", ll.up.def.Service, "in", delay, "error", errno)
		_ = unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, ll.fd, nil)
		lp.paused = append(lp.paused, pausedListener{ll: ll, at: now.Add(delay)})
		return
	}
}

type connState uint8

const (
	stResolving  connState = iota + 1 // looking up the instance's name
	stConnecting                      // connecting to the instance
	stOpen                            // forwarding
	stClosed
)

// lconn is one forwarded connection of a loop.
type lconn struct {
	lp      *loop
	up      *upstream
	b       *backend // the instance of the current attempt, or the connected one
	s       [2]side  // 0 the client, 1 the instance
	d       [2]flow  // 0 up (client to instance), 1 down
	state   connState
	attempt uint32 // connects started, so that a stale deadline or resolution is ignored
	tries   int
	tried   []*backend
	tracked bool // in b's connections (b.track)
	queued  bool // in lp.again
}

// side is one socket of a connection and what epoll last said of it.
type side struct {
	fd      int
	in, out bool // readable / writable, until a read or write says otherwise
	hup     bool // the peer closed or failed: read until EOF or the error
}

// flow is one direction of a connection.
type flow struct {
	pend []byte // read but not yet written
	buf  []byte // pend's buffer, while it holds bytes
	eof  bool   // the source sent its FIN
	shut bool   // forwarded to the destination
	n    int64  // bytes written
}

// Close asks the connection's loop to close it (a drained instance's connections,
// by backend.closeAll); it may be called from any goroutine.
func (c *lconn) Close() error {
	c.lp.post(cmd{kind: cmdKill, c: c})
	return nil
}

// serve starts forwarding the accepted connection fd.
func (lp *loop) serve(up *upstream, fd int, now time.Time) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	c := &lconn{lp: lp, up: up, s: [2]side{{fd: fd}, {fd: -1}}}
	lp.conns[c] = struct{}{}
	lp.dial(c, now)
}

// dial connects c to the next instance to try, or closes it when there is none.
func (lp *loop) dial(c *lconn, now time.Time) {
	p := c.up.p
	for c.tries < p.cfg.Attempts {
		c.tries++
		b := c.up.pick(now, c.tried)
		if b == nil {
			break
		}
		b.active.Add(1)
		c.b = b
		c.attempt++
		lp.dials = append(lp.dials, dialDeadline{c: c, attempt: c.attempt, at: now.Add(p.cfg.ConnectTimeout)})
		if !b.ip.IsValid() {
			lp.resolve(c, b)
			return
		}
		err := lp.connect(c, sockaddr(b.ip, b.port, 0), now)
		if err == nil {
			lp.probe(c, now)
			return
		}
		c.attempt++ // its deadline is void
		lp.failed(c, err)
	}
	c.up.noBackend.Inc()
	lp.close(c)
}

// failed counts a failed connect to c.b (up.failed) and forgets it.
func (lp *loop) failed(c *lconn, err error) {
	b := c.b
	b.active.Add(-1)
	c.up.failed(b, err)
	c.tried = append(c.tried, b)
	c.b = nil
}

// attemptFailed ends c's current connect as failed and tries the next instance.
func (lp *loop) attemptFailed(c *lconn, err error, now time.Time) {
	lp.closeSide(c, 1)
	c.attempt++
	lp.failed(c, err)
	lp.dial(c, now)
}

// resolve looks up the name of c's instance b on a goroutine of its own (a blocking
// call the loop must not make) and hands the address back to the loop. Instances
// are mostly registered by IP, which needs none of this.
func (lp *loop) resolve(c *lconn, b *backend) {
	c.state = stResolving
	attempt, p := c.attempt, lp.p
	p.wg.Go(func() {
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ConnectTimeout)
		defer cancel()
		r := cmd{kind: cmdResolved, c: c, attempt: attempt}
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, b.host)
		switch {
		case err != nil:
			r.err = fmt.Errorf("resolve %s: %w", b.host, err)
		case len(addrs) == 0:
			r.err = fmt.Errorf("resolve %s: no address", b.host)
		default:
			ip, _ := netip.AddrFromSlice(addrs[0].IP)
			var zone uint32
			if addrs[0].Zone != "" {
				if ifi, err := net.InterfaceByName(addrs[0].Zone); err == nil {
					zone = uint32(ifi.Index)
				} else if n, err := strconv.Atoi(addrs[0].Zone); err == nil {
					zone = uint32(n)
				}
			}
			r.sa = sockaddr(ip.Unmap(), b.port, zone)
		}
		lp.post(r) // dropped if the loop ended, which closed c
	})
}

func sockaddr(ip netip.Addr, port int, zone uint32) unix.Sockaddr {
	if ip.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
	}
	return &unix.SockaddrInet6{Port: port, ZoneId: zone, Addr: ip.As16()}
}

// connect starts a non-blocking connect of c's instance side to sa; the instance's
// socket becoming writable (or failing) ends it.
func (lp *loop) connect(c *lconn, sa unix.Sockaddr, now time.Time) error {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if ka := lp.p.cfg.KeepAlive; ka > 0 {
		_ = setKeepAliveFD(fd, ka)
	}
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		_ = unix.Close(fd)
		return err // ECONNREFUSED and the like, as the Reporter wants them
	}
	if err := lp.watch(fd, c, 1); err != nil {
		_ = unix.Close(fd)
		return err
	}
	c.s[1] = side{fd: fd}
	c.state = stConnecting
	return nil
}

// probe checks at once whether c's connect is done: to a local instance it often is
// when connect returns, the handshake having run in the kernel meanwhile. A send of
// nothing answers without sending: 0 once connected, EAGAIN while connecting, the
// connect's error if it failed. A 0 saves an epoll_wait before the request is
// forwarded; an EAGAIN costs a system call.
func (lp *loop) probe(c *lconn, now time.Time) {
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(c.s[1].fd), 0, 0, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	switch errno {
	case 0:
		c.s[1].out = true
		lp.opened(c, now)
	case unix.EAGAIN, unix.EINTR: // still connecting: the writable event will say when done
	default:
		lp.attemptFailed(c, errno, now)
	}
}

// ready handles an event of c's side i.
func (lp *loop) ready(c *lconn, i int, ev uint32, now time.Time) {
	s := &c.s[i]
	const hup = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	if ev&(unix.EPOLLIN|hup) != 0 {
		s.in = true
	}
	if ev&hup != 0 {
		s.hup = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.out = true
	}
	switch c.state {
	case stConnecting:
		if i != 1 {
			return
		}
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			soerr, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && soerr == 0 {
				soerr = int(unix.ECONNRESET)
			}
			lp.attemptFailed(c, unix.Errno(soerr), now)
			return
		}
		if ev&unix.EPOLLOUT != 0 {
			lp.opened(c, now)
		}
	case stOpen:
		lp.copy(c)
	}
}

// opened starts forwarding once c's instance accepted the connect.
func (lp *loop) opened(c *lconn, now time.Time) {
	b, p := c.b, lp.p
	c.state = stOpen
	b.fails.Store(0)
	if r := p.cfg.Reporter; r != nil && b.reportDue(now) {
		r.Report(b.addr, true)
	}
	if !b.track(c) { // its drain already closed the instance's connections
		lp.close(c)
		return
	}
	c.tracked = true
	m := b.metrics()
	m.conns.Inc()
	m.active.Inc()
	// The client's socket joins the loop only now: there was nothing to do with it
	// before. Most clients have sent their request already: read it at once rather
	// than after another epoll_wait (EAGAIN if not, which costs less than the wait).
	if err := lp.watch(c.s[0].fd, c, 0); err != nil {
		lp.abort(c, -1)
		return
	}
	c.s[0].in, c.s[0].out = true, true
	lp.copy(c)
}

// copy moves what it can both ways and closes c once both directions ended.
func (lp *loop) copy(c *lconn) {
	for i := range c.d {
		if !lp.flow(c, i) {
			return // aborted
		}
	}
	if c.d[0].shut && c.d[1].shut {
		lp.close(c)
	}
}

// flow moves direction i's bytes while its source has some and its destination
// takes them, then forwards the source's FIN. Bytes are read into the loop's scratch
// buffer and written from it at once; only what the destination does not take is
// copied aside into a buffer of the connection's own. It returns false when it
// aborted c (a read or write failed: the other side is reset).
func (lp *loop) flow(c *lconn, i int) bool {
	src, dst, d := &c.s[i], &c.s[1-i], &c.d[i]
	for turn := 0; ; turn++ {
		if len(d.pend) > 0 {
			if !dst.out {
				return true
			}
			w, err := unix.Write(dst.fd, d.pend)
			if w > 0 {
				d.n += int64(w)
				d.pend = d.pend[w:]
			}
			switch {
			case err == nil && len(d.pend) > 0, errors.Is(err, unix.EAGAIN):
				dst.out = false
				return true
			case errors.Is(err, unix.EINTR):
				continue
			case err != nil:
				lp.abort(c, i) // the destination failed: reset the source
				return false
			}
			lp.putBuf(d.buf)
			d.buf, d.pend = nil, nil
		}
		if d.eof {
			if !d.shut {
				d.shut = true
				_ = unix.Shutdown(dst.fd, unix.SHUT_WR)
			}
			return true
		}
		if !src.in {
			return true
		}
		if turn >= flowTurns {
			if !c.queued {
				c.queued = true
				lp.again = append(lp.again, c)
			}
			return true
		}
		r, err := unix.Read(src.fd, lp.scratch)
		switch {
		case errors.Is(err, unix.EAGAIN):
			src.in = false
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			lp.abort(c, 1-i) // the source failed: reset the destination
			return false
		case r == 0:
			d.eof = true
			continue
		}
		if r < len(lp.scratch) && !src.hup {
			src.in = false // a short read emptied the socket: the next byte is an event
		}
		data := lp.scratch[:r]
		if dst.out {
			w, err := unix.Write(dst.fd, data)
			if w > 0 {
				d.n += int64(w)
				data = data[w:]
			}
			switch {
			case err == nil && len(data) > 0, errors.Is(err, unix.EAGAIN):
				dst.out = false
			case err != nil && !errors.Is(err, unix.EINTR):
				lp.abort(c, i)
				return false
			}
		}
		if len(data) > 0 {
			d.buf = lp.getBuf()
			d.pend = append(d.buf[:0], data...)
		}
	}
}

func (lp *loop) getBuf() []byte {
	if n := len(lp.free); n > 0 {
		b := lp.free[n-1]
		lp.free = lp.free[:n-1]
		return b
	}
	return make([]byte, bufSize)
}

func (lp *loop) putBuf(b []byte) {
	if b != nil && len(lp.free) < freeBufs {
		lp.free = append(lp.free, b)
	}
}

// abort closes c after a failure, resetting side peer (both when peer is -1): an
// abort is forwarded as one, and the proxy's end keeps no TIME_WAIT.
func (lp *loop) abort(c *lconn, peer int) {
	for i := range c.s {
		if (peer == i || peer < 0) && c.s[i].fd >= 0 {
			_ = unix.SetsockoptLinger(c.s[i].fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
	}
	lp.close(c)
}

// closeSide closes c's side i, if open.
func (lp *loop) closeSide(c *lconn, i int) {
	s := &c.s[i]
	if s.fd < 0 {
		return
	}
	if s.fd < len(lp.fds) {
		lp.fds[s.fd] = fdRef{gen: lp.fds[s.fd].gen} // closing unregisters it from epoll
	}
	_ = unix.Close(s.fd)
	*s = side{fd: -1}
}

// close closes both sides of c and settles its accounts.
func (lp *loop) close(c *lconn) {
	if c.state == stClosed {
		return
	}
	lp.closeSide(c, 0)
	lp.closeSide(c, 1)
	for i := range c.d {
		lp.putBuf(c.d[i].buf)
		c.d[i].buf, c.d[i].pend = nil, nil
	}
	c.state = stClosed
	delete(lp.conns, c)
	if b := c.b; b != nil {
		if c.tracked {
			b.untrack(c)
			m := b.metrics()
			m.active.Dec()
			m.bytesUp.Add(float64(c.d[0].n))
			m.bytesDown.Add(float64(c.d[1].n))
		}
		b.active.Add(-1)
	}
}
