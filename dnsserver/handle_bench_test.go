package dnsserver

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// udpQuery returns what BenchmarkServeUDP and TestServeUDPAllocs send: SRV of
// web.service.consul, without EDNS0 as dnsperf sends it, and a socket that takes the
// answers.
func udpQuery(tb testing.TB) (q []byte, sink *net.UDPConn) {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	q, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	sink, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sink.Close() })
	return q, sink
}

// BenchmarkServeUDP measures one UDP query's work in the server, from the packet's
// bytes to the answer written (to a socket nobody reads): SRV of web.service.consul,
// 5 of 100 instances.
func BenchmarkServeUDP(b *testing.B) {
	srv := perfServer(b)
	q, sink := udpQuery(b)
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	conn := sendConn(b)
	sc := newScratch()
	buf := make([]byte, dns.MaxMsgSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		n := copy(buf, q)
		srv.serveUDP(packet{buf: &buf, n: n, from: to, conn: conn}, sc)
	}
}

// maxServeAllocs bounds a UDP SRV answer's allocations: none, since the fast path
// (fastpath.go) answers it from bytes packed when the entry was built. It was 9 with
// miekg/dns's messages (the general path: BenchmarkAnswerUDP), 23 before packMsg.
const maxServeAllocs = 0

// TestServeUDPAllocs keeps the UDP hot path's allocations bounded: each one is
// garbage the collector must chase at 40,000 queries a second on two cores.
func TestServeUDPAllocs(t *testing.T) {
	srv := perfServer(t)
	q, sink := udpQuery(t)
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	conn := sendConn(t)
	sc := newScratch()
	buf := make([]byte, dns.MaxMsgSize)
	serve := func() {
		n := copy(buf, q)
		srv.serveUDP(packet{buf: &buf, n: n, from: to, conn: conn}, sc)
	}
	serve() // the entry is built and cached on the first query
	if raceEnabled {
		t.Log("not counting allocations: the race detector adds its own")
	} else if got := testing.AllocsPerRun(200, serve); got > maxServeAllocs {
		t.Errorf("a UDP SRV answer makes %.1f allocations, want at most %d", got, maxServeAllocs)
	}
	// The answers did arrive, and are whole SRV answers of five instances.
	ans := make([]byte, dns.MaxMsgSize)
	n, err := sink.Read(ans)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(ans[:n]); err != nil {
		t.Fatal(err)
	}
	if len(m.Answer) != 5 || len(m.Extra) != 5 || m.Truncated || !bytes.Equal(ans[:2], q[:2]) {
		t.Errorf("answer: %d SRV, %d additional, TC %v, id %x (query %x)", len(m.Answer), len(m.Extra), m.Truncated, ans[:2], q[:2])
	}
}

// sendConn is a UDP socket serveUDP writes answers from (the server's own, with
// threads, are not net.UDPConns).
func sendConn(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// BenchmarkAnswerUDP measures making one UDP SRV answer (5 of 100 instances), without
// the write: by the fast path (bytes packed when the entry was built) and by the
// general one (miekg/dns's Unpack, handle, pack), which answered every query before.
func BenchmarkAnswerUDP(b *testing.B) {
	srv := perfServer(b)
	q, _ := udpQuery(b)
	for _, path := range []struct {
		name   string
		answer func(sc *scratch) []byte
	}{
		{"fast", func(sc *scratch) []byte { w, _, _ := srv.answerFast(q, sc); return w }},
		{"general", func(sc *scratch) []byte { w, _, _, _ := srv.answerGeneral(q, sc, time.Now()); return w }},
	} {
		b.Run(path.name, func(b *testing.B) {
			sc := newScratch()
			if path.answer(sc) == nil {
				b.Fatal("no answer")
			}
			b.ReportAllocs()
			for b.Loop() {
				path.answer(sc)
			}
		})
	}
}

// maxGeneralAllocs bounds the general path's allocations for the same query (what
// a query the fast path leaves costs): the request's message, question and name
// (miekg/dns's Unpack), the reply's message, question slice and reply struct, its
// three sections sized once in fill (9), and one of slack.
const maxGeneralAllocs = 10

// TestGeneralPathAllocs keeps the general path's allocations bounded too.
func TestGeneralPathAllocs(t *testing.T) {
	srv := perfServer(t)
	q, _ := udpQuery(t)
	sc := newScratch()
	answer := func() {
		if w, _, _, _ := srv.answerGeneral(q, sc, time.Now()); w == nil {
			t.Fatal("no answer")
		}
	}
	answer()
	if raceEnabled {
		t.Log("not counting allocations: the race detector adds its own")
	} else if got := testing.AllocsPerRun(200, answer); got > maxGeneralAllocs {
		t.Errorf("the general path makes %.1f allocations per SRV answer, want at most %d", got, maxGeneralAllocs)
	}
}
