//go:build linux

package proxy

// The connections of the event loops (loop_linux.go): from accept to close.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

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
