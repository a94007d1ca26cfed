//go:build linux

package dnsserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// threadsInRecvmmsg counts this process's threads blocked in recvmmsg(2), from
// /proc/self/task/*/syscall (the first field is the system call's number).
func threadsInRecvmmsg(t *testing.T) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/syscall")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	want := fmt.Sprint(unix.SYS_RECVMMSG)
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited meanwhile
		}
		if f := strings.Fields(string(b)); len(f) > 0 && f[0] == want {
			n++
		}
	}
	return n
}

// TestThreadsShutdown: with the UDP threads, the server answers, has
// UDPReaders × Workers threads blocked in recvmmsg while idle, and Close leaves none
// of them, no goroutine and no open socket behind.
func TestThreadsShutdown(t *testing.T) {
	testkit.NoLeaks(t)
	if n := threadsInRecvmmsg(t); n != 0 {
		t.Fatalf("%d threads in recvmmsg before the server started", n)
	}
	cat, _ := catalogtest.New(t, catalog.Config{})
	srv, err := New(Config{Addr: "127.0.0.1:0", Catalog: cat, UDPReaders: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	fds := append([]int(nil), srv.fds...)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("nosuch.service.consul.", dns.TypeA)
	r, _, err := c.Exchange(m, srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeNameError {
		t.Errorf("rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	testkit.Poll(t, 5*time.Second, time.Millisecond, "4 threads in recvmmsg", func() error {
		if n := threadsInRecvmmsg(t); n != 4 {
			return fmt.Errorf("%d threads in recvmmsg", n)
		}
		return nil
	})
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the threads: none is left in recvmmsg (a locked goroutine's
	// thread exits with it), and the sockets are closed.
	if n := threadsInRecvmmsg(t); n != 0 {
		t.Errorf("%d threads still in recvmmsg after Close", n)
	}
	for _, fd := range fds {
		if _, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil {
			// The number may have been reused by another test's socket: only fail
			// when it is still a socket on our port.
			if sa, err := unix.Getsockname(fd); err == nil {
				if in4, ok := sa.(*unix.SockaddrInet4); ok && in4.Port == int(srv.Addr().Port()) {
					t.Errorf("fd %d still open on port %d after Close", fd, in4.Port)
				}
			}
		}
	}
	if _, _, err := c.Exchange(m, srv.Addr().String()); err == nil {
		t.Error("a query was answered after Close")
	}
}

// newTestThread is a UDP thread on its own blocking socket, not started, with a ring
// of ring slots; its server is srv (whose own threads read other sockets).
func newTestThread(t *testing.T, srv *Server, ring int) (*udpThread, netip.AddrPort) {
	t.Helper()
	fd, addr, err := blockingUDP(netip.MustParseAddrPort("127.0.0.1:0"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return &udpThread{s: srv, fd: fd, sc: newScratch(),
		in:  newMmsgBatch(mmsgBatchSize, mmsgQuerySize, oobSize),
		out: newMmsgBatch(mmsgBatchSize, srv.cfg.MaxUDPSize, 0),
		q:   slotRing{size: ring}}, addr
}

// runThread runs th until the test ends, then stops it as Close does.
func runThread(t *testing.T, th *udpThread) {
	t.Helper()
	done := make(chan struct{})
	go func() { th.run(); close(done) }()
	t.Cleanup(func() {
		th.s.stopping.Store(true)
		_ = unix.Shutdown(th.fd, unix.SHUT_RDWR)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("the thread did not return after shutdown(2)")
		}
	})
}

// srvQuery is SRV of web.service.consul with id.
func srvQuery(t *testing.T, id uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAnswers reads answers from c until want arrived or 5 s passed; it returns
// their IDs and fails on any answer that is not five SRV records.
func readAnswers(t *testing.T, c *net.UDPConn, want int) map[uint16]bool {
	t.Helper()
	got := map[uint16]bool{}
	buf := make([]byte, dns.MaxMsgSize)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d answers: %v", len(got), want, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if len(m.Answer) != 5 || m.Rcode != dns.RcodeSuccess {
			t.Fatalf("answer %d: %d records, rcode %s", m.Id, len(m.Answer), dns.RcodeToString[m.Rcode])
		}
		got[m.Id] = true
	}
	return got
}

// TestThreadAnswersBatches: queries from several clients that wait in the socket
// together are answered in batches, each answer to its own client with its own ID.
func TestThreadAnswersBatches(t *testing.T) {
	srv := perfServer(t)
	srv.cfg.MaxQueueDelay = time.Hour // nothing is old here: every query is answered
	srv.cfg.OverloadQueueDelay = time.Hour
	th, addr := newTestThread(t, srv, 256)
	const perClient = 50 // 150 in all: several full batches, through the queue
	var clients []*net.UDPConn
	for c := range 3 {
		cl := sendConn(t)
		clients = append(clients, cl)
		for i := range perClient {
			if _, err := cl.WriteToUDPAddrPort(srvQuery(t, uint16(c*1000+i)), addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	runThread(t, th)
	for c, cl := range clients {
		got := readAnswers(t, cl, perClient)
		for i := range perClient {
			if !got[uint16(c*1000+i)] {
				t.Errorf("client %d: no answer to query %d", c, c*1000+i)
			}
		}
	}
	if n := shedTotal(srv); n != 0 {
		t.Errorf("shed %v, want 0", n)
	}
}

// TestThreadSheds: a backlog in the socket is drained into the thread's queue (a
// full queue drops its oldest: queue_full), answered newest first, and the queries
// older than MaxQueueDelay in it are shed (too_old), under the LIFO threshold too:
// whatever is queued came behind a backlog. Fresh ones are answered.
func TestThreadSheds(t *testing.T) {
	srv := perfServer(t)
	srv.cfg.MaxQueueDelay = time.Nanosecond // everything queued is old
	srv.cfg.OverloadQueueDelay = time.Nanosecond
	srv.cfg.LIFOAbove = 1
	const ring, sent = 64, 100
	th, addr := newTestThread(t, srv, ring)
	cl := sendConn(t)
	for i := range sent {
		if _, err := cl.WriteToUDPAddrPort(srvQuery(t, uint16(i+1)), addr); err != nil {
			t.Fatal(err)
		}
	}
	runThread(t, th) // all 100 wait in the socket: a backlog from the first read
	// The ring kept the newest 64 and shed them all as too old.
	testkit.Poll(t, 5*time.Second, time.Millisecond, "the shed counts", func() error {
		full := testutil.ToFloat64(srv.metrics.shed.WithLabelValues("queue_full"))
		old := testutil.ToFloat64(srv.metrics.shed.WithLabelValues("too_old"))
		if full != sent-ring || old != ring {
			return fmt.Errorf("queue_full %v (want %d), too_old %v (want %d)", full, sent-ring, old, ring)
		}
		return nil
	})
	_ = cl.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := cl.Read(make([]byte, 512)); err == nil {
		t.Errorf("a shed query was answered (%d bytes)", n)
	}
	// Without a backlog (fewer than a batch waiting) a query is answered inline,
	// however old the 1 ns limit makes it.
	if _, err := cl.WriteToUDPAddrPort(srvQuery(t, 500), addr); err != nil {
		t.Fatal(err)
	}
	if got := readAnswers(t, cl, 1); !got[500] {
		t.Errorf("answers %v, want query 500", got)
	}
}

// TestThreadAllocs bounds the thread path's allocations per answer as
// TestServeUDPAllocs does the netpoller path's: reading, batching and writing add
// none.
func TestThreadAllocs(t *testing.T) {
	srv := perfServer(t)
	th, _ := newTestThread(t, srv, 64)
	sink := sendConn(t)
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	var name unix.RawSockaddrInet6
	in4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&name))
	in4.Family = unix.AF_INET
	in4.Addr = to.Addr().As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in4.Port))[:], to.Port())
	q := srvQuery(t, 7)
	serve := func() {
		th.answer(q, false, &name, unix.SizeofSockaddrInet4, time.Now())
		th.flush()
	}
	serve()
	if raceEnabled {
		t.Log("not counting allocations: the race detector adds its own")
	} else if got := testing.AllocsPerRun(200, serve); got > maxServeAllocs {
		t.Errorf("a UDP SRV answer on a thread makes %.1f allocations, want at most %d", got, maxServeAllocs)
	}
	got := readAnswers(t, sink, 1)
	if !got[7] {
		t.Errorf("answers %v, want id 7", got)
	}
}

// TestNetpollUDP: the netpoller design still serves, when asked for.
func TestNetpollUDP(t *testing.T) {
	f := newFixture(t, Config{NetpollUDP: true})
	f.standard()
	if len(f.srv.fds) != 0 || len(f.srv.udp) != 2 {
		t.Fatalf("%d thread sockets, %d netpoller sockets; want 0 and 2", len(f.srv.fds), len(f.srv.udp))
	}
	r := f.query("udp", "web.service.consul.", dns.TypeSRV, 0)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
}

// TestThreadFlushShedsAged: behind a backlog, an answer whose query aged past
// MaxQueueDelay while its batch was answered is shed at the write; the others go out
// to their own clients.
func TestThreadFlushShedsAged(t *testing.T) {
	srv := perfServer(t)
	srv.cfg.MaxQueueDelay = time.Minute // however slow the race detector makes the answers
	th, _ := newTestThread(t, srv, 64)
	var sinks []*net.UDPConn
	now := time.Now()
	for i, at := range []time.Time{now, now.Add(-time.Hour), now} {
		sink := sendConn(t)
		sinks = append(sinks, sink)
		to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
		var name unix.RawSockaddrInet6
		in4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&name))
		in4.Family, in4.Addr = unix.AF_INET, to.Addr().As4()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in4.Port))[:], to.Port())
		th.answer(srvQuery(t, uint16(i+1)), false, &name, unix.SizeofSockaddrInet4, at)
	}
	th.flushFresh()
	for i, sink := range []*net.UDPConn{sinks[0], sinks[2]} {
		id := uint16(2*i + 1)
		if got := readAnswers(t, sink, 1); !got[id] {
			t.Errorf("client of query %d got %v", id, got)
		}
	}
	if n := testutil.ToFloat64(srv.metrics.shed.WithLabelValues("too_old")); n != 1 {
		t.Errorf("too_old %v, want 1", n)
	}
	_ = sinks[1].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := sinks[1].Read(make([]byte, 512)); err == nil {
		t.Errorf("the aged query's client got %d bytes", n)
	}
}

// TestThreadOverloadSheds: a query taken from the queue newest first (more than
// LIFOAbove wait: overload) is held to OverloadQueueDelay, and so is the rest of the
// queue, taken in order, until it empties; a queue that never grew past LIFOAbove is
// held to MaxQueueDelay; and an answer to a query taken newest first that aged past
// OverloadQueueDelay before its write is shed at the write.
func TestThreadOverloadSheds(t *testing.T) {
	srv := perfServer(t)
	srv.cfg.MaxQueueDelay, srv.cfg.OverloadQueueDelay = time.Hour, time.Minute
	srv.cfg.LIFOAbove = 3
	th, _ := newTestThread(t, srv, 64)
	sink := sendConn(t)
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	var name unix.RawSockaddrInet6
	in4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&name))
	in4.Family, in4.Addr = unix.AF_INET, to.Addr().As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in4.Port))[:], to.Port())
	// Six queries 10 minutes old: between the two limits. The first three popped
	// find more than 3 waiting (newest first: shed); the last three, taken in order
	// from a queue that was in overload, are shed too.
	old := time.Now().Add(-10 * time.Minute)
	for i := range 6 {
		th.q.push(srvQuery(t, uint16(i+1)), false, &name, unix.SizeofSockaddrInet4, old)
	}
	th.answerQueued()
	if n := testutil.ToFloat64(srv.metrics.shed.WithLabelValues("too_old")); n != 6 {
		t.Errorf("too_old %v, want 6", n)
	}
	// The queue emptied: three as old, never more than LIFOAbove, are answered.
	for i := range 3 {
		th.q.push(srvQuery(t, uint16(i+1)), false, &name, unix.SizeofSockaddrInet4, old)
	}
	th.answerQueued()
	got := readAnswers(t, sink, 3)
	for _, id := range []uint16{1, 2, 3} {
		if !got[id] {
			t.Errorf("query %d, taken in order from a short queue, not answered: got %v", id, got)
		}
	}
	if n := testutil.ToFloat64(srv.metrics.shed.WithLabelValues("too_old")); n != 6 {
		t.Errorf("too_old %v, want still 6", n)
	}
	// At the write: two answers to queries 10 minutes old, one taken newest first.
	for i, overload := range []bool{false, true} {
		th.answer(srvQuery(t, uint16(100+i)), false, &name, unix.SizeofSockaddrInet4, old)
		th.pending[len(th.pending)-1].overload = overload
	}
	th.flushFresh()
	if got := readAnswers(t, sink, 1); !got[100] || len(got) != 1 {
		t.Errorf("answers %v, want query 100 only", got)
	}
	if n := testutil.ToFloat64(srv.metrics.shed.WithLabelValues("too_old")); n != 7 {
		t.Errorf("too_old %v, want 7", n)
	}
	_ = sink.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := sink.Read(make([]byte, 512)); err == nil {
		t.Errorf("a shed query was answered (%d bytes)", n)
	}
}

// TestOverloadQueueDelayDefault: OverloadQueueDelay defaults to half MaxQueueDelay
// and is never more than it.
func TestOverloadQueueDelayDefault(t *testing.T) {
	for _, tc := range []struct {
		name            string
		max, over, want time.Duration
	}{
		{"defaults", 0, 0, DefaultMaxQueueDelay / 2},
		{"half of max", 10 * time.Millisecond, 0, 5 * time.Millisecond},
		{"given", 0, time.Millisecond, time.Millisecond},
		{"capped at max", 4 * time.Millisecond, time.Second, 4 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat, _ := catalogtest.New(t, catalog.Config{})
			c, err := Config{Addr: "127.0.0.1:0", Catalog: cat, MaxQueueDelay: tc.max, OverloadQueueDelay: tc.over}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if c.OverloadQueueDelay != tc.want {
				t.Errorf("OverloadQueueDelay %v, want %v", c.OverloadQueueDelay, tc.want)
			}
		})
	}
}
