//go:build linux

package proxy

import (
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
