package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// fastFixture is the standard fixture, plus a service whose answers do not fit 512
// bytes (big: 40 instances) and a node whose TXT records are many: what the fast
// path must leave to the general one. Every answer holds all its instances (no
// ARecordLimit), so two answers to a query hold the same records in some order.
func fastFixture(tb testing.TB, cfg Config) *fixture {
	f := newFixture(tb, cfg)
	f.standard()
	for i := range 40 {
		n := fmt.Sprintf("big%d", i)
		f.node(n, fmt.Sprintf("10.2.0.%d", i+1), nil)
		f.service(n, catalogtest.Service("big", "big", 9000+i), catalog.StatusPassing)
	}
	meta := map[string]string{}
	for i := range 30 {
		meta[fmt.Sprintf("key%02d", i)] = strings.Repeat("v", 20)
	}
	f.node("fat", "10.3.0.1", meta)
	return f
}

// normAnswer is an answer in a form two answers compare equal in when they say the
// same: each section sorted.
func normAnswer(tb testing.TB, b []byte) string {
	tb.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		tb.Fatalf("answer does not unpack: %v\n%x", err, b)
	}
	var out strings.Builder
	h := m.MsgHdr
	fmt.Fprintf(&out, "id %d qr %v op %d aa %v tc %v rd %v ra %v z %v ad %v cd %v rcode %d\n", h.Id, h.Response, h.Opcode,
		h.Authoritative, h.Truncated, h.RecursionDesired, h.RecursionAvailable, h.Zero, h.AuthenticatedData, h.CheckingDisabled, h.Rcode)
	for _, q := range m.Question {
		fmt.Fprintf(&out, "question %s %d %d\n", q.Name, q.Qtype, q.Qclass)
	}
	for i, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		var lines []string
		for _, rr := range sec {
			lines = append(lines, rr.String())
		}
		slices.Sort(lines)
		fmt.Fprintf(&out, "section %d\n%s\n", i, strings.Join(lines, "\n"))
	}
	return out.String()
}

// checkFast answers q both ways and fails unless the answers say the same; it
// returns whether the fast path answered. The fast answer may be longer (it
// compresses only whole names: a DNS-SD or apex answer is a few dozen bytes more)
// and then not fit where the general one does: the fast path then declines, and the
// general path answers.
func checkFast(tb testing.TB, srv *Server, q []byte) bool {
	tb.Helper()
	fast, qtype, ok := srv.answerFast(q, newScratch())
	if !ok {
		return false
	}
	general, gtype, rcode, fwd := srv.answerGeneral(q, newScratch(), time.Now())
	if fwd != nil || general == nil || rcode != dns.RcodeSuccess || gtype != qtype {
		tb.Fatalf("the fast path answered %x; the general one: %d bytes, rcode %d, qtype %d (fast %d), forward %v", q, len(general), rcode, gtype, qtype, fwd != nil)
	}
	if got, want := normAnswer(tb, fast), normAnswer(tb, general); got != want {
		tb.Fatalf("query %x: the fast path's answer\n%s\nthe general path's\n%s", q, got, want)
	}
	return true
}

// TestFastPathMatchesHandle: the fast path's answers decode equal to handle's and
// pack's (the same records, header and question), and it leaves to them what it does
// not handle: NODATA, NXDOMAIN, refused names, answers that need truncating,
// queries with EDNS0 options, other opcodes and classes.
func TestFastPathMatchesHandle(t *testing.T) {
	f := fastFixture(t, Config{Recursors: []string{"127.0.0.1:1"}})
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		edns  uint16 // 0: none
		fast  bool   // the fast path answers
		edit  func(m *dns.Msg)
	}{
		{"srv", "web.service.consul.", dns.TypeSRV, 0, true, nil},
		{"srv mixed case", "WEB.Service.CONSUL.", dns.TypeSRV, 0, false, nil},
		{"srv edns0", "web.service.consul.", dns.TypeSRV, 1232, true, nil},
		{"srv edns0 small buffer", "web.service.consul.", dns.TypeSRV, 100, true, nil},
		{"srv rd cd", "web.service.consul.", dns.TypeSRV, 0, true, func(m *dns.Msg) { m.RecursionDesired, m.CheckingDisabled = true, true }},
		{"srv tag", "primary.web.service.consul.", dns.TypeSRV, 0, true, nil},
		{"rfc 2782", "_web._tcp.service.dc1.consul.", dns.TypeSRV, 0, true, nil},
		{"a", "web.service.consul.", dns.TypeA, 0, true, nil},
		{"aaaa", "db.service.consul.", dns.TypeAAAA, 0, true, nil},
		{"txt", "web.service.consul.", dns.TypeTXT, 0, true, nil},
		{"any", "web.service.consul.", dns.TypeANY, 0, true, nil},
		{"node a", "n1.node.consul.", dns.TypeA, 0, true, nil},
		{"node any", "n1.node.consul.", dns.TypeANY, 0, true, nil},
		{"apex soa", "consul.", dns.TypeSOA, 0, true, nil},
		{"apex ns", "consul.", dns.TypeNS, 0, true, nil},
		{"apex any", "consul.", dns.TypeANY, 0, true, nil},
		{"ns a", "ns.consul.", dns.TypeA, 0, true, nil},
		{"dns-sd services", "_services._dns-sd._udp.consul.", dns.TypePTR, 0, true, nil},
		{"dns-sd type", "_web._tcp.consul.", dns.TypePTR, 4096, true, nil},
		{"dns-sd instance", "web-1-n1._web._tcp.consul.", dns.TypeANY, 0, true, nil},
		{"reverse", "1.0.0.10.in-addr.arpa.", dns.TypePTR, 0, true, nil},
		{"big over 512 bytes", "big.service.consul.", dns.TypeSRV, 0, false, nil},
		{"big in 4096", "big.service.consul.", dns.TypeSRV, 4096, false, nil}, // 1232 at most: truncated
		{"many txt", "fat.node.consul.", dns.TypeTXT, 0, false, nil},
		{"nodata", "web.service.consul.", dns.TypeMX, 0, false, nil},
		{"nxdomain", "nope.service.consul.", dns.TypeSRV, 0, false, nil},
		{"addr", "0a000001.addr.consul.", dns.TypeA, 0, false, nil},
		{"outside", "example.com.", dns.TypeA, 0, false, nil},
		{"class chaos", "web.service.consul.", dns.TypeSRV, 0, false, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }},
		{"opcode status", "web.service.consul.", dns.TypeSRV, 0, false, func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }},
		{"edns version 1", "web.service.consul.", dns.TypeSRV, 1232, false, func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }},
		{"edns cookie", "web.service.consul.", dns.TypeSRV, 1232, false, func(m *dns.Msg) {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
		}},
		{"escaped label", `we\.b.service.consul.`, dns.TypeSRV, 0, false, nil},
		{"response", "web.service.consul.", dns.TypeSRV, 0, false, func(m *dns.Msg) { m.Response = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tc.qname, tc.qtype)
			m.Id = 0xBEEF
			if tc.edns > 0 {
				m.SetEdns0(tc.edns, false)
			}
			if tc.edit != nil {
				tc.edit(m)
			}
			q, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			for range 20 { // the instances come in another order each time
				if got := checkFast(t, f.srv, q); got != tc.fast {
					t.Fatalf("fast path answered: %v, want %v", got, tc.fast)
				}
			}
		})
	}
}

// TestFastPathPicks: with more instances than ARecordLimit, a fast answer holds
// ARecordLimit of them, each SRV with its own target's address, and over many
// answers every instance comes up.
func TestFastPathPicks(t *testing.T) {
	srv := perfServer(t)
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	m.Id = 1
	q, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := newScratch()
	general, _, _, _ := srv.answerGeneral(q, newScratch(), time.Now())
	for range 500 {
		b, _, ok := srv.answerFast(q, sc)
		if !ok {
			t.Fatal("the fast path did not answer")
		}
		if len(b) != len(general) { // compressed as miekg/dns does: A owners point at SRV targets
			t.Fatalf("fast answer of %d bytes, general of %d", len(b), len(general))
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if len(m.Answer) != 5 || len(m.Extra) != 5 || m.Truncated || m.Id != 1 {
			t.Fatalf("%d answers, %d extra, TC %v, id %d; want 5, 5, false, 1", len(m.Answer), len(m.Extra), m.Truncated, m.Id)
		}
		for i, rr := range m.Answer {
			srvRR, a := rr.(*dns.SRV), m.Extra[i].(*dns.A)
			if srvRR.Target != a.Hdr.Name || srvRR.Hdr.Name != "web.service.consul." {
				t.Fatalf("SRV %v with additional %v", srvRR, a)
			}
			var n int
			if _, err := fmt.Sscanf(srvRR.Target, "node-%03d.node.dc1.consul.", &n); err != nil {
				t.Fatalf("target %q: %v", srvRR.Target, err)
			}
			if got, want := a.A.String(), fmt.Sprintf("10.1.0.%d", n+1); got != want || srvRR.Port != 8080 {
				t.Fatalf("%v with %v: want address %s, port 8080", srvRR, a, want)
			}
			seen[srvRR.Target] = true
		}
	}
	if len(seen) != 100 {
		t.Errorf("%d instances came up in 500 answers of 5, want all 100", len(seen))
	}
}

// TestFastPathForgetsDropped: a scratch's cached entry is forgotten once the server
// drops its entry (invalidate, which the watcher calls on every catalog change): a
// deregistered instance is no longer answered by the fast path.
func TestFastPathForgetsDropped(t *testing.T) {
	f := newFixture(t, Config{})
	f.standard()
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	q, _ := m.Pack()
	sc := newScratch()
	count := func() int {
		t.Helper()
		b, _, ok := f.srv.answerFast(q, sc)
		if !ok {
			t.Fatal("the fast path did not answer")
		}
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		return len(r.Answer)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d answers, want 2", n)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d answers from the scratch's cache, want 2", n)
	}
	f.deregister("n2", "web-2")
	f.srv.invalidate() // as the watcher does, maybe also meanwhile
	if n := count(); n != 1 {
		t.Errorf("%d answers after the deregistration, want 1", n)
	}
}

// FuzzFastPath: whatever the fast path answers, the general path answers the same
// (TestFastPathMatchesHandle's comparison); it never panics.
func FuzzFastPath(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"web.service.consul.", dns.TypeSRV}, {"WEB.service.consul.", dns.TypeANY}, {"_web._tcp.service.dc1.consul.", dns.TypeSRV},
		{"n1.node.consul.", dns.TypeTXT}, {"_web._tcp.consul.", dns.TypePTR}, {"web-1-n1._web._tcp.consul.", dns.TypeSRV},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR}, {"consul.", dns.TypeANY}, {"big.service.consul.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b)
		m.SetEdns0(1232, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	fx := fastFixture(f, Config{})
	f.Fuzz(func(t *testing.T, q []byte) {
		checkFast(t, fx.srv, q)
	})
}
