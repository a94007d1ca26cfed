package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeReach is a Reachability whose unreachable addresses the test sets; it is
// Active while some address is down and records what it was asked.
type fakeReach struct {
	mu    sync.Mutex
	down  map[string]bool
	asked []string
}

func (r *fakeReach) Reachable(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, addr)
	return !r.down[addr]
}

func (r *fakeReach) Active() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.down) > 0
}

func (r *fakeReach) set(down ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = map[string]bool{}
	for _, a := range down {
		r.down[a] = true
	}
	r.asked = nil
}

func (r *fakeReach) askedAbout() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.asked)
}

// manyAddr is the "ip:port" of many's instance i, and its A record's address.
func manyAddr(i int) (hostPort, ip string) {
	ip = fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
	return fmt.Sprintf("%s:%d", ip, 8000+i), ip
}

// answerIPs returns the A records' addresses of an answer, in its order.
func answerIPs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// TestReachableFirst: instances this host cannot reach come after all the others in
// every answer, whatever the shuffle draws; a reachability change shows in the next
// answer although the catalog (and so the cached entry) did not move.
func TestReachableFirst(t *testing.T) {
	reach := &fakeReach{}
	f := newFixture(t, Config{Reachability: reach})
	f.many(10)
	// Cached before any address is known unreachable; not Active: nothing asked.
	if r := f.query("tcp", "web.service.consul.", dns.TypeA, 0); len(r.Answer) != 10 {
		t.Fatalf("before: %d answers, want 10", len(r.Answer))
	}
	if a := reach.askedAbout(); len(a) != 0 {
		t.Errorf("asked %v while reachability is inactive, want nothing", a)
	}
	down3, ip3 := manyAddr(3)
	down5, ip5 := manyAddr(5)
	reach.set(down3, down5)
	for q := range 20 {
		got := answerIPs(f.query("tcp", "web.service.consul.", dns.TypeA, 0))
		if len(got) != 10 {
			t.Fatalf("query %d: %d answers, want all 10: %v", q, len(got), got)
		}
		if last := got[8:]; !slices.Contains(last, ip3) || !slices.Contains(last, ip5) {
			t.Fatalf("query %d: unreachable %s and %s not last: %v", q, ip3, ip5, got)
		}
	}
	// SRV: the unreachable instances' records come last too.
	r := f.query("tcp", "web.service.consul.", dns.TypeSRV, 0)
	if len(r.Answer) != 10 {
		t.Fatalf("SRV: %d answers", len(r.Answer))
	}
	for _, rr := range r.Answer[8:] {
		if p := rr.(*dns.SRV).Port; p != 8003 && p != 8005 {
			t.Errorf("SRV: port %d among the last two, want 8003 and 8005: %v", p, rrs(r.Answer))
		}
	}
	// Back to reachable: no longer last (with 20 draws, one puts them elsewhere).
	reach.set()
	moved := false
	for range 20 {
		got := answerIPs(f.query("tcp", "web.service.consul.", dns.TypeA, 0))
		if i := slices.Index(got, ip3); i >= 0 && i < 8 {
			moved = true
			break
		}
	}
	if !moved {
		t.Errorf("%s still last in 20 answers after it became reachable", ip3)
	}
}

// TestReachableLimit: with a_record_limit, the instances picked are reachable ones
// while there are enough, and unreachable ones fill the rest.
func TestReachableLimit(t *testing.T) {
	reach := &fakeReach{}
	f := newFixture(t, Config{Reachability: reach, ARecordLimit: 3})
	f.many(10)
	var down []string
	for i := 2; i < 10; i++ {
		a, _ := manyAddr(i)
		down = append(down, a)
	}
	reach.set(down...)
	_, ip0 := manyAddr(0)
	_, ip1 := manyAddr(1)
	for q := range 20 {
		got := answerIPs(f.query("udp", "web.service.consul.", dns.TypeA, 0))
		if len(got) != 3 || !slices.Contains(got[:2], ip0) || !slices.Contains(got[:2], ip1) {
			t.Fatalf("query %d: %v, want %s and %s first, then one unreachable", q, got, ip0, ip1)
		}
	}
}

// TestOnlyReachable: with OnlyReachable the instances this host cannot reach are left
// out (service, tag and DNS-SD names); when none is left the answer is NODATA with
// the zone's SOA; the metric counts them.
func TestOnlyReachable(t *testing.T) {
	reach := &fakeReach{}
	f := newFixture(t, Config{Reachability: reach, OnlyReachable: true})
	f.standard()
	if r := f.query("udp", "web.service.consul.", dns.TypeA, 0); len(r.Answer) != 2 {
		t.Fatalf("before: %v", rrs(r.Answer))
	}
	reach.set("10.0.1.2:8081") // web-2, at its own address
	r := f.query("udp", "web.service.consul.", dns.TypeA, 0)
	if got := rrs(r.Answer); len(got) != 1 || !strings.HasSuffix(got[0], "10.0.0.1") {
		t.Errorf("web A: %v, want only web-1 (10.0.0.1)", got)
	}
	r = f.query("udp", "_web._tcp.consul.", dns.TypePTR, 0)
	if got := rrs(r.Answer); len(got) != 1 || !strings.Contains(got[0], "web-1-n1") {
		t.Errorf("DNS-SD PTR: %v, want only web-1", got)
	}
	r = f.query("udp", "v2.web.service.consul.", dns.TypeSRV, 0)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("v2 (only web-2, unreachable): rcode %s, answer %v, authority %v; want NODATA with the SOA",
			dns.RcodeToString[r.Rcode], rrs(r.Answer), rrs(r.Ns))
	}
	if n := testutil.ToFloat64(f.srv.metrics.unreachable); n != 3 {
		t.Errorf("rumor_dns_unreachable_instances_total %v, want 3", n)
	}
	reach.set()
	if r := f.query("udp", "v2.web.service.consul.", dns.TypeSRV, 0); len(r.Answer) != 1 {
		t.Errorf("v2 after web-2 is reachable again: %v", rrs(r.Answer))
	}
}
