//go:build linux

package dnsserver

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgBatchSize is how many datagrams a UDP thread reads and answers per system call.
const mmsgBatchSize = 32

// mmsgQuerySize is the largest UDP query a thread reads whole; a longer one is
// answered FORMERR (queries are a name and an OPT record: a few hundred bytes).
const mmsgQuerySize = 4096

// slotSize is the room a queued query has in its slot; a longer one gets its own
// buffer.
const slotSize = 512

// threadsUDP reports whether UDP is served by threads blocked in recvmmsg (Linux,
// unless Config.NetpollUDP).
func (s *Server) threadsUDP() bool { return !s.cfg.NetpollUDP }

// listenThreads opens the UDP sockets the threads read: UDPReaders blocking
// SO_REUSEPORT sockets on one port, the netpoller never told of them.
func (s *Server) listenThreads(addr netip.AddrPort) (netip.AddrPort, error) {
	s.fds = nil
	for i := range s.cfg.UDPReaders {
		fd, bound, err := blockingUDP(addr, 4<<20) // room for bursts; capped by net.core.rmem_max
		if err != nil {
			s.closeFDs()
			return netip.AddrPort{}, fmt.Errorf("dnsserver: listen udp %s (socket %d): %w", addr, i+1, err)
		}
		addr = bound
		s.fds = append(s.fds, fd)
	}
	return addr, nil
}

// startThreads starts Workers threads per socket.
func (s *Server) startThreads() {
	perThread := max(2*mmsgBatchSize, s.cfg.MaxQueue/(len(s.fds)*s.cfg.Workers))
	for _, fd := range s.fds {
		for range s.cfg.Workers {
			t := &udpThread{s: s, fd: fd, sc: newScratch(),
				in:  newMmsgBatch(mmsgBatchSize, mmsgQuerySize, oobSize),
				out: newMmsgBatch(mmsgBatchSize, s.cfg.MaxUDPSize, 0),
				q:   slotRing{size: perThread}}
			s.wg.Go(t.run)
		}
	}
}

// stopThreads wakes the threads blocked in recvmmsg: shutdown(2) on a UDP socket
// (ENOTCONN, but the kernel marks it shut and wakes its readers, whose recvmmsg then
// returns at once), after s.stopping is set so they return.
func (s *Server) stopThreads() {
	for _, fd := range s.fds {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	}
}

// closeFDs closes the threads' sockets, once no thread or forward uses them.
func (s *Server) closeFDs() {
	for _, fd := range s.fds {
		_ = unix.Close(fd)
	}
	s.fds = nil
}

// A udpThread serves one socket on an OS thread of its own: it blocks in recvmmsg
// (the kernel wakes it when a datagram arrives, with no netpoller and no goroutine
// hand-off), answers what it read inline and writes the answers with one sendmmsg.
// When a full batch shows a backlog in the socket it drains the socket into its
// own bounded queue, answers newest first past LIFOAbove and sheds the queries older
// than MaxQueueDelay, as the workers do with the netpoller design (where a late
// query under the LIFO threshold is still answered: here whatever is queued came
// behind a backlog). It owns all its
// buffers: nothing is shared with other threads but the server's cache.
type udpThread struct {
	s   *Server
	fd  int
	sc  *scratch
	in  *mmsgBatch
	out *mmsgBatch
	q   slotRing
	// pending are the answers in out waiting for sendmmsg, with what metrics need.
	pending []answered
	// overload: the queue was taken newest first since it was last empty.
	overload bool
}

// answered is what metrics.observe needs of an answer once it is written.
type answered struct {
	qtype uint16
	rcode int
	at    time.Time
	// overload: the query was taken from the queue newest first, so flushFresh
	// holds it to OverloadQueueDelay.
	overload bool
}

func (t *udpThread) run() {
	// The goroutine never unlocks: when it returns, its thread exits with it.
	runtime.LockOSThread()
	s := t.s
	for {
		flags := unix.MSG_WAITFORONE // block for the first, take what else waits
		if t.q.n > 0 {
			flags = unix.MSG_DONTWAIT
		}
		n, err := recvmmsg(t.fd, t.in, flags)
		if s.stopping.Load() {
			return
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			s.cfg.Logger.Debug("dns udp read", "err", err)
		}
		now := time.Now()
		if t.q.n == 0 && n < len(t.in.hdrs) {
			// No backlog: answer in arrival order, straight from the batch.
			for i := range n {
				h := &t.in.hdrs[i]
				t.answer(t.in.bufs[i][:h.n], h.hdr.Flags&unix.MSG_TRUNC != 0, &t.in.names[i], h.hdr.Namelen,
					arrivalAt(t.in.oobs[i][:h.hdr.Controllen], now))
			}
			t.flush()
			continue
		}
		// A backlog: drain the socket into the queue, then answer one batch from it.
		for {
			t.enqueue(n, now)
			if n < len(t.in.hdrs) {
				break
			}
			if n, err = recvmmsg(t.fd, t.in, unix.MSG_DONTWAIT); err != nil || s.stopping.Load() {
				break
			}
		}
		t.answerQueued()
	}
}

// answerQueued answers a batch from the queue and writes it. Whatever waits in the
// queue came behind a backlog (a full batch): past MaxQueueDelay it is shed, under
// the LIFO threshold too, or the oldest queries, which newest-first leaves at the
// bottom, would be answered late whenever the thread catches up. Once the queue was
// taken newest first (overload), everything in it is held to OverloadQueueDelay until
// it empties: the LIFOAbove queries left at its bottom when it shrinks are its
// oldest, and answering them up to MaxQueueDelay late was the tail of the answered
// latency under overload (2 % of the answers past 2.5 ms in the server, README).
func (t *udpThread) answerQueued() {
	s := t.s
	for len(t.pending) < len(t.out.hdrs) && t.q.n > 0 {
		sl, lifo := t.q.pop(s.cfg.LIFOAbove)
		t.overload = t.overload || lifo
		if s.shedTooOld(sl.at, time.Now(), t.overload) {
			continue
		}
		k := len(t.pending)
		t.answer(sl.data(), sl.trunc, &sl.name, sl.namelen, sl.at)
		if len(t.pending) > k {
			t.pending[k].overload = t.overload
		}
	}
	if t.q.n == 0 {
		t.overload = false
	}
	t.flushFresh()
}

// arrivalAt is the kernel's receive time of a datagram, or now.
func arrivalAt(oob []byte, now time.Time) time.Time {
	if ns := kernelTime(oob); ns > 0 {
		if at := time.Unix(0, ns); at.Before(now) {
			return at
		}
	}
	return now
}

// enqueue moves the batch's n datagrams into the queue; a full queue drops its
// oldest.
func (t *udpThread) enqueue(n int, now time.Time) {
	for i := range n {
		h := &t.in.hdrs[i]
		if t.q.push(t.in.bufs[i][:h.n], h.hdr.Flags&unix.MSG_TRUNC != 0, &t.in.names[i], h.hdr.Namelen,
			arrivalAt(t.in.oobs[i][:h.hdr.Controllen], now)) {
			t.s.metrics.shed.WithLabelValues("queue_full").Inc()
		}
	}
}

// answer answers one query into the next slot of out (or, forwarded, later).
func (t *udpThread) answer(data []byte, trunc bool, name *unix.RawSockaddrInet6, namelen uint32, at time.Time) {
	if trunc {
		data = data[:min(len(data), 12)] // too long to read: FORMERR from its header
	}
	b, qtype, rcode, fwd := t.s.answerUDP(data, t.sc, at)
	if fwd != nil {
		if to, ok := sockaddrPort(name); ok {
			t.s.forwardUDP(fwd, at, func(b []byte) { t.s.sendTo(t.fd, b, to) })
		}
		return
	}
	if b == nil {
		return
	}
	k := len(t.pending)
	slot := t.out.bufs[k][:copy(t.out.bufs[k], b)]
	t.out.iovs[k].SetLen(len(slot))
	t.out.names[k] = *name
	h := &t.out.hdrs[k].hdr
	h.Namelen = namelen
	t.pending = append(t.pending, answered{qtype: qtype, rcode: rcode, at: at})
}

// flush writes the pending answers with one sendmmsg and counts them.
func (t *udpThread) flush() {
	if len(t.pending) == 0 {
		return
	}
	sendmmsg(t.fd, t.out.hdrs[:len(t.pending)])
	for _, a := range t.pending {
		t.s.metrics.observe(a.qtype, a.rcode, a.at)
	}
	t.pending = t.pending[:0]
}

// flushFresh is flush for answers from the queue (behind a backlog): an answer whose query has aged past
// MaxQueueDelay (OverloadQueueDelay if taken newest first) while its batch was answered (the thread was preempted between
// reading and writing: under overload it always has work, so the scheduler takes the
// CPU from it mid-batch) is shed, too_old, as it would have been before it was
// answered.
func (t *udpThread) flushFresh() {
	now := time.Now()
	k := 0
	for i, a := range t.pending {
		if t.s.shedTooOld(a.at, now, a.overload) {
			continue
		}
		if k != i {
			t.out.hdrs[k], t.out.iovs[k], t.out.names[k] = t.out.hdrs[i], t.out.iovs[i], t.out.names[i]
			t.out.bufs[k], t.out.bufs[i] = t.out.bufs[i], t.out.bufs[k]
			t.out.iovs[k].Base = &t.out.bufs[k][0]
			t.out.iovs[i].Base = &t.out.bufs[i][0]
			t.out.hdrs[k].hdr.Name = (*byte)(unsafe.Pointer(&t.out.names[k]))
			t.out.hdrs[k].hdr.Iov = &t.out.iovs[k]
			t.pending[k] = a
		}
		k++
	}
	t.pending = t.pending[:k]
	t.flush()
}

// sendTo writes one answer from another goroutine (a forwarded query's); the socket
// stays open until every forward has returned (Close).
func (s *Server) sendTo(fd int, b []byte, to netip.AddrPort) {
	var sa unix.Sockaddr
	if to.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(to.Port()), Addr: to.Addr().As16()}
	}
	if err := unix.Sendto(fd, b, unix.MSG_DONTWAIT, sa); err != nil {
		s.cfg.Logger.Debug("dns udp write", "err", err)
	}
}

// slot is one queued query: its bytes, whom to answer, when the kernel got it.
type slot struct {
	buf     []byte // slotSize bytes, or the query's own when longer
	n       int
	trunc   bool
	name    unix.RawSockaddrInet6
	namelen uint32
	at      time.Time
}

func (sl *slot) data() []byte { return sl.buf[:sl.n] }

// slotRing is a thread's bounded queue of queries, first in first out up to a
// threshold and newest first beyond (adaptive LIFO), as queue is for the workers.
// Only its thread touches it: no lock. Its slots are allocated on first use, so a
// thread that never sees a backlog holds none.
type slotRing struct {
	size    int
	slots   []slot
	head, n int
}

// push copies a query in; it reports whether the oldest was dropped to make room.
func (r *slotRing) push(data []byte, trunc bool, name *unix.RawSockaddrInet6, namelen uint32, at time.Time) (dropped bool) {
	if r.slots == nil {
		r.slots = make([]slot, r.size)
		mem := make([]byte, r.size*slotSize)
		for i := range r.slots {
			r.slots[i].buf = mem[i*slotSize : (i+1)*slotSize : (i+1)*slotSize]
		}
	}
	if r.n == len(r.slots) {
		r.head = (r.head + 1) % len(r.slots)
		r.n--
		dropped = true
	}
	sl := &r.slots[(r.head+r.n)%len(r.slots)]
	if len(data) > cap(sl.buf) {
		sl.buf = make([]byte, len(data)) // rare: kept for the slot's next use
	}
	sl.n = copy(sl.buf[:cap(sl.buf)], data)
	sl.trunc, sl.name, sl.namelen, sl.at = trunc, *name, namelen, at
	r.n++
	return dropped
}

// pop takes the oldest query, or the newest when more than lifoAbove wait (backlog).
// The slot stays valid until the next push.
func (r *slotRing) pop(lifoAbove int) (sl *slot, backlog bool) {
	backlog = r.n > lifoAbove
	if backlog {
		sl = &r.slots[(r.head+r.n-1)%len(r.slots)]
	} else {
		sl = &r.slots[r.head]
		r.head = (r.head + 1) % len(r.slots)
	}
	r.n--
	return sl, backlog
}
