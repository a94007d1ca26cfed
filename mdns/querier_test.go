package mdns

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testQuerier is a querier without sockets on eth0, browsing _rumor._udp, that
// records the queries it sends.
type testQuerier struct {
	*querier
	t    *testing.T
	sent []*dns.Msg
	raw  [][]byte
	// clockRef, in the link test, hands the querier's emit the shared clock.
	clockRef func(*time.Time)
}

func newTestQuerier(t *testing.T) *testQuerier {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tq := &testQuerier{querier: newQuerier(slog.New(slog.DiscardHandler), m, []string{"_rumor._udp"}, false, nil, nil), t: t}
	tq.emit = func(_ *net.Interface, b []byte) {
		msg := new(dns.Msg)
		if err := msg.Unpack(b); err != nil {
			t.Fatalf("the querier sent a packet that does not unpack: %v", err)
		}
		tq.sent = append(tq.sent, msg)
		tq.raw = append(tq.raw, slices.Clone(b))
	}
	tq.ifaces["eth0"] = testIfaces["eth0"]
	tq.caches["eth0"] = newCache()
	return tq
}

const rumorPTR = "_rumor._udp.local."

// peer puts one complete _rumor._udp instance (PTR, SRV, TXT, A) in the cache, as if
// announced at now.
func (tq *testQuerier) peer(i int, now time.Time) {
	inst := fmt.Sprintf("n%d.%s", i, rumorPTR)
	host := fmt.Sprintf("n%d.local.", i)
	c := tq.caches["eth0"]
	for _, rr := range []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: rumorPTR, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: otherTTL}, Ptr: inst},
		&dns.SRV{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: hostTTL}, Target: host, Port: 7946},
		&dns.TXT{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: otherTTL}, Txt: []string{"v=1"}},
		&dns.A{Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: hostTTL}, A: net.IPv4(10, 0, 0, byte(10+i))},
	} {
		c.add(rr, now)
	}
}

// hear gives the querier a packet from another host on eth0.
func (tq *testQuerier) hear(m *dns.Msg, from string, now time.Time) {
	tq.t.Helper()
	b, err := m.Pack()
	if err != nil {
		tq.t.Fatal(err)
	}
	tq.hearRaw(b, from, now)
}

func (tq *testQuerier) hearRaw(b []byte, from string, now time.Time) {
	tq.handle(packet{ifindex: testIfaces["eth0"].Index, src: netip.MustParseAddrPort(from), data: b}, now)
}

// asked returns how many of the packets sent from index i on ask q.
func (tq *testQuerier) asked(i int, name string, qtype uint16) int {
	n := 0
	for _, m := range tq.sent[i:] {
		for _, q := range m.Question {
			if dns.CanonicalName(q.Name) == dns.CanonicalName(name) && q.Qtype == qtype {
				n++
			}
		}
	}
	return n
}

// browseQuery is another host's query for _rumor._udp with the PTRs of peers as
// known answers, their TTL as a cache holding them since announced would list it.
func browseQuery(peers []int, qu bool) *dns.Msg {
	m := new(dns.Msg)
	cls := uint16(dns.ClassINET)
	if qu {
		cls |= cacheFlushBit
	}
	m.Question = []dns.Question{{Name: rumorPTR, Qtype: dns.TypePTR, Qclass: cls}}
	for _, i := range peers {
		m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: rumorPTR, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: otherTTL - 60},
			Ptr: fmt.Sprintf("n%d.%s", i, rumorPTR)})
	}
	return m
}

// TestQuerierBackoff: browse queries go out after 20–120 ms, then 1, 2, 4 … s apart,
// up to an hour (RFC 6762 §5.2), each with the known answers (§7.1).
func TestQuerierBackoff(t *testing.T) {
	tq := newTestQuerier(t)
	now := time.Unix(1_000_000, 0)
	tq.peer(1, now)
	var at []time.Duration
	start := now
	for step := 0; now.Sub(start) < 3*time.Hour; step++ {
		n := len(tq.sent)
		tq.tick(now)
		if tq.asked(n, rumorPTR, dns.TypePTR) > 0 {
			at = append(at, now.Sub(start))
			if got := len(tq.sent[n].Answer); got != 1 {
				t.Fatalf("query at %s lists %d known answers, want 1", now.Sub(start), got)
			}
		}
		tq.peer(1, now) // keep the peer's records fresh: only browse queries count
		now = tq.nextEvent(now)
	}
	if len(at) < 14 || at[0] < 20*time.Millisecond || at[0] > 120*time.Millisecond {
		t.Fatalf("browse queries at %v: want the first after 20–120 ms and at least 14 in 3 h", at)
	}
	for i := 2; i < len(at); i++ {
		gap, prev := at[i]-at[i-1], at[i-1]-at[i-2]
		want := min(2*prev, maxQueryInterval)
		if i == 2 {
			want = 2 * firstQueryInterval
		}
		if d := gap - want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("interval %d: %s, want %s (queries at %v)", i, gap, want, at)
		}
	}
	if last := at[len(at)-1] - at[len(at)-2]; last != maxQueryInterval {
		t.Errorf("last interval %s, want %s", last, maxQueryInterval)
	}
}

// stepTo ticks the querier at its events up to until.
func (tq *testQuerier) stepTo(now *time.Time, until time.Time) {
	tq.tick(*now)
	for {
		next := tq.nextEvent(*now)
		if next.After(until) {
			*now = until
			tq.tick(until)
			return
		}
		*now = next
		tq.tick(next)
	}
}

// TestQuerierDuplicateQuestion: a browse query is not sent when another host asked
// the same QM question since its previous turn, listing no known answer this
// querier lacks (RFC 6762 §7.3); it still goes when the other's known answers hold
// one this querier lacks (a truncated query's later packets included), when the
// other asked QU, and when what was heard was this querier's own query.
func TestQuerierDuplicateQuestion(t *testing.T) {
	const other = "10.0.0.2:5353"
	cases := []struct {
		name     string
		hear     func(tq *testQuerier, now time.Time)
		suppress bool
	}{
		{"same question, same known answers", func(tq *testQuerier, now time.Time) { tq.hear(browseQuery([]int{1, 2}, false), other, now) }, true},
		{"same question, fewer known answers", func(tq *testQuerier, now time.Time) { tq.hear(browseQuery([]int{2}, false), other, now) }, true},
		{"a known answer this querier lacks", func(tq *testQuerier, now time.Time) { tq.hear(browseQuery([]int{1, 2, 3}, false), other, now) }, false},
		{"QU question", func(tq *testQuerier, now time.Time) { tq.hear(browseQuery([]int{1, 2}, true), other, now) }, false},
		{"legacy querier", func(tq *testQuerier, now time.Time) { tq.hear(browseQuery([]int{1, 2}, false), "10.0.0.2:40000", now) }, false},
		{"truncated, the rest lacks nothing", func(tq *testQuerier, now time.Time) {
			first := browseQuery([]int{1}, false)
			first.Truncated = true
			tq.hear(first, other, now)
			rest := browseQuery([]int{2}, false)
			rest.Question = nil
			tq.hear(rest, other, now.Add(450*time.Millisecond))
		}, true},
		{"truncated, the rest lists one this querier lacks", func(tq *testQuerier, now time.Time) {
			first := browseQuery([]int{1}, false)
			first.Truncated = true
			tq.hear(first, other, now)
			rest := browseQuery([]int{3}, false)
			rest.Question = nil
			tq.hear(rest, other, now.Add(450*time.Millisecond))
		}, false},
		{"truncated, the rest not yet due when the turn comes", func(tq *testQuerier, now time.Time) {
			first := browseQuery([]int{1}, false)
			first.Truncated = true
			tq.hear(first, other, tq.types["_rumor._udp"].next.Add(-100*time.Millisecond))
		}, false},
		{"its own query's echo", func(tq *testQuerier, now time.Time) {
			tq.hearRaw(tq.raw[len(tq.raw)-1], "10.0.0.1:5353", now)
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tq := newTestQuerier(t)
			now := time.Unix(1_000_000, 0)
			tq.peer(1, now)
			tq.peer(2, now)
			// Reach the 8-s interval: queries at ~0.1, 1.1, 3.1, 7.1 s, next at 15.1.
			tq.stepTo(&now, now.Add(8*time.Second))
			if got := tq.asked(0, rumorPTR, dns.TypePTR); got != 4 {
				t.Fatalf("%d browse queries in the first 8 s, want 4", got)
			}
			s := tq.types["_rumor._udp"]
			due, interval := s.next, s.interval
			c.hear(tq, now)
			n := len(tq.sent)
			tq.stepTo(&now, due.Add(10*time.Millisecond))
			suppressed := tq.asked(n, rumorPTR, dns.TypePTR) == 0
			if suppressed != c.suppress {
				t.Fatalf("query at %s suppressed: %v, want %v", due.Sub(time.Unix(1_000_000, 0)), suppressed, c.suppress)
			}
			// Sent or not, the schedule goes on doubling, and the next turn, with
			// nothing heard since, sends.
			if s.interval != 2*interval {
				t.Errorf("interval after the turn %s, want %s", s.interval, 2*interval)
			}
			n = len(tq.sent)
			tq.stepTo(&now, s.next.Add(10*time.Millisecond))
			if got := tq.asked(n, rumorPTR, dns.TypePTR); got != 1 {
				t.Errorf("the next turn sent %d browse queries, want 1", got)
			}
		})
	}
}

// TestQuerierRefreshSuppressed: a record's refresh query (80 % of its TTL) is not
// sent when another host asked for the record within the last refresh step (5 % of
// the TTL), and is sent otherwise.
func TestQuerierRefreshSuppressed(t *testing.T) {
	inst := "n1." + rumorPTR
	for _, heard := range []bool{false, true} {
		t.Run(fmt.Sprintf("heard=%v", heard), func(t *testing.T) {
			tq := newTestQuerier(t)
			start := time.Unix(1_000_000, 0)
			now := start
			tq.peer(1, now)
			ttl := time.Duration(hostTTL) * time.Second
			if heard {
				m := new(dns.Msg)
				m.Question = []dns.Question{{Name: inst, Qtype: dns.TypeSRV, Qclass: dns.ClassINET}}
				tq.hear(m, "10.0.0.2:5353", start.Add(ttl*79/100))
			}
			n := len(tq.sent)
			tq.stepTo(&now, start.Add(ttl*83/100))
			got := tq.asked(n, inst, dns.TypeSRV)
			if want := map[bool]int{false: 1, true: 0}[heard]; got != want {
				t.Fatalf("%d refresh queries for the SRV by 83 %% of its TTL, want %d", got, want)
			}
			// The next refresh point (85 %) asks unless answered meanwhile.
			n = len(tq.sent)
			tq.stepTo(&now, start.Add(ttl*88/100))
			if got := tq.asked(n, inst, dns.TypeSRV); got != 1 {
				t.Errorf("%d refresh queries at 85 %%, want 1", got)
			}
		})
	}
}

// TestQuerierLinkBrowseTraffic: n queriers on one simulated link (every query
// reaches every querier, its own included, at once), all holding the same n peers'
// PTRs, over 10 minutes of virtual time. Without duplicate question suppression
// every querier sends its browse query at every step of its backoff (10 steps in
// 10 min, each query a packet of n known answers: 200 queries, 213,000 bytes at
// n = 20); with it only the first step goes out from all (their caches were just
// filled, nobody has heard anyone yet), and then one querier per step (29 queries,
// 30,885 bytes).
func TestQuerierLinkBrowseTraffic(t *testing.T) {
	const n = 20
	start := time.Unix(1_000_000, 0)
	qs := make([]*testQuerier, n)
	var browse, bytes int
	for i := range qs {
		qs[i] = newTestQuerier(t)
		for p := range n {
			qs[i].peer(p, start)
		}
		qs[i].tick(start)
	}
	for i, tq := range qs {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}), mdnsPort).String()
		var clock *time.Time
		tq.emit = func(_ *net.Interface, b []byte) {
			m := new(dns.Msg)
			if err := m.Unpack(b); err != nil {
				t.Fatal(err)
			}
			for _, q := range m.Question {
				if q.Name == rumorPTR {
					browse++
				}
			}
			if len(m.Question) == 0 || slices.ContainsFunc(m.Question, func(q dns.Question) bool { return q.Name == rumorPTR }) {
				bytes += len(b)
			}
			for _, other := range qs {
				other.hearRaw(b, src, *clock)
			}
		}
		tq.clockRef = func(c *time.Time) { clock = c }
	}
	now := start
	for _, tq := range qs {
		tq.clockRef(&now)
	}
	for now.Sub(start) < 10*time.Minute {
		next, who := start.Add(time.Hour), -1
		for i, tq := range qs {
			if e := tq.nextEvent(now); e.Before(next) {
				next, who = e, i
			}
		}
		now = next
		qs[who].tick(now)
	}
	t.Logf("%d queriers, 10 min: %d browse queries, %d bytes of them (%.1f B/s per querier, one address family)",
		n, browse, bytes, float64(bytes)/n/600)
	// The first step: n queries. Then one per step (9 more in 10 min), and a few more
	// where two turns fall within the same instant.
	if browse < n+9 || browse > n+12 {
		t.Errorf("%d browse queries, want %d–%d", browse, n+9, n+12)
	}
}

// TestQuerierForgetsAnsweredQuestions: a question for what a browsed instance lacked
// leaves the schedule once nothing lacks it, however the record came. Before, its
// past next time kept nextEvent due, and the querier's loop ran every millisecond
// (seen at 50 agents: a quarter of a core each on the agents that joined last).
func TestQuerierForgetsAnsweredQuestions(t *testing.T) {
	tq := newTestQuerier(t)
	now := time.Unix(1_000_000, 0)
	inst := "n1." + rumorPTR
	tq.caches["eth0"].add(&dns.PTR{Hdr: dns.RR_Header{Name: rumorPTR, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: otherTTL}, Ptr: inst}, now)
	tq.stepTo(&now, now.Add(2*time.Second))
	if tq.asked(0, inst, dns.TypeSRV) == 0 {
		t.Fatal("the querier never asked for the instance's missing SRV record")
	}
	tq.peer(1, now)            // the rest arrives, not through handle
	now = now.Add(time.Minute) // past the SRV question's next time
	tq.peer(1, now)
	tq.tick(now)
	if next := tq.nextEvent(now); !next.After(now) {
		t.Fatalf("next event at %s, not after now (%s): the loop would spin", next, now)
	}
}
