package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The mDNS groups and port (RFC 6762 §3).
var (
	groupV4 = netip.MustParseAddr("224.0.0.251")
	groupV6 = netip.MustParseAddr("ff02::fb")
)

const mdnsPort = 5353

// Query intervals (RFC 6762 §5.2): the first query goes out after 20–120 ms, the
// second a second later, and each interval then doubles up to maxQueryInterval.
const (
	firstQueryInterval = time.Second
	maxQueryInterval   = time.Hour
)

// questionRetry is the first wait before a question for missing data (an SRV, a
// TXT, addresses) is asked again; each later try doubles it, up to maxQueryInterval.
const questionRetry = time.Second

// packetBudget bounds an outgoing query packet, known answers included; further known
// answers go in follow-up packets with the TC bit (RFC 6762 §7.2).
const packetBudget = 1400

// snapshotKey names one browsed view: a service type on an interface.
type snapshotKey struct{ iface, typ string }

// querier is the continuous mDNS querier: it keeps one cache per interface and
// reports, for every browsed type, the instances seen on each interface whenever they
// change. Its loop owns the caches; sockets are read by one goroutine each.
type querier struct {
	log      *slog.Logger
	metrics  *metrics
	onChange func(iface, typ string, insts []Instance)
	onTypes  func(types []string)

	v4 *ipv4.PacketConn
	v6 *ipv6.PacketConn

	sendMu sync.Mutex // SetMulticastInterface + WriteTo go together

	// tap, when set before run, receives every packet read on an interface, queries
	// and packets from other ports included (the responder); it must not block.
	tap func(packet)

	packets chan packet
	ifaceCh chan []string

	// emit puts one packed query on the wire on ifi (q.write with the query
	// counters; tests replace it).
	emit func(ifi *net.Interface, b []byte)
	// echo recognises the querier's own queries when they come back (multicast
	// loopback), so that they never suppress the querier's next ones.
	echo *echoFilter

	// Owned by the loop.
	ifaces    map[string]*net.Interface
	caches    map[string]*cache
	types     map[string]*schedule // by service type, "_http._tcp"; servicesMeta too
	asked     map[snapshotKey]map[dns.Question]*schedule
	last      map[snapshotKey][]Instance
	lastTypes []string
	// heard holds, per interface, the questions other hosts asked recently whose
	// known answers were all ones this querier would list too (duplicate question
	// suppression, RFC 6762 §7.3).
	heard map[string]map[dns.Question]heardQuery
}

// heardQuery is another host's question: when, and from where (a truncated query's
// known answers go on in the next packets from the same address, §7.2).
type heardQuery struct {
	at        time.Time
	src       netip.AddrPort
	truncated bool
}

// heardKeep is how long a heard question is remembered: longer than any refresh
// step (5 % of a 75-min TTL is 225 s) and than the first query intervals, shorter
// than a browse interval at its hour.
const heardKeep = 5 * time.Minute

// continuationWait bounds how long after a truncated query its further known-answer
// packets are taken as part of it (§7.2: 400–500 ms apart at most).
const continuationWait = time.Second

type schedule struct {
	next     time.Time
	interval time.Duration
	// prev is when the previous query of this schedule was due (sent, or
	// suppressed because another host asked the same, §7.3).
	prev time.Time
}

type packet struct {
	ifindex int
	src     netip.AddrPort
	data    []byte
}

// openQuerier opens the mDNS sockets (shared with other responders on the host,
// Avahi included: Go sets SO_REUSEADDR on multicast listeners) and browses types.
// browseTypes says whether to enumerate service types too.
func openQuerier(log *slog.Logger, m *metrics, types []string, browseTypes bool,
	onChange func(iface, typ string, insts []Instance), onTypes func([]string)) (*querier, error) {
	q := newQuerier(log, m, types, browseTypes, onChange, onTypes)
	var errs []error
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: groupV4.AsSlice(), Port: mdnsPort}); err != nil {
		errs = append(errs, fmt.Errorf("IPv4: %w", err))
	} else {
		q.v4 = ipv4.NewPacketConn(c)
		_ = q.v4.SetControlMessage(ipv4.FlagInterface, true)
		_ = q.v4.SetMulticastTTL(255)
		_ = q.v4.SetMulticastLoopback(true)
	}
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: groupV6.AsSlice(), Port: mdnsPort}); err != nil {
		errs = append(errs, fmt.Errorf("IPv6: %w", err))
	} else {
		q.v6 = ipv6.NewPacketConn(c)
		_ = q.v6.SetControlMessage(ipv6.FlagInterface, true)
		_ = q.v6.SetMulticastHopLimit(255)
		_ = q.v6.SetMulticastLoopback(true)
	}
	if q.v4 == nil && q.v6 == nil {
		return nil, fmt.Errorf("mdns: open the mDNS sockets: %w", errors.Join(errs...))
	}
	return q, nil
}

// newQuerier is a querier without sockets (openQuerier opens them; tests set emit).
func newQuerier(log *slog.Logger, m *metrics, types []string, browseTypes bool,
	onChange func(iface, typ string, insts []Instance), onTypes func([]string)) *querier {
	q := &querier{log: log, metrics: m, onChange: onChange, onTypes: onTypes,
		packets: make(chan packet, 256), ifaceCh: make(chan []string, 1),
		ifaces: map[string]*net.Interface{}, caches: map[string]*cache{}, types: map[string]*schedule{},
		asked: map[snapshotKey]map[dns.Question]*schedule{}, last: map[snapshotKey][]Instance{},
		heard: map[string]map[dns.Question]heardQuery{}, echo: newEchoFilter()}
	q.emit = func(ifi *net.Interface, b []byte) { q.write(ifi, b, q.metrics.sent, q.metrics.sentBytes) }
	for _, t := range types {
		q.types[t] = &schedule{}
	}
	if browseTypes {
		q.types[servicesMeta] = &schedule{}
	}
	return q
}

// setIfaces tells the loop which interfaces to use; it never blocks (a newer list
// replaces one not yet taken).
func (q *querier) setIfaces(names []string) {
	select {
	case <-q.ifaceCh:
	default:
	}
	q.ifaceCh <- slices.Clone(names)
}

// run reads and queries until ctx ends, then closes the sockets.
func (q *querier) run(ctx context.Context) {
	var wg sync.WaitGroup
	if q.v4 != nil {
		wg.Go(func() { q.read4(ctx) })
	}
	if q.v6 != nil {
		wg.Go(func() { q.read6(ctx) })
	}
	q.loop(ctx)
	if q.v4 != nil {
		_ = q.v4.Close()
	}
	if q.v6 != nil {
		_ = q.v6.Close()
	}
	wg.Wait()
}

func (q *querier) read4(ctx context.Context) {
	for {
		b := make([]byte, maxPacket)
		n, cm, src, err := q.v4.ReadFrom(b)
		if err != nil {
			return
		}
		if cm == nil {
			continue
		}
		p := packet{ifindex: cm.IfIndex, src: addrPort(src), data: b[:n]}
		if q.tap != nil {
			q.tap(p)
		}
		if fromMDNSPort(src) {
			q.deliver(ctx, p)
		}
	}
}

func (q *querier) read6(ctx context.Context) {
	for {
		b := make([]byte, maxPacket)
		n, cm, src, err := q.v6.ReadFrom(b)
		if err != nil {
			return
		}
		if cm == nil {
			continue
		}
		p := packet{ifindex: cm.IfIndex, src: addrPort(src), data: b[:n]}
		if q.tap != nil {
			q.tap(p)
		}
		if fromMDNSPort(src) {
			q.deliver(ctx, p)
		}
	}
}

// addrPort turns a UDP source address into a netip.AddrPort (with its zone).
func addrPort(a net.Addr) netip.AddrPort {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ip, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip.Unmap().WithZone(u.Zone), uint16(u.Port))
}

// fromMDNSPort: responses must come from port 5353 (RFC 6762 §6, §11).
func fromMDNSPort(a net.Addr) bool {
	u, ok := a.(*net.UDPAddr)
	return ok && u.Port == mdnsPort
}

// deliver hands a packet to the loop, dropping it (like the network would) when the
// loop is behind.
func (q *querier) deliver(ctx context.Context, p packet) {
	select {
	case q.packets <- p:
	case <-ctx.Done():
	default:
		q.metrics.dropped.Inc()
	}
}

// loop owns the caches: it takes packets, interface changes and timers in turn.
func (q *querier) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		q.tick(now)
		q.publish()
		wait := time.Until(q.nextEvent(now))
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case names := <-q.ifaceCh:
			q.applyIfaces(names)
		case p := <-q.packets:
			q.handle(p, time.Now())
			// Take what else is waiting before recomputing the views.
			for more := true; more; {
				select {
				case p := <-q.packets:
					q.handle(p, time.Now())
				default:
					more = false
				}
			}
		case <-timer.C:
		}
	}
}

// applyIfaces joins the groups on new interfaces and forgets the caches of gone ones.
func (q *querier) applyIfaces(names []string) {
	want := map[string]*net.Interface{}
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			continue
		}
		want[n] = ifi
	}
	for n, ifi := range q.ifaces {
		if w, ok := want[n]; ok && w.Index == ifi.Index {
			continue
		}
		if q.v4 != nil {
			_ = q.v4.LeaveGroup(ifi, &net.UDPAddr{IP: groupV4.AsSlice()})
		}
		if q.v6 != nil {
			_ = q.v6.LeaveGroup(ifi, &net.UDPAddr{IP: groupV6.AsSlice()})
		}
		delete(q.ifaces, n)
		delete(q.caches, n)
		delete(q.heard, n)
		q.log.Info("mdns: interface dropped", "iface", n)
	}
	for n, ifi := range want {
		if _, ok := q.ifaces[n]; ok {
			continue
		}
		joined := false
		if q.v4 != nil && q.v4.JoinGroup(ifi, &net.UDPAddr{IP: groupV4.AsSlice()}) == nil {
			joined = true
		}
		if q.v6 != nil && q.v6.JoinGroup(ifi, &net.UDPAddr{IP: groupV6.AsSlice()}) == nil {
			joined = true
		}
		if !joined {
			q.log.Warn("mdns: could not join the mDNS group", "iface", n)
			continue
		}
		q.ifaces[n] = ifi
		q.caches[n] = newCache()
		q.log.Info("mdns: using interface", "iface", n)
	}
	// New interfaces get a fresh round of queries.
	for _, s := range q.types {
		s.next, s.interval = time.Time{}, 0
	}
}

// handle puts a packet's records into the cache of the interface it arrived on.
func (q *querier) handle(p packet, now time.Time) {
	var iface string
	for n, ifi := range q.ifaces {
		if ifi.Index == p.ifindex {
			iface = n
		}
	}
	if iface == "" {
		return
	}
	q.metrics.received.Inc()
	rrs, err := parseResponse(p.data)
	if errors.Is(err, errNotResponse) {
		q.heardQuery(iface, p, now)
		return
	}
	if err != nil {
		q.metrics.malformed.Inc()
		return
	}
	c := q.caches[iface]
	// PTRs first, then SRV and TXT, then addresses: what a record is wanted for
	// depends on the records before it.
	slices.SortStableFunc(rrs, func(a, b dns.RR) int { return typeRank(a) - typeRank(b) })
	for _, rr := range rrs {
		if q.wanted(c, rr) {
			c.add(rr, now)
		}
	}
}

func typeRank(rr dns.RR) int {
	switch rr.Header().Rrtype {
	case dns.TypePTR:
		return 0
	case dns.TypeSRV, dns.TypeTXT:
		return 1
	}
	return 2
}

// wanted reports whether a record belongs in the cache: a PTR of a browsed type, the
// SRV or TXT of an instance of one, or an address of a host an SRV names. Everything
// else is left out, so unrelated traffic costs no memory.
func (q *querier) wanted(c *cache, rr dns.RR) bool {
	h := rr.Header()
	name := strings.ToLower(h.Name)
	switch h.Rrtype {
	case dns.TypePTR:
		if name == servicesMeta {
			_, ok := q.types[servicesMeta]
			return ok
		}
		_, ok := q.types[strings.TrimSuffix(name, ".local.")]
		return ok && strings.HasSuffix(name, ".local.")
	case dns.TypeSRV, dns.TypeTXT:
		labels := dns.SplitDomainName(name)
		if len(labels) != 4 || labels[3] != "local" {
			return false
		}
		_, ok := q.types[labels[1]+"."+labels[2]]
		return ok
	case dns.TypeA, dns.TypeAAAA:
		for k, e := range c.entries {
			if k.typ == dns.TypeSRV && strings.EqualFold(e.rr.(*dns.SRV).Target, name) {
				return true
			}
		}
	}
	return false
}

// tick expires records and sends the queries that are due: browse queries on their
// backoff schedule, refreshes of cached records, and questions for missing data.
func (q *querier) tick(now time.Time) {
	for _, c := range q.caches {
		c.expire(now)
	}
	for iface, ifi := range q.ifaces {
		c := q.caches[iface]
		var qs []dns.Question
		var known []dns.RR
		for t, s := range q.types {
			if s.next.IsZero() || now.Before(s.next) {
				continue
			}
			qn := dns.Question{Name: browseName(t), Qtype: dns.TypePTR, Qclass: dns.ClassINET}
			// Duplicate question suppression (§7.3): another host asked the same
			// since this query's previous turn, with no known answer this querier
			// lacks, so the answers it wants went (or were left out) for it too.
			if q.heardSince(iface, qn, s.prev, now) {
				continue
			}
			qs = append(qs, qn)
			known = append(known, knownAnswers(c, qn, now)...)
		}
		// A refresh another host asked for in the last refresh step is answered
		// for every cache on the link (§7.3).
		for _, rq := range c.dueRefreshes(now) {
			if !q.heardWithin(iface, rq.Question, now, rq.step) {
				qs = append(qs, rq.Question)
			}
		}
		qs = append(qs, q.dueMissing(iface, now)...)
		if len(qs) > 0 {
			q.send(ifi, qs, known)
		}
	}
	for _, s := range q.types {
		switch {
		case s.next.IsZero():
			s.next = now.Add(time.Duration(20+rand.IntN(100)) * time.Millisecond)
		case !now.Before(s.next):
			s.prev = s.next
			s.interval = min(max(2*s.interval, firstQueryInterval), maxQueryInterval)
			s.next = now.Add(s.interval)
		}
	}
	q.pruneHeard(now)
}

// browseName is the PTR name browsed for a type ("_http._tcp", or servicesMeta).
func browseName(t string) string {
	if t == servicesMeta {
		return t
	}
	return t + ".local."
}

// knownAnswers are the answers to a PTR question the querier lists in its query
// (Known-Answer suppression, RFC 6762 §7.1): those held with more than half their
// TTL still to run, with the TTL that remains.
func knownAnswers(c *cache, qn dns.Question, now time.Time) []dns.RR {
	if qn.Qtype != dns.TypePTR {
		return nil
	}
	var out []dns.RR
	for _, e := range c.lookup(qn.Name, dns.TypePTR) {
		if left := e.expires.Sub(now); left > e.ttl/2 {
			rr := dns.Copy(e.rr)
			rr.Header().Ttl = uint32(left / time.Second)
			out = append(out, rr)
		}
	}
	return out
}

// heardQuery notes the QM questions of another host's query whose known answers
// are all ones this querier would list too (§7.3), and forgets them again when a
// continuation of a truncated query (§7.2) lists one it would not.
func (q *querier) heardQuery(iface string, p packet, now time.Time) {
	if p.src.Port() != mdnsPort || q.echo.seen(p.data, now) {
		return // legacy queriers' questions get unicast answers; our own echo
	}
	var m dns.Msg
	if m.Unpack(p.data) != nil || m.Response || m.Opcode != dns.OpcodeQuery {
		return
	}
	c := q.caches[iface]
	if q.heard[iface] == nil {
		q.heard[iface] = map[dns.Question]heardQuery{}
	}
	heard := q.heard[iface]
	// ours reports whether this querier would list rr as a known answer.
	ours := func(rr dns.RR) bool {
		h := rr.Header()
		qn := dns.Question{Name: strings.ToLower(h.Name), Qtype: h.Rrtype, Qclass: dns.ClassINET}
		k, ok := rdata(rr)
		if !ok {
			return false
		}
		for _, mine := range knownAnswers(c, qn, now) {
			if d, _ := rdata(mine); d == k {
				return true
			}
		}
		return false
	}
	if len(m.Question) == 0 {
		// More known answers of a truncated query: a question heard from the same
		// host that lists one this querier lacks no longer counts as ours.
		for _, rr := range records(m.Answer) {
			h := rr.Header()
			qn := dns.Question{Name: strings.ToLower(h.Name), Qtype: h.Rrtype, Qclass: dns.ClassINET}
			if hq, ok := heard[qn]; ok && hq.src == p.src && now.Sub(hq.at) <= continuationWait && !ours(rr) {
				delete(heard, qn)
			}
		}
		return
	}
	for i, question := range m.Question {
		if i >= maxQuestions {
			break
		}
		if question.Qclass&cacheFlushBit != 0 || question.Qclass != dns.ClassINET {
			continue // QU questions may be answered by unicast, to the asker only
		}
		qn := dns.Question{Name: strings.ToLower(question.Name), Qtype: question.Qtype, Qclass: dns.ClassINET}
		all := true
		for _, rr := range records(m.Answer) {
			h := rr.Header()
			if strings.EqualFold(h.Name, qn.Name) && h.Rrtype == qn.Qtype && !ours(rr) {
				all = false
				break
			}
		}
		if all {
			heard[qn] = heardQuery{at: now, src: p.src, truncated: m.Truncated}
		} else {
			delete(heard, qn)
		}
	}
}

// heardSince reports whether another host asked qn on iface after since, with no
// known answer this querier lacks. A truncated query counts only once the rest of
// its known answers had their time to arrive.
func (q *querier) heardSince(iface string, qn dns.Question, since, now time.Time) bool {
	hq, ok := q.heard[iface][dns.Question{Name: strings.ToLower(qn.Name), Qtype: qn.Qtype, Qclass: dns.ClassINET}]
	if hq.truncated && now.Sub(hq.at) <= continuationWait {
		return false
	}
	return ok && !since.IsZero() && hq.at.After(since)
}

// heardWithin reports whether another host asked qn on iface within the last
// window.
func (q *querier) heardWithin(iface string, qn dns.Question, now time.Time, window time.Duration) bool {
	return q.heardSince(iface, qn, now.Add(-window), now)
}

// pruneHeard forgets questions heard more than heardKeep ago.
func (q *querier) pruneHeard(now time.Time) {
	for _, m := range q.heard {
		for k, hq := range m {
			if now.Sub(hq.at) > heardKeep {
				delete(m, k)
			}
		}
	}
}

// dueMissing returns the questions for what the browsed views lack on iface, each
// asked again with a doubling wait.
func (q *querier) dueMissing(iface string, now time.Time) []dns.Question {
	c := q.caches[iface]
	k := snapshotKey{iface, ""}
	if q.asked[k] == nil {
		q.asked[k] = map[dns.Question]*schedule{}
	}
	var out []dns.Question
	stillMissing := map[dns.Question]bool{}
	for t := range q.types {
		if t == servicesMeta {
			continue
		}
		_, missing := c.instances(t, iface)
		for _, m := range missing {
			stillMissing[m] = true
			s := q.asked[k][m]
			if s == nil {
				s = &schedule{next: now}
				q.asked[k][m] = s
			}
			if now.Before(s.next) {
				continue
			}
			s.interval = min(max(2*s.interval, questionRetry), maxQueryInterval)
			s.next = now.Add(s.interval)
			out = append(out, m)
		}
	}
	// A question no longer missing (answered, or its instance went away) leaves the
	// schedule, so that asking again starts the backoff afresh; its next time, past
	// and never advanced again, would otherwise keep nextEvent due and the loop
	// spinning. The loop ticks after every packet it handles, so an answer clears
	// its question here at once.
	for m := range q.asked[k] {
		if !stillMissing[m] {
			delete(q.asked[k], m)
		}
	}
	return out
}

// nextEvent is when tick has something to do next.
func (q *querier) nextEvent(now time.Time) time.Time {
	t := now.Add(time.Minute)
	earlier := func(u time.Time) {
		if !u.IsZero() && u.Before(t) {
			t = u
		}
	}
	for _, s := range q.types {
		earlier(s.next)
	}
	for _, c := range q.caches {
		earlier(c.next())
	}
	for _, m := range q.asked {
		for _, s := range m {
			earlier(s.next)
		}
	}
	return t
}

// send multicasts a query on one interface; known answers that do not fit go in
// follow-up packets, all but the last with the TC bit set (RFC 6762 §7.2).
func (q *querier) send(ifi *net.Interface, qs []dns.Question, known []dns.RR) {
	m := new(dns.Msg)
	m.Question = qs
	var msgs []*dns.Msg
	for _, rr := range known {
		m.Answer = append(m.Answer, rr)
		if m.Len() > packetBudget && len(m.Answer) > 1 {
			m.Answer = m.Answer[:len(m.Answer)-1]
			m.Truncated = true
			msgs = append(msgs, m)
			m = new(dns.Msg)
			m.Answer = []dns.RR{rr}
		}
	}
	msgs = append(msgs, m)
	for _, msg := range msgs {
		b, err := msg.Pack()
		if err != nil {
			q.log.Debug("mdns: pack query", "error", err)
			continue
		}
		q.echo.note(b, time.Now())
		q.emit(ifi, b)
	}
}

// write multicasts b on ifi over IPv4 and IPv6, counting packets and bytes sent.
func (q *querier) write(ifi *net.Interface, b []byte, packets, bytes prometheus.Counter) {
	q.sendMu.Lock()
	defer q.sendMu.Unlock()
	if q.v4 != nil && q.v4.SetMulticastInterface(ifi) == nil {
		if _, err := q.v4.WriteTo(b, nil, &net.UDPAddr{IP: groupV4.AsSlice(), Port: mdnsPort}); err == nil {
			packets.Inc()
			bytes.Add(float64(len(b)))
		}
	}
	if q.v6 != nil && q.v6.SetMulticastInterface(ifi) == nil {
		if _, err := q.v6.WriteTo(b, nil, &net.UDPAddr{IP: groupV6.AsSlice(), Port: mdnsPort, Zone: ifi.Name}); err == nil {
			packets.Inc()
			bytes.Add(float64(len(b)))
		}
	}
}

// writeTo sends b by unicast to one address, through ifi for a link-local one.
func (q *querier) writeTo(ifi *net.Interface, to netip.AddrPort, b []byte, packets, bytes prometheus.Counter) {
	var err error
	switch {
	case to.Addr().Is4() && q.v4 != nil:
		_, err = q.v4.WriteTo(b, nil, net.UDPAddrFromAddrPort(to))
	case to.Addr().Is6() && q.v6 != nil:
		a := net.UDPAddrFromAddrPort(to)
		if a.Zone == "" && to.Addr().IsLinkLocalUnicast() {
			a.Zone = ifi.Name
		}
		_, err = q.v6.WriteTo(b, nil, a)
	default:
		return
	}
	if err == nil {
		packets.Inc()
		bytes.Add(float64(len(b)))
	}
}

// publish reports the views that changed since the last call.
func (q *querier) publish() {
	seen := map[snapshotKey]bool{}
	for iface, c := range q.caches {
		for t := range q.types {
			if t == servicesMeta {
				continue
			}
			k := snapshotKey{iface, t}
			seen[k] = true
			insts, _ := c.instances(t, iface)
			if !equalInstances(insts, q.last[k]) {
				q.last[k] = insts
				if q.onChange != nil {
					q.onChange(iface, t, insts)
				}
			}
		}
	}
	for k := range q.last {
		if !seen[k] {
			delete(q.last, k)
			if q.onChange != nil {
				q.onChange(k.iface, k.typ, nil)
			}
		}
	}
	if _, ok := q.types[servicesMeta]; ok && q.onTypes != nil {
		var all []string
		for _, c := range q.caches {
			all = append(all, c.types()...)
		}
		slices.Sort(all)
		all = slices.Compact(all)
		if !slices.Equal(all, q.lastTypes) {
			q.lastTypes = all
			q.onTypes(all)
		}
	}
}

func equalInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, Instance.Equal)
}
