package dnsserver

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// many registers n passing web instances, one per node n0..n(n-1) at 10.1.x.y.
func (f *fixture) many(n int) {
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		f.node(name, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), nil)
		f.service(name, catalogtest.Service(fmt.Sprintf("web-%d", i), "web", 8000+i), catalog.StatusPassing)
	}
}

func TestHealthFiltering(t *testing.T) {
	t.Run("warning answered unless only_passing", func(t *testing.T) {
		for _, only := range []bool{false, true} {
			f := newFixture(t, Config{OnlyPassing: only})
			f.standard()
			r := f.query("udp", "web.service.consul.", dns.TypeA, 0)
			want := 2
			if only {
				want = 1
			}
			if len(r.Answer) != want {
				t.Errorf("only_passing=%v: %d answers, want %d: %v", only, len(r.Answer), want, r.Answer)
			}
		}
	})
	t.Run("failed node never answered", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.standard()
		f.cat.SetLiveness("n1", catalog.LivenessFailed)
		testkit.Poll(t, 5*time.Second, time.Millisecond, "n1's instance to go", func() error {
			r := f.query("udp", "web.service.consul.", dns.TypeA, 0)
			if got := rrs(r.Answer); len(got) != 1 || !strings.HasSuffix(got[0], "10.0.1.2") {
				return fmt.Errorf("answers %v", got)
			}
			return nil
		})
	})
	t.Run("critical instance becomes answered when passing", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.standard()
		if r := f.query("udp", "v1.web.service.consul.", dns.TypeA, 0); len(r.Answer) != 1 {
			t.Fatalf("before: %v", r.Answer)
		}
		f.apply("n3", catalog.Record{Check: catalogtest.Check("check:web-3", "web-3", catalog.StatusPassing)})
		testkit.Poll(t, 5*time.Second, time.Millisecond, "web-3 answered", func() error {
			if r := f.query("udp", "v1.web.service.consul.", dns.TypeA, 0); len(r.Answer) != 2 {
				return fmt.Errorf("answers %v", r.Answer)
			}
			return nil
		})
	})
}

// TestDeregistrationInvalidates: an answer cached before a deregistration is not
// served after the catalog knows (snapshots are rebuilt on catalog change).
func TestDeregistrationInvalidates(t *testing.T) {
	f := newFixture(t, Config{})
	f.standard()
	if r := f.query("udp", "db.service.consul.", dns.TypeAAAA, 0); len(r.Answer) != 1 {
		t.Fatalf("before: %v", r)
	}
	f.deregister("n2", "db")
	testkit.Poll(t, 5*time.Second, time.Millisecond, "db to be unknown", func() error {
		if r := f.query("udp", "db.service.consul.", dns.TypeAAAA, 0); r.Rcode != dns.RcodeNameError {
			return fmt.Errorf("rcode %s, answers %v", dns.RcodeToString[r.Rcode], r.Answer)
		}
		return nil
	})
}

// TestTruncation: without EDNS0 a UDP answer fits 512 bytes and sets TC when
// instances were left out, never leaving an SRV without its target's address; EDNS0
// raises the bound up to MaxUDPSize; TCP carries every instance.
func TestTruncation(t *testing.T) {
	f := newFixture(t, Config{})
	f.many(100)
	check := func(r *dns.Msg, maxLen int) {
		t.Helper()
		r.Compress = true // Len of the wire form, as the server sent it
		if l := r.Len(); l > maxLen {
			t.Errorf("answer of %d bytes, over %d", l, maxLen)
		}
		targets := map[string]bool{}
		for _, rr := range r.Extra {
			if a, ok := rr.(*dns.A); ok {
				targets[a.Hdr.Name] = true
			}
		}
		for _, rr := range r.Answer {
			if srv, ok := rr.(*dns.SRV); ok && !targets[srv.Target] {
				t.Errorf("SRV %s without its target's address", srv)
			}
		}
	}
	r := f.query("udp", "web.service.consul.", dns.TypeSRV, 0)
	if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 100 {
		t.Errorf("UDP, no EDNS0: TC=%v with %d answers, want TC and some", r.Truncated, len(r.Answer))
	}
	check(r, 512)
	small := len(r.Answer)
	r = f.query("udp", "web.service.consul.", dns.TypeSRV, 4096)
	if !r.Truncated || len(r.Answer) <= small {
		t.Errorf("UDP, EDNS0 4096: TC=%v with %d answers, want TC and more than %d", r.Truncated, len(r.Answer), small)
	}
	check(r, DefaultMaxUDPSize)
	if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != DefaultMaxUDPSize {
		t.Errorf("EDNS0 in the answer: %v, want buffer size %d", opt, DefaultMaxUDPSize)
	}
	r = f.query("udp", "web.service.consul.", dns.TypeSRV, 800)
	check(r, 800)
	r = f.query("tcp", "web.service.consul.", dns.TypeSRV, 0)
	if r.Truncated || len(r.Answer) != 100 || len(r.Extra) != 100 {
		t.Errorf("TCP: TC=%v, %d answers and %d additional, want all 100", r.Truncated, len(r.Answer), len(r.Extra))
	}
	// The client's fallback: a truncated UDP answer, asked again over TCP.
	c := &dns.Client{Net: "udp"}
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeA)
	r, _, err := c.Exchange(m, f.srv.Addr().String())
	if err != nil || !r.Truncated {
		t.Fatalf("UDP A: %v, TC=%v", err, r != nil && r.Truncated)
	}
	c.Net = "tcp"
	if r, _, err = c.Exchange(m, f.srv.Addr().String()); err != nil || len(r.Answer) != 100 {
		t.Fatalf("TCP A: %v, %d answers", err, len(r.Answer))
	}
}

func TestARecordLimitAndShuffle(t *testing.T) {
	f := newFixture(t, Config{ARecordLimit: 5})
	f.many(100)
	seen := map[string]bool{}
	for range 20 {
		r := f.query("udp", "web.service.consul.", dns.TypeSRV, 0)
		if len(r.Answer) != 5 || r.Truncated {
			t.Fatalf("%d answers, TC=%v; want 5 and no TC (a limit is not a cut)", len(r.Answer), r.Truncated)
		}
		for _, rr := range r.Answer {
			seen[rr.(*dns.SRV).Target] = true
		}
	}
	// 20 draws of 5 among 100: a fixed order would show 5 targets.
	if len(seen) < 20 {
		t.Errorf("%d distinct targets in 20 answers: not shuffled", len(seen))
	}
}

func TestWeights(t *testing.T) {
	f := newFixture(t, Config{ARecordLimit: 1})
	f.node("a", "10.0.0.1", nil)
	f.node("b", "10.0.0.2", nil)
	heavy := catalogtest.Service("heavy", "web", 80)
	heavy.Weights = catalog.Weights{Passing: 99, Warning: 1}
	light := catalogtest.Service("light", "web", 81)
	light.Weights = catalog.Weights{Passing: 1, Warning: 1}
	f.service("a", heavy, catalog.StatusPassing)
	f.service("b", light, catalog.StatusPassing)
	first := map[uint16]int{}
	for range 200 {
		r := f.query("udp", "web.service.consul.", dns.TypeSRV, 0)
		first[r.Answer[0].(*dns.SRV).Port]++
	}
	// P(light first) = 1/100: 200 draws give about 2; 40 would be absurd.
	if first[80] < 160 {
		t.Errorf("heavy (weight 99) first %d of 200 times, light (1) %d", first[80], first[81])
	}
}

func TestTTLs(t *testing.T) {
	f := newFixture(t, Config{ServiceTTL: map[string]time.Duration{"*": 5 * time.Second, "we*": 10 * time.Second, "web": 30 * time.Second},
		NodeTTL: 7 * time.Second, NegativeTTL: 12 * time.Second})
	f.standard()
	f.node("n4", "10.0.0.4", nil)
	f.service("n4", catalogtest.Service("wea", "weather", 1), catalog.StatusPassing)
	for _, tt := range []struct {
		name  string
		qtype uint16
		want  uint32
	}{{"web.service.consul.", dns.TypeA, 30}, {"weather.service.consul.", dns.TypeA, 10},
		{"db.service.consul.", dns.TypeAAAA, 5}, {"n1.node.consul.", dns.TypeA, 7}} {
		r := f.query("udp", tt.name, tt.qtype, 0)
		if len(r.Answer) == 0 || r.Answer[0].Header().Ttl != tt.want {
			t.Errorf("%s: %v, want TTL %d", tt.name, r.Answer, tt.want)
		}
	}
	r := f.query("udp", "nope.service.consul.", dns.TypeA, 0)
	if len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 12 || r.Ns[0].(*dns.SOA).Minttl != 12 {
		t.Errorf("negative answer's SOA: %v, want TTL and minimum 12", r.Ns)
	}
}

func TestAltDomain(t *testing.T) {
	f := newFixture(t, Config{Domain: "rumor", AltDomain: "sd.example.com"})
	f.standard()
	for _, zone := range []string{"rumor.", "sd.example.com."} {
		r := f.query("udp", "web.service."+zone, dns.TypeSRV, 0)
		if len(r.Answer) != 2 || !strings.HasSuffix(r.Answer[0].(*dns.SRV).Target, ".dc1."+zone) {
			t.Errorf("%s: %v", zone, r.Answer)
		}
	}
	if r := f.query("udp", "web.service.consul.", dns.TypeSRV, 0); r.Rcode != dns.RcodeRefused {
		t.Errorf("consul. when not served: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

// fakeRecursor is a DNS server answering every A query with addr, or failing.
func fakeRecursor(t *testing.T, rcode int, delay time.Duration) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if delay > 0 {
			time.Sleep(delay) // stands for a slow upstream; not synchronisation
		}
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		if rcode == dns.RcodeSuccess {
			m.Answer = []dns.RR{&dns.A{Hdr: hdr(r.Question[0].Name, dns.TypeA, 60), A: net.IPv4(192, 0, 2, 1)}}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestRecursion(t *testing.T) {
	t.Run("off: refused", func(t *testing.T) {
		f := newFixture(t, Config{})
		if r := f.query("udp", "example.com.", dns.TypeA, 0); r.Rcode != dns.RcodeRefused || r.RecursionAvailable {
			t.Errorf("rcode %s RA=%v, want REFUSED without RA", dns.RcodeToString[r.Rcode], r.RecursionAvailable)
		}
	})
	t.Run("forwarded", func(t *testing.T) {
		f := newFixture(t, Config{Recursors: []string{fakeRecursor(t, dns.RcodeSuccess, 0)}})
		r := f.query("udp", "example.com.", dns.TypeA, 0)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.RecursionAvailable {
			t.Errorf("%v", r)
		}
		if r := f.query("tcp", "example.com.", dns.TypeA, 0); len(r.Answer) != 1 {
			t.Errorf("over TCP: %v", r)
		}
	})
	t.Run("a failing first recursor: the second answers", func(t *testing.T) {
		f := newFixture(t, Config{Recursors: []string{fakeRecursor(t, dns.RcodeServerFailure, 0), fakeRecursor(t, dns.RcodeSuccess, 0)}})
		if r := f.query("udp", "example.com.", dns.TypeA, 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("%v", r)
		}
	})
	t.Run("a slow first recursor: the second is asked after the stagger", func(t *testing.T) {
		f := newFixture(t, Config{Recursors: []string{fakeRecursor(t, dns.RcodeSuccess, 1500*time.Millisecond), fakeRecursor(t, dns.RcodeSuccess, 0)}})
		start := time.Now()
		r := f.query("udp", "example.com.", dns.TypeA, 0)
		if r.Rcode != dns.RcodeSuccess || time.Since(start) > time.Second {
			t.Errorf("%s after %s", dns.RcodeToString[r.Rcode], time.Since(start))
		}
	})
	t.Run("all fail: SERVFAIL", func(t *testing.T) {
		dead, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = dead.Close() })
		f := newFixture(t, Config{Recursors: []string{fakeRecursor(t, dns.RcodeServerFailure, 0), dead.LocalAddr().String()},
			RecursorTimeout: 300 * time.Millisecond})
		if r := f.query("udp", "example.com.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
	})
}

// TestMalformed: packets that do not parse get FORMERR when they have a header, and
// are dropped otherwise; queries of other opcodes get NOTIMP.
func TestMalformed(t *testing.T) {
	f := newFixture(t, Config{})
	conn, err := net.Dial("udp", f.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(b []byte) *dns.Msg {
		t.Helper()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		return m
	}
	// A header claiming one question, and no question.
	bad := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x'}
	if r := ask(bad); r.Id != 0x1234 || r.Rcode != dns.RcodeFormatError {
		t.Errorf("truncated question: id %x rcode %s, want 1234 FORMERR", r.Id, dns.RcodeToString[r.Rcode])
	}
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeA)
	m.Opcode = dns.OpcodeUpdate
	b, _ := m.Pack()
	if r := ask(b); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("UPDATE: %s, want NOTIMP", dns.RcodeToString[r.Rcode])
	}
	// Garbage shorter than a header is dropped; the server still answers after it.
	if _, err := conn.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	m.Opcode = dns.OpcodeQuery
	b, _ = m.Pack()
	if r := ask(b); r.Rcode != dns.RcodeNameError || r.Id != m.Id {
		t.Errorf("after garbage: %v", r)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, Config{Registerer: reg})
	f.standard()
	f.query("udp", "web.service.consul.", dns.TypeSRV, 0)
	f.query("udp", "nope.service.consul.", dns.TypeSRV, 0)
	f.query("tcp", "nope.service.consul.", dns.TypeSRV, 0)
	testkit.Poll(t, 5*time.Second, time.Millisecond, "the NOERROR counted", func() error {
		if got := testutil.ToFloat64(f.srv.metrics.queries.WithLabelValues("SRV", "NOERROR")); got != 1 {
			return fmt.Errorf("SRV NOERROR: %v, want 1", got)
		}
		return nil
	})
	// Counted after the answer is written: the client may read it first.
	testkit.Poll(t, 5*time.Second, time.Millisecond, "both NXDOMAIN counted", func() error {
		if got := testutil.ToFloat64(f.srv.metrics.queries.WithLabelValues("SRV", "NXDOMAIN")); got != 2 {
			return fmt.Errorf("SRV NXDOMAIN: %v, want 2", got)
		}
		return nil
	})
	n, err := testutil.GatherAndCount(reg, "rumor_dns_request_duration_seconds", "rumor_dns_shed_total")
	if err != nil || n != 4 { // one histogram, three shed reasons
		t.Errorf("series: %d, %v", n, err)
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", Catalog: f.cat, Registerer: reg}); err == nil {
		t.Error("a second server on one registry: no error")
	}
}

func TestConfigErrors(t *testing.T) {
	cat, _ := catalogtest.New(t, catalog.Config{})
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no addr", Config{Catalog: cat}, "no listen address"},
		{"bad addr", Config{Addr: "nowhere", Catalog: cat}, "listen address"},
		{"no catalog", Config{Addr: ":0"}, "no Catalog"},
		{"root zone", Config{Addr: ":0", Catalog: cat, Domain: "."}, "root zone"},
		{"bad domain", Config{Addr: ":0", Catalog: cat, Domain: "a..b"}, "not a domain name"},
		{"negative ttl", Config{Addr: ":0", Catalog: cat, ServiceTTL: map[string]time.Duration{"web": -1}}, `service TTL "web"`},
		{"udp size", Config{Addr: ":0", Catalog: cat, MaxUDPSize: 100}, "max UDP size 100"},
		{"limit", Config{Addr: ":0", Catalog: cat, ARecordLimit: -1}, "a_record_limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestQueue(t *testing.T) {
	var q queue
	q.init(5, 2)
	for i := range 7 {
		old, dropped := q.push(packet{n: i})
		if dropped != (i >= 5) || (dropped && old.n != i-5) {
			t.Errorf("push %d: dropped %v (%d)", i, dropped, old.n)
		}
	}
	// 2..6 wait: newest first while more than 2 wait, then oldest first.
	for _, want := range []struct {
		n       int
		backlog bool
	}{{6, true}, {5, true}, {4, true}, {2, false}, {3, false}} {
		if p, backlog, ok := q.pop(); !ok || p.n != want.n || backlog != want.backlog {
			t.Errorf("pop: %d backlog %v %v, want %d backlog %v", p.n, backlog, ok, want.n, want.backlog)
		}
	}
	q.close()
	if _, _, ok := q.pop(); ok {
		t.Error("pop after close: ok")
	}
}

// TestShedsStale: a query that waited past MaxQueueDelay behind a backlog is dropped
// and counted; without a backlog a late query is still answered.
func TestShedsStale(t *testing.T) {
	cat, _ := catalogtest.New(t, catalog.Config{})
	srv, err := New(Config{Addr: "127.0.0.1:0", Catalog: cat, LIFOAbove: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // queued before the worker starts: two behind a backlog, one not
		srv.q.push(packet{buf: bufPool.Get().(*[]byte), n: 0, at: time.Now().Add(-time.Second)})
	}
	done := make(chan struct{})
	go func() { srv.work(); close(done) }()
	testkit.Poll(t, 5*time.Second, time.Millisecond, "the queue to drain", func() error {
		srv.q.mu.Lock()
		n := srv.q.n
		srv.q.mu.Unlock()
		if n > 0 {
			return fmt.Errorf("%d queued", n)
		}
		return nil
	})
	srv.q.close()
	<-done
	if n := testutil.ToFloat64(srv.metrics.shed.WithLabelValues("too_old")); n != 2 {
		t.Errorf("shed %v, want 2", n)
	}
	if n := testutil.ToFloat64(srv.metrics.queries.WithLabelValues("", "dropped")); n != 1 {
		t.Errorf("handled %v, want 1 (garbage, dropped after reading)", n)
	}
}

func TestCloseIdempotent(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", Catalog: f.cat})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil { // never started
		t.Fatal(err)
	}
}

// fakeNear estimates the RTT to node n<i> as i ms.
type fakeNear struct{}

func (fakeNear) RTTsFrom(string) (map[string]time.Duration, bool) {
	m := map[string]time.Duration{}
	for i := range 100 {
		if i != 7 { // n7 has no coordinate
			m[fmt.Sprintf("n%d", i)] = time.Duration(100-i) * time.Millisecond
		}
	}
	return m, true
}

// TestOrderNear: with OrderNear, instances come nearest first.
func TestOrderNear(t *testing.T) {
	f := newFixture(t, Config{OrderNear: true, Near: fakeNear{}, ARecordLimit: 3})
	f.many(10)
	want := []string{"n9.node.dc1.consul.", "n8.node.dc1.consul.", "n6.node.dc1.consul."}
	testkit.Poll(t, 5*time.Second, time.Millisecond, "answers nearest first", func() error { // the estimates are read in the background
		r := f.query("udp", "web.service.consul.", dns.TypeSRV, 0)
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.(*dns.SRV).Target)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("order %v, want %v (nearest first, n7 unknown)", got, want)
		}
		return nil
	})
	if _, err := New(Config{Addr: ":0", Catalog: f.cat, OrderNear: true}); err == nil || !strings.Contains(err.Error(), "needs Near") {
		t.Errorf("OrderNear without Near: %v", err)
	}
}

// TestServiceNameCase: a service registered with capitals is found by any spelling,
// and one registered later is found too (the name index follows TopicServices).
func TestServiceNameCase(t *testing.T) {
	f := newFixture(t, Config{})
	f.node("n1", "10.0.0.1", nil)
	if r := f.query("udp", "api.service.consul.", dns.TypeA, 0); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %s", dns.RcodeToString[r.Rcode])
	}
	f.service("n1", catalogtest.Service("API-1", "API", 80), catalog.StatusPassing)
	for _, q := range []string{"api.service.consul.", "API.service.consul.", "_Api._tcp.service.consul."} {
		if r := f.query("udp", q, dns.TypeA, 0); len(r.Answer) != 1 {
			t.Errorf("%s: %v", q, r)
		}
	}
	if r := f.query("udp", "api-1-n1._api._tcp.consul.", dns.TypeSRV, 0); len(r.Answer) != 1 {
		t.Errorf("DNS-SD instance: %v", r)
	}
}
