package mdns

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// sentPkt is one packet the responder under test sent.
type sentPkt struct {
	iface string
	to    netip.AddrPort // invalid: multicast
	at    time.Time
	raw   []byte
	msg   *dns.Msg
}

// fakeNet records what a responder sends, at the test's virtual time.
type fakeNet struct {
	t     testing.TB
	clock *time.Time
	sent  []sentPkt
}

func (f *fakeNet) multicast(ifi *net.Interface, b []byte) { f.record(ifi, netip.AddrPort{}, b) }
func (f *fakeNet) unicast(ifi *net.Interface, to netip.AddrPort, b []byte) {
	f.record(ifi, to, b)
}

func (f *fakeNet) record(ifi *net.Interface, to netip.AddrPort, b []byte) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		f.t.Fatalf("the responder sent a packet that does not unpack: %v", err)
	}
	f.sent = append(f.sent, sentPkt{iface: ifi.Name, to: to, at: *f.clock, raw: slices.Clone(b), msg: m})
}

// since returns the packets sent from index i on.
func (f *fakeNet) since(i int) []sentPkt { return f.sent[i:] }

var testIfaces = map[string]*net.Interface{
	"eth0": {Name: "eth0", Index: 2, MTU: 1500},
	"eth1": {Name: "eth1", Index: 3, MTU: 1500},
}

var testAddrs = map[string][]netip.Addr{
	"eth0": {netip.MustParseAddr("10.0.0.1")},
	"eth1": {netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("fe80::1")},
}

// newTestResponder returns a responder on fake interfaces and a virtual clock.
func newTestResponder(t testing.TB) (*responder, *fakeNet, *time.Time) {
	t.Helper()
	clock := time.Unix(1_000_000, 0)
	f := &fakeNet{t: t, clock: &clock}
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newResponder(slog.New(slog.DiscardHandler), m, f)
	r.now = func() time.Time { return clock }
	r.rnd = rand.New(rand.NewPCG(1, 2))
	r.lookup = func(name string) (*net.Interface, error) {
		if ifi, ok := testIfaces[name]; ok {
			return ifi, nil
		}
		return nil, fmt.Errorf("no interface %s", name)
	}
	r.addrsOf = func(ifi *net.Interface) []netip.Addr { return testAddrs[ifi.Name] }
	return r, f, &clock
}

// runUntil advances the virtual clock from timer to timer up to until.
func runUntil(r *responder, clock *time.Time, until time.Time) {
	for {
		next := r.next(*clock)
		if next.After(until) {
			*clock = until
			r.tick(until)
			return
		}
		if next.After(*clock) {
			*clock = next
		}
		r.tick(*clock)
	}
}

func services(n int) wanted {
	w := wanted{ifaces: []string{"eth0"}, host: "h1", svcs: map[string]serviceSpec{}}
	for i := range n {
		name := fmt.Sprintf("web%d-h1", i)
		w.svcs["_web._tcp/"+name] = serviceSpec{Name: name, Type: "_web._tcp", Port: 8080 + i, Text: map[string]string{"rumor": "h1", "tags": "a,b"}}
	}
	return w
}

func isProbe(m *dns.Msg) bool { return !m.Response && len(m.Ns) > 0 }

// TestResponderPublish: one change of three instances is probed three times, 250 ms
// apart, then announced twice, a second apart, each time in one packet holding every
// record of the change, unique ones with the cache-flush bit (RFC 6762 §8, §10.2).
func TestResponderPublish(t *testing.T) {
	r, f, clock := newTestResponder(t)
	start := *clock
	r.set(services(3), *clock)
	runUntil(r, clock, start.Add(10*time.Second))
	var probes, anns []sentPkt
	for _, p := range f.sent {
		switch {
		case isProbe(p.msg):
			probes = append(probes, p)
		case p.msg.Response:
			anns = append(anns, p)
		default:
			t.Errorf("unexpected packet %v", p.msg)
		}
	}
	if len(probes) != probeCount {
		t.Fatalf("%d probes, want %d", len(probes), probeCount)
	}
	for i, p := range probes {
		if len(p.msg.Question) != 4 || p.msg.Question[0].Qtype != dns.TypeANY {
			t.Errorf("probe %d asks %v, want ANY for the host and three instances", i, p.msg.Question)
		}
		if p.msg.Question[0].Qclass&cacheFlushBit != 0 {
			t.Errorf("probe %d asks for unicast answers, which the group-bound sockets never receive", i)
		}
		if i > 0 && p.at.Sub(probes[i-1].at) < probeWait {
			t.Errorf("probes %d and %d %s apart, want ≥ %s", i-1, i, p.at.Sub(probes[i-1].at), probeWait)
		}
	}
	if len(anns) != announceCount {
		t.Fatalf("%d announcement packets, want %d (one per announcement: all records in one packet)", len(anns), announceCount)
	}
	if gap := anns[1].at.Sub(anns[0].at); gap < recordInterval {
		t.Errorf("announcements %s apart, want ≥ 1 s", gap)
	}
	for _, a := range anns {
		types := map[uint16]int{}
		for _, rr := range a.msg.Answer {
			types[rr.Header().Rrtype]++
			flush := rr.Header().Class&cacheFlushBit != 0
			if flush == shared(rr) {
				t.Errorf("%s: cache-flush bit %v, want it on unique records only", rr, flush)
			}
		}
		// 3 instance PTRs + 1 enumeration PTR, 3 SRV, 3 TXT, 1 A.
		if types[dns.TypePTR] != 4 || types[dns.TypeSRV] != 3 || types[dns.TypeTXT] != 3 || types[dns.TypeA] != 1 {
			t.Errorf("announcement holds %v, want 4 PTR, 3 SRV, 3 TXT, 1 A", types)
		}
	}
	if got := r.countAnnounced(); got != 3 {
		t.Errorf("%d instances announced, want 3", got)
	}
}

// settled returns a responder that has published n instances, and the index of the
// next packet.
func settled(t testing.TB, n int) (*responder, *fakeNet, *time.Time, int) {
	t.Helper()
	r, f, clock := newTestResponder(t)
	r.set(services(n), *clock)
	runUntil(r, clock, clock.Add(5*time.Second))
	return r, f, clock, len(f.sent)
}

func query(t *testing.T, id uint16, known []dns.RR, qs ...dns.Question) []byte {
	t.Helper()
	m := &dns.Msg{Question: qs, Answer: known}
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var peer = netip.MustParseAddrPort("10.0.0.9:5353")

// checkRate fails if a record with a TTL went out by multicast on one interface twice
// within a second, probes (queries) and defences excepted.
func checkRate(t *testing.T, pkts []sentPkt) {
	t.Helper()
	last := map[string]time.Time{}
	for _, p := range pkts {
		if !p.msg.Response || p.to.IsValid() {
			continue
		}
		for _, rr := range slices.Concat(p.msg.Answer, p.msg.Extra) {
			k := p.iface + " " + recKey(rr)
			if prev, ok := last[k]; ok && rr.Header().Ttl > 0 && p.at.Sub(prev) < recordInterval {
				t.Errorf("%s multicast twice within %s", k, p.at.Sub(prev))
			}
			last[k] = p.at
		}
	}
}

// TestResponderRateLimit: queries every 100 ms for 5 s get answers, but no record is
// multicast twice within a second (RFC 6762 §6); shared answers wait 20–120 ms.
func TestResponderRateLimit(t *testing.T) {
	r, f, clock, mark := settled(t, 2)
	start := *clock
	for i := range 50 {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		runUntil(r, clock, at)
		q := dns.Question{Name: "_web._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}
		if i%2 == 1 {
			q = dns.Question{Name: "web0-h1._web._tcp.local.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET}
		}
		r.handle(packet{ifindex: 2, src: peer, data: query(t, 0, nil, q)}, at)
		r.tick(at)
	}
	runUntil(r, clock, start.Add(6*time.Second))
	pkts := f.since(mark)
	if len(pkts) < 4 {
		t.Fatalf("%d answers to 50 queries over 5 s, want at least 4", len(pkts))
	}
	checkRate(t, f.sent)
	// A PTR question alone is answered after a delay, never at once.
	r2, f2, clock2, mark2 := settled(t, 1)
	at := clock2.Add(3 * time.Second)
	runUntil(r2, clock2, at)
	r2.handle(packet{ifindex: 2, src: peer, data: query(t, 0, nil, dns.Question{Name: "_web._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET})}, at)
	r2.tick(at)
	if len(f2.since(mark2)) != 0 {
		t.Error("a shared answer went out at once")
	}
	runUntil(r2, clock2, at.Add(200*time.Millisecond))
	got := f2.since(mark2)
	if len(got) != 1 || got[0].at.Sub(at) < 20*time.Millisecond || got[0].at.Sub(at) > 120*time.Millisecond {
		t.Fatalf("answers %v, want one 20–120 ms after the query", got)
	}
	// The PTR answer carries the SRV, TXT and address as additional records.
	if len(got[0].msg.Answer) != 1 || len(got[0].msg.Extra) != 3 {
		t.Errorf("answer %v, want the PTR with SRV, TXT, A as additional records", got[0].msg)
	}
}

// TestResponderKnownAnswer: a known answer with at least half its TTL left is not
// given again (RFC 6762 §7.1); one with less is.
func TestResponderKnownAnswer(t *testing.T) {
	r, f, clock, mark := settled(t, 1)
	ptr := &dns.PTR{Hdr: dns.RR_Header{Name: "_web._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: otherTTL}, Ptr: "web0-h1._web._tcp.local."}
	q := dns.Question{Name: "_web._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	at := clock.Add(2 * time.Second)
	runUntil(r, clock, at)
	r.handle(packet{ifindex: 2, src: peer, data: query(t, 0, []dns.RR{ptr}, q)}, at)
	runUntil(r, clock, at.Add(time.Second))
	if got := f.since(mark); len(got) != 0 {
		t.Errorf("a known answer was given: %v", got[0].msg)
	}
	ptr.Hdr.Ttl = otherTTL/2 - 1
	at = *clock
	r.handle(packet{ifindex: 2, src: peer, data: query(t, 0, []dns.RR{ptr}, q)}, at)
	runUntil(r, clock, at.Add(time.Second))
	if got := f.since(mark); len(got) != 1 {
		t.Errorf("%d answers to a query whose known answer is old, want 1", len(got))
	}
}

// TestResponderDuplicateSuppression: a shared answer another responder multicasts
// during the delay is not sent again (RFC 6762 §7.4).
func TestResponderDuplicateSuppression(t *testing.T) {
	r, f, clock, mark := settled(t, 1)
	at := clock.Add(2 * time.Second)
	runUntil(r, clock, at)
	r.handle(packet{ifindex: 2, src: peer, data: query(t, 0, nil, dns.Question{Name: servicesMeta, Qtype: dns.TypePTR, Qclass: dns.ClassINET})}, at)
	other := &dns.Msg{}
	other.Response = true
	other.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: servicesMeta, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: otherTTL}, Ptr: "_web._tcp.local."}}
	b, _ := other.Pack()
	r.handle(packet{ifindex: 2, src: netip.MustParseAddrPort("10.0.0.8:5353"), data: b}, at.Add(10*time.Millisecond))
	runUntil(r, clock, at.Add(time.Second))
	if got := f.since(mark); len(got) != 0 {
		t.Errorf("answered what another responder just multicast: %v", got[0].msg)
	}
}

// TestResponderGoodbye: removing an instance sends one goodbye packet at once (TTL
// 0), the type's enumeration PTR only when no instance of the type is left; shutdown
// sends one packet with everything.
func TestResponderGoodbye(t *testing.T) {
	r, f, clock, mark := settled(t, 2)
	w := services(2)
	delete(w.svcs, "_web._tcp/web1-h1")
	at := *clock
	r.set(w, at)
	got := f.since(mark)
	if len(got) != 1 || got[0].at != at {
		t.Fatalf("%d packets at removal, want one goodbye at once", len(got))
	}
	var names []string
	for _, rr := range got[0].msg.Answer {
		if rr.Header().Ttl != 0 {
			t.Errorf("goodbye record %s has TTL %d", rr, rr.Header().Ttl)
		}
		names = append(names, dns.TypeToString[rr.Header().Rrtype]+" "+rr.Header().Name)
	}
	slices.Sort(names)
	want := []string{"PTR _web._tcp.local.", "SRV web1-h1._web._tcp.local.", "TXT web1-h1._web._tcp.local."}
	if !slices.Equal(names, want) {
		t.Errorf("goodbye holds %v, want %v", names, want)
	}
	mark = len(f.sent)
	r.shutdown(*clock)
	got = f.since(mark)
	if len(got) != 1 {
		t.Fatalf("%d packets at shutdown, want one", len(got))
	}
	types := map[uint16]int{}
	for _, rr := range got[0].msg.Answer {
		types[rr.Header().Rrtype]++
		if rr.Header().Ttl != 0 {
			t.Errorf("goodbye record %s has TTL %d", rr, rr.Header().Ttl)
		}
	}
	if types[dns.TypePTR] != 2 || types[dns.TypeSRV] != 1 || types[dns.TypeTXT] != 1 || types[dns.TypeA] != 1 {
		t.Errorf("shutdown goodbye holds %v, want 2 PTR, 1 SRV, 1 TXT, 1 A", types)
	}
}

// TestResponderConflict: a response claiming a name being probed renames it, "Name
// (2)" for an instance and "host-2" for the host (RFC 6762 §9); the probe's own echo
// is no conflict.
func TestResponderConflict(t *testing.T) {
	r, f, clock := newTestResponder(t)
	start := *clock
	r.set(services(1), start)
	runUntil(r, clock, start.Add(300*time.Millisecond)) // one probe out
	if len(f.sent) == 0 || !isProbe(f.sent[0].msg) {
		t.Fatalf("no probe sent: %v", f.sent)
	}
	// Our own probe, heard on a second interface: no conflict.
	r.handle(packet{ifindex: 2, src: netip.MustParseAddrPort("10.0.0.1:5353"), data: f.sent[0].raw}, *clock)
	other := &dns.Msg{}
	other.Response = true
	other.Answer = []dns.RR{
		&dns.SRV{Hdr: dns.RR_Header{Name: "web0-h1._web._tcp.local.", Rrtype: dns.TypeSRV, Class: dns.ClassINET | cacheFlushBit, Ttl: 120}, Target: "other.local.", Port: 1},
		&dns.A{Hdr: dns.RR_Header{Name: "h1.local.", Rrtype: dns.TypeA, Class: dns.ClassINET | cacheFlushBit, Ttl: 120}, A: net.IPv4(10, 0, 0, 7)},
	}
	b, _ := other.Pack()
	r.handle(packet{ifindex: 2, src: netip.MustParseAddrPort("10.0.0.7:5353"), data: b}, *clock)
	runUntil(r, clock, start.Add(5*time.Second))
	e := r.insts["_web._tcp/web0-h1"]
	if e.label != "web0-h1 (2)" || e.state != announced {
		t.Errorf("instance %q (state %d), want \"web0-h1 (2)\" announced", e.label, e.state)
	}
	if r.host.label != "h1-2" {
		t.Errorf("host %q, want h1-2", r.host.label)
	}
	last := f.sent[len(f.sent)-1].msg
	found := false
	for _, rr := range last.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			found = srv.Hdr.Name == `web0-h1\ \(2\)._web._tcp.local.` && srv.Target == "h1-2.local."
		}
	}
	if !found {
		t.Errorf("last announcement %v, want the renamed SRV pointing at h1-2.local.", last)
	}
	if got := nextName(&entity{base: "x", label: "x (9)"}); got != "x (10)" {
		t.Errorf("after x (9): %q", got)
	}
}

// TestResponderSimultaneousProbe: two hosts probing one name at once: the one with
// the lexicographically later data goes on, the other waits a second and probes
// again (RFC 6762 §8.2); an announced name is defended at once, rate limit or not.
func TestResponderSimultaneousProbe(t *testing.T) {
	r, f, clock := newTestResponder(t)
	start := *clock
	r.set(services(1), start)
	runUntil(r, clock, start.Add(300*time.Millisecond))
	probe := func(port uint16) []byte {
		m := &dns.Msg{Question: []dns.Question{{Name: "web0-h1._web._tcp.local.", Qtype: dns.TypeANY, Qclass: dns.ClassINET}}}
		m.Ns = []dns.RR{&dns.SRV{Hdr: dns.RR_Header{Name: "web0-h1._web._tcp.local.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 120}, Target: "h1.local.", Port: port},
			&dns.TXT{Hdr: dns.RR_Header{Name: "web0-h1._web._tcp.local.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 4500}, Txt: []string{"rumor=h1", "tags=a,b"}}}
		b, _ := m.Pack()
		return b
	}
	// Theirs is earlier (port 1 < 8080): we win and go on.
	r.handle(packet{ifindex: 2, src: peer, data: probe(1)}, *clock)
	runUntil(r, clock, start.Add(2*time.Second))
	if e := r.insts["_web._tcp/web0-h1"]; e.state != announced || e.label != "web0-h1" {
		t.Fatalf("after winning the tie: %q state %d", e.label, e.state)
	}
	// Announced: a probe for its name is defended at once, within a second of the
	// last announcement.
	mark := len(f.sent)
	r.handle(packet{ifindex: 2, src: peer, data: probe(1)}, *clock)
	got := f.since(mark)
	if len(got) != 1 || !got[0].msg.Response || len(got[0].msg.Answer) != 2 {
		t.Fatalf("defence: %v, want one response with SRV and TXT", got)
	}
	// A fresh responder that loses the tie (their port 9999 > 8080) probes again a
	// second later, not renamed.
	r2, f2, clock2 := newTestResponder(t)
	start = *clock2
	r2.set(services(1), start)
	runUntil(r2, clock2, start.Add(300*time.Millisecond))
	lost := *clock2
	r2.handle(packet{ifindex: 2, src: peer, data: probe(9999)}, lost)
	mark = len(f2.sent)
	runUntil(r2, clock2, lost.Add(900*time.Millisecond))
	for _, p := range f2.since(mark) {
		for _, q := range p.msg.Question {
			if strings.HasPrefix(q.Name, "web0") {
				t.Errorf("probed %s again %s after losing the tie, want ≥ 1 s", q.Name, p.at.Sub(lost))
			}
		}
	}
	runUntil(r2, clock2, lost.Add(5*time.Second))
	if e := r2.insts["_web._tcp/web0-h1"]; e.state != announced || e.label != "web0-h1" {
		t.Errorf("after losing the tie: %q state %d, want announced under its own name", e.label, e.state)
	}
}

// TestResponderLegacyUnicast: a query from a port other than 5353 is answered by
// unicast, with its ID and question, TTLs capped at 10 s and no cache-flush bit
// (RFC 6762 §6.7).
func TestResponderLegacyUnicast(t *testing.T) {
	r, f, clock, mark := settled(t, 1)
	src := netip.MustParseAddrPort("10.0.0.9:40000")
	r.handle(packet{ifindex: 2, src: src, data: query(t, 4242, nil, dns.Question{Name: "web0-h1._web._tcp.local.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET})}, *clock)
	got := f.since(mark)
	if len(got) != 1 || got[0].to != src {
		t.Fatalf("got %v, want one unicast answer to %s", got, src)
	}
	m := got[0].msg
	if m.Id != 4242 || len(m.Question) != 1 || len(m.Answer) != 1 {
		t.Fatalf("answer %v, want ID 4242, the question and the SRV", m)
	}
	for _, rr := range slices.Concat(m.Answer, m.Extra) {
		if rr.Header().Ttl > legacyTTL || rr.Header().Class&cacheFlushBit != 0 {
			t.Errorf("legacy answer record %s: TTL over 10 or cache-flush bit", rr)
		}
	}
}

// TestResponderInterfaces: each interface gets its own addresses only; an interface
// that appears gets probes and announcements; one that goes gets a goodbye.
func TestResponderInterfaces(t *testing.T) {
	r, f, clock, mark := settled(t, 1)
	w := services(1)
	w.ifaces = []string{"eth0", "eth1"}
	r.set(w, *clock)
	runUntil(r, clock, clock.Add(5*time.Second))
	var probes, anns int
	for _, p := range f.since(mark) {
		if p.iface != "eth1" {
			t.Errorf("packet on %s after eth1 appeared", p.iface)
			continue
		}
		if isProbe(p.msg) {
			probes++
		} else {
			anns++
			for _, rr := range p.msg.Answer {
				if a, ok := rr.(*dns.A); ok && !a.A.Equal(net.IPv4(10, 0, 1, 1)) {
					t.Errorf("eth1 announced %s", a)
				}
			}
		}
	}
	if probes != probeCount || anns != announceCount {
		t.Errorf("on eth1: %d probes, %d announcements; want %d and %d", probes, anns, probeCount, announceCount)
	}
	mark = len(f.sent)
	w.ifaces = []string{"eth1"}
	r.set(w, *clock)
	got := f.since(mark)
	if len(got) != 1 || got[0].iface != "eth0" || got[0].msg.Answer[0].Header().Ttl != 0 {
		t.Errorf("dropping eth0 sent %v, want one goodbye there", got)
	}
}

// TestEscapeRoundTrip: names and TXT strings built here read back identical through
// miekg/dns's wire form, so that what is sent and what is received compare equal.
func TestEscapeRoundTrip(t *testing.T) {
	for _, label := range []string{"web1-h1", "HP LaserJet (2)", `a.b\c"d;e@f'g`, "caf\u00e9 \x01"} {
		name := escapeLabel(label) + "._web._tcp.local."
		txt := escapeTXT(`k=` + label)
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{txt}}
		buf := make([]byte, 1024)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Fatalf("%q: %v", label, err)
		}
		back, _, err := dns.UnpackRR(buf[:n], 0)
		if err != nil {
			t.Fatalf("%q: %v", label, err)
		}
		if back.Header().Name != name || back.(*dns.TXT).Txt[0] != txt {
			t.Errorf("%q: got %q %q, want %q %q", label, back.Header().Name, back.(*dns.TXT).Txt[0], name, txt)
		}
	}
}

// FuzzResponderHandle: no packet, however malformed, crashes the responder, and
// whatever it sends in return unpacks.
func FuzzResponderHandle(f *testing.F) {
	q := &dns.Msg{Question: []dns.Question{{Name: "_web._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}}}
	b, _ := q.Pack()
	f.Add(b, uint16(5353))
	q.Ns = []dns.RR{&dns.SRV{Hdr: dns.RR_Header{Name: "web0-h1._web._tcp.local.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 120}, Target: "x.local."}}
	q.Question[0] = dns.Question{Name: "web0-h1._web._tcp.local.", Qtype: dns.TypeANY, Qclass: dns.ClassINET}
	b, _ = q.Pack()
	f.Add(b, uint16(5353))
	q.Response = true
	q.Answer, q.Ns = q.Ns, nil
	b, _ = q.Pack()
	f.Add(b, uint16(5353))
	f.Add([]byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0, 10, 0xff, 0xff}, uint16(5353))
	f.Add([]byte("garbage"), uint16(1234))
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		r, _, clock, _ := settled(t, 2)
		src := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), port)
		r.handle(packet{ifindex: 2, src: src, data: data}, *clock)
		runUntil(r, clock, clock.Add(2*time.Second))
		r.shutdown(*clock)
	})
}

// TestResponderBurst: services registered one by one within the first probe's delay
// are probed and announced together.
func TestResponderBurst(t *testing.T) {
	r, f, clock := newTestResponder(t)
	w := wanted{ifaces: []string{"eth0"}, host: "h1", svcs: map[string]serviceSpec{}}
	for i := range 4 {
		name := fmt.Sprintf("web%d-h1", i)
		w.svcs["_web._tcp/"+name] = serviceSpec{Name: name, Type: "_web._tcp", Port: 80}
		cp := w
		cp.svcs = maps.Clone(w.svcs)
		r.set(cp, *clock)
	}
	runUntil(r, clock, clock.Add(5*time.Second))
	if len(f.sent) != probeCount+announceCount {
		t.Errorf("%d packets, want %d probes and %d announcements for the burst", len(f.sent), probeCount, announceCount)
	}
}

// TestEchoFilter: a packet the responder sent is recognised for echoTTL, and only
// that packet.
func TestEchoFilter(t *testing.T) {
	f := newEchoFilter()
	t0 := time.Unix(1000, 0)
	f.note([]byte("announcement"), t0)
	if !f.seen([]byte("announcement"), t0.Add(time.Second)) {
		t.Error("own packet not recognised")
	}
	if f.seen([]byte("announcemenT"), t0) {
		t.Error("another packet taken for an echo")
	}
	if f.seen([]byte("announcement"), t0.Add(echoTTL+time.Second)) {
		t.Error("an echo recognised after echoTTL")
	}
}
