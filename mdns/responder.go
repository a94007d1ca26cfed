package mdns

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Responder timing (RFC 6762).
const (
	probeWait       = 250 * time.Millisecond // between probes, §8.1
	probeCount      = 3
	lostTieWait     = time.Second      // a lost simultaneous probe waits, §8.2
	conflictBurst   = 15               // conflicts within conflictWindow...
	conflictWindow  = 10 * time.Second // ...slow probing down to...
	conflictBackoff = 5 * time.Second  // ...one attempt per this, §8.1
	announceCount   = 2                // announcements, a second apart, §8.3
	// recordInterval is the least time between two multicasts of one record on one
	// interface (§6), probes and defence against a probe excepted: a second, and 10 ms
	// so that the second holds on the wire even when the first packet waited in a
	// queue after its send returned.
	recordInterval = time.Second + 10*time.Millisecond
	// announceGap spaces the announcements: recordInterval and a little more, so that
	// the second is never held back by the first.
	announceGap = recordInterval + 10*time.Millisecond
	// defendInterval is the least time between two defences of one name (§6: a
	// response to a probe may go out every 250 ms).
	defendInterval = 250 * time.Millisecond
	// addrPoll is how often an interface's addresses are read again.
	addrPoll = 5 * time.Second
)

// Bounds on what one received packet can make the responder do.
const (
	maxQuestions = 64
	maxKnown     = 512
)

// sender puts the responder's packets on the wire: multicast on an interface (IPv4
// and IPv6), or unicast to one address through an interface.
type sender interface {
	multicast(ifi *net.Interface, b []byte)
	unicast(ifi *net.Interface, to netip.AddrPort, b []byte)
}

// serviceSpec is one DNS-SD instance to publish.
type serviceSpec struct {
	Name string // instance label, unescaped ("web1-h1")
	Type string // "_web._tcp"
	Port int
	Text map[string]string
}

// wanted is what the responder should publish: the instances (by a key stable across
// renames), under host label Host, on the named interfaces.
type wanted struct {
	ifaces []string
	host   string
	svcs   map[string]serviceSpec
}

// Entity states.
const (
	probing = iota
	announced
)

// entity is a unique name the responder claims: its host name or one instance.
type entity struct {
	host  bool
	base  string // the label wanted
	label string // the label now, after renames
	spec  serviceSpec
	txt   []string // spec.Text as TXT strings
	state int
	// conflicts are the times of this entity's recent conflicts (§8.1's rate limit).
	conflicts []time.Time
}

// fqdn is the entity's name in presentation form, lower case.
func (e *entity) fqdn() string {
	if e.host {
		return strings.ToLower(escapeLabel(e.label) + ".local.")
	}
	return strings.ToLower(escapeLabel(e.label) + "." + e.spec.Type + ".local.")
}

// batch is one change being published: its entities are probed together (those not
// announced yet) and announced together, in as few packets as fit, on every
// interface (or only on ifaces, for an interface that appeared).
type batch struct {
	ents      []*entity
	ifaces    []string // nil: all
	reprobe   bool     // probe even the announced entities (on an interface that appeared)
	probes    int
	announces int
	next      time.Time
}

// rIface is the responder's state on one interface.
type rIface struct {
	ifi     *net.Interface
	addrs   []netip.Addr
	addrsAt time.Time
	sent    map[string]time.Time // last multicast of each record (recKey)
	defend  map[string]time.Time // last defence of each name
	pending *pendingResp
}

// pendingResp is a multicast response waiting for its time (the 20–120 ms delay of
// shared answers, §6), aggregating the answers of the queries that arrive meanwhile.
type pendingResp struct {
	at      time.Time
	answers []dns.RR
	extra   []dns.RR
}

// responder is rumor's mDNS responder (RFC 6762 §6–10, RFC 6763): it probes the
// names it claims, renames on conflict, announces each change in as few packets as
// fit, answers queries (known-answer and duplicate-answer suppression, the delay of
// shared answers), never multicasts a record on an interface twice within a second
// (probes and defences excepted), and says goodbye in one packet. It is a state
// machine driven by its owner's loop (announcer.run): set, handle, tick and
// shutdown take the current time, next says when tick has work. Not safe for
// concurrent use.
type responder struct {
	log     *slog.Logger
	metrics *metrics
	out     sender
	now     func() time.Time // the clock read after each send, for the rate limit
	rnd     *rand.Rand
	lookup  func(name string) (*net.Interface, error)
	addrsOf func(*net.Interface) []netip.Addr

	ifaces  map[string]*rIface
	host    *entity
	insts   map[string]*entity // by wanted key
	batches []*batch
}

func newResponder(log *slog.Logger, m *metrics, out sender) *responder {
	return &responder{log: log, metrics: m, out: out, now: time.Now,
		rnd:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		lookup: net.InterfaceByName, addrsOf: ifaceAddrs,
		ifaces: map[string]*rIface{}, insts: map[string]*entity{}}
}

// hostName is the host's name now, in presentation form.
func (r *responder) hostName() string {
	if r.host == nil {
		return ""
	}
	return r.host.fqdn()
}

// set makes the responder publish w: new instances are probed and announced, changed
// ones announced again, removed ones get a goodbye now, and interfaces that appeared
// get probes and announcements of everything.
func (r *responder) set(w wanted, now time.Time) {
	// Interfaces gone: goodbye there, while it can still be sent.
	for name, ifc := range r.ifaces {
		if slices.Contains(w.ifaces, name) {
			continue
		}
		r.goodbye(ifc, r.allRecords(ifc, true), now)
		delete(r.ifaces, name)
	}
	var added []string
	for _, name := range w.ifaces {
		if _, ok := r.ifaces[name]; ok {
			continue
		}
		ifi, err := r.lookup(name)
		if err != nil {
			r.log.Warn("mdns: interface gone before use", "iface", name, "error", err)
			continue
		}
		r.ifaces[name] = &rIface{ifi: ifi, addrs: r.addrsOf(ifi), addrsAt: now,
			sent: map[string]time.Time{}, defend: map[string]time.Time{}}
		added = append(added, name)
	}
	var fresh, changed []*entity
	if r.host == nil || r.host.base != w.host {
		if r.host != nil && r.host.state == announced {
			for _, ifc := range r.ifaces {
				r.goodbye(ifc, r.hostRecords(ifc, otherTTL), now)
			}
		}
		r.host = &entity{host: true, base: w.host, label: w.host}
		fresh = append(fresh, r.host)
	}
	// Removed instances: one goodbye packet per interface for all of them.
	var gone []*entity
	for k, e := range r.insts {
		if _, ok := w.svcs[k]; !ok {
			gone = append(gone, e)
			delete(r.insts, k)
		}
	}
	if len(gone) > 0 {
		r.forget(gone)
		for _, ifc := range r.ifaces {
			var bye []dns.RR
			for _, e := range gone {
				if e.state == announced {
					bye = append(bye, r.instRecords(e, ifc)...)
				}
			}
			// The type's enumeration PTR goes when no instance of the type is left.
			bye = slices.DeleteFunc(bye, func(rr dns.RR) bool {
				return rr.Header().Name == servicesMeta && r.typeAnnounced(rr.(*dns.PTR).Ptr)
			})
			r.goodbye(ifc, bye, now)
		}
	}
	for _, k := range sortedKeys(w.svcs) {
		spec := w.svcs[k]
		e := r.insts[k]
		if e == nil {
			e = &entity{base: spec.Name, label: spec.Name, spec: spec, txt: txtStrings(spec.Text)}
			r.insts[k] = e
			fresh = append(fresh, e)
			continue
		}
		txt := txtStrings(spec.Text)
		if spec.Port != e.spec.Port || !slices.Equal(txt, e.txt) {
			e.spec, e.txt = spec, txt
			if e.state == announced {
				changed = append(changed, e) // new SRV or TXT, with the cache-flush bit
			}
		}
	}
	if len(fresh) > 0 {
		// A burst of changes (registrations one by one) joins the batch that has not
		// probed yet: one probe and one announcement for them all.
		if b := r.unprobed(); b != nil {
			b.ents = append(b.ents, fresh...)
		} else {
			r.addBatch(fresh, nil, now, time.Duration(r.rnd.Int64N(int64(probeWait))))
		}
	}
	if len(changed) > 0 {
		r.addBatch(changed, nil, now, 0)
	}
	if len(added) > 0 {
		// An interface that appeared: probe and announce there what the others have.
		var all []*entity
		if r.host.state == announced {
			all = append(all, r.host)
		}
		for _, k := range sortedKeys(r.insts) {
			if e := r.insts[k]; e.state == announced {
				all = append(all, e)
			}
		}
		if len(all) > 0 {
			r.addBatch(all, added, now, time.Duration(r.rnd.Int64N(int64(probeWait))))
		}
	}
	r.metrics.announced.Set(float64(r.countAnnounced()))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (r *responder) countAnnounced() int {
	n := 0
	for _, e := range r.insts {
		if e.state == announced {
			n++
		}
	}
	return n
}

// addBatch starts publishing ents after delay; ents still probing probe again on
// every interface (ifaces narrows the batch to interfaces that appeared).
func (r *responder) addBatch(ents []*entity, ifaces []string, now time.Time, delay time.Duration) {
	r.batches = append(r.batches, &batch{ents: ents, ifaces: ifaces, reprobe: ifaces != nil, next: now.Add(delay)})
}

// unprobed returns a batch of new names on every interface that has sent nothing
// yet, if any.
func (r *responder) unprobed() *batch {
	for _, b := range r.batches {
		if b.probes == 0 && b.announces == 0 && b.ifaces == nil &&
			!slices.ContainsFunc(b.ents, func(e *entity) bool { return e.state != probing }) {
			return b
		}
	}
	return nil
}

// forget takes entities out of every batch.
func (r *responder) forget(ents []*entity) {
	for _, b := range r.batches {
		b.ents = slices.DeleteFunc(b.ents, func(e *entity) bool { return slices.Contains(ents, e) })
	}
	r.batches = slices.DeleteFunc(r.batches, func(b *batch) bool { return len(b.ents) == 0 })
}

// typeAnnounced reports whether an announced instance of the type named by ptr
// ("_web._tcp.local.") remains.
func (r *responder) typeAnnounced(ptr string) bool {
	for _, e := range r.insts {
		if e.state == announced && strings.EqualFold(e.spec.Type+".local.", ptr) {
			return true
		}
	}
	return false
}

// instRecords are an instance's records on ifc: its type's PTR, the type's
// enumeration PTR, SRV and TXT.
func (r *responder) instRecords(e *entity, ifc *rIface) []dns.RR {
	name := escapeLabel(e.label) + "." + e.spec.Type + ".local."
	typ := e.spec.Type + ".local."
	return []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: typ, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: otherTTL}, Ptr: name},
		&dns.PTR{Hdr: dns.RR_Header{Name: servicesMeta, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: otherTTL}, Ptr: typ},
		&dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: hostTTL},
			Target: r.hostName(), Port: uint16(e.spec.Port)},
		&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: otherTTL}, Txt: e.txt},
	}
}

// hostRecords are the host's addresses on ifc: only that interface's, so that a
// peer is never told an address it cannot reach.
func (r *responder) hostRecords(ifc *rIface, ttl uint32) []dns.RR {
	return addrRecords(r.hostName(), ifc.addrs, ttl)
}

// uniqueRecords are the records an entity claims on ifc (its probe's authority
// section): SRV and TXT, or the host's addresses.
func (r *responder) uniqueRecords(e *entity, ifc *rIface) []dns.RR {
	if e.host {
		return r.hostRecords(ifc, hostTTL)
	}
	return r.instRecords(e, ifc)[2:]
}

// allRecords are every announced record on ifc (hosts included when withHost).
func (r *responder) allRecords(ifc *rIface, withHost bool) []dns.RR {
	var out []dns.RR
	for _, k := range sortedKeys(r.insts) {
		if e := r.insts[k]; e.state == announced {
			out = append(out, r.instRecords(e, ifc)...)
		}
	}
	if withHost && r.host != nil && r.host.state == announced {
		out = append(out, r.hostRecords(ifc, hostTTL)...)
	}
	return dedupe(out)
}

// dedupe drops repeated records, keeping the first.
func dedupe(rrs []dns.RR) []dns.RR {
	seen := map[string]bool{}
	return slices.DeleteFunc(rrs, func(rr dns.RR) bool {
		k := recKey(rr)
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// batchIfaces are the interfaces a batch publishes on, sorted.
func (r *responder) batchIfaces(b *batch) []*rIface {
	var out []*rIface
	for _, name := range sortedKeys(r.ifaces) {
		if b.ifaces == nil || slices.Contains(b.ifaces, name) {
			out = append(out, r.ifaces[name])
		}
	}
	return out
}

// tick does what is due at now: probes and announcements of batches, delayed
// responses, interface address refreshes.
func (r *responder) tick(now time.Time) {
	for _, ifc := range r.ifaces {
		if now.Sub(ifc.addrsAt) >= addrPoll {
			ifc.addrsAt = now
			if a := r.addrsOf(ifc.ifi); !slices.Equal(a, ifc.addrs) {
				old := r.hostRecords(ifc, 0)
				ifc.addrs = a
				if r.host != nil && r.host.state == announced {
					r.goodbye(ifc, removed(old, r.hostRecords(ifc, 0)), now)
					r.batches = append(r.batches, &batch{ents: []*entity{r.host}, ifaces: []string{ifc.ifi.Name}, next: now})
				}
			}
		}
	}
	for _, b := range slices.Clone(r.batches) {
		if now.Before(b.next) {
			continue
		}
		r.step(b, now)
	}
	r.batches = slices.DeleteFunc(r.batches, func(b *batch) bool { return b.announces >= announceCount || len(b.ents) == 0 })
	for _, ifc := range r.ifaces {
		if ifc.pending != nil && !now.Before(ifc.pending.at) {
			p := ifc.pending
			ifc.pending = nil
			r.respond(ifc, p.answers, p.extra, now)
		}
	}
}

// removed returns the records of old not in now.
func removed(old, now []dns.RR) []dns.RR {
	keep := map[string]bool{}
	for _, rr := range now {
		keep[recKey(rr)] = true
	}
	return slices.DeleteFunc(slices.Clone(old), func(rr dns.RR) bool { return keep[recKey(rr)] })
}

// step takes a batch one step: a probe, or an announcement.
func (r *responder) step(b *batch, now time.Time) {
	var probe []*entity
	for _, e := range b.ents {
		if e.state == probing {
			probe = append(probe, e)
		}
	}
	if b.reprobe {
		probe = b.ents // an interface that appeared: claim everything there too
	}
	if len(probe) > 0 && b.probes < probeCount {
		for _, ifc := range r.batchIfaces(b) {
			r.sendProbe(ifc, probe)
		}
		b.probes++
		b.next = now.Add(probeWait)
		return
	}
	if b.announces == 0 {
		for _, e := range b.ents {
			if e.state == probing {
				e.state = announced
				if e.label != e.base {
					what := "instance"
					if e.host {
						what = "host name"
					}
					r.log.Info("mdns: "+what+" renamed after a conflict", "name", e.base, "now", e.label, "type", e.spec.Type)
				}
			}
		}
		r.metrics.announced.Set(float64(r.countAnnounced()))
	}
	for _, ifc := range r.batchIfaces(b) {
		var rrs []dns.RR
		host := false
		for _, e := range b.ents {
			if e.host {
				host = true
				continue
			}
			rrs = append(rrs, r.instRecords(e, ifc)...)
		}
		if host || (r.host != nil && r.host.state == announced) {
			rrs = append(rrs, r.hostRecords(ifc, hostTTL)...)
		}
		r.multicastRecords(ifc, dedupe(rrs), nil, now, false)
	}
	b.announces++
	b.next = now.Add(announceGap)
}

// sendProbe multicasts one probe for ents on ifc: a question (type ANY) for each
// name, the proposed records in the authority section (§8.1–8.2). No probe asks for
// unicast answers (the QU bit): the sockets are bound to the mDNS group and would
// never receive them, so a defence must come by multicast.
func (r *responder) sendProbe(ifc *rIface, ents []*entity) {
	var qs []dns.Question
	var auth []dns.RR
	for _, e := range ents {
		qs = append(qs, dns.Question{Name: e.fqdn(), Qtype: dns.TypeANY, Qclass: dns.ClassINET})
		auth = append(auth, r.uniqueRecords(e, ifc)...)
	}
	for _, m := range split(ifc, qs, auth, false) {
		r.send(ifc, m, netip.AddrPort{})
	}
}

// split packs questions (all in the first packet) and records (as answers, or as
// authority records when auth) into as few messages as fit the interface's MTU.
func split(ifc *rIface, qs []dns.Question, rrs []dns.RR, answer bool) []*dns.Msg {
	budget := packetBudgetFor(ifc.ifi)
	m := &dns.Msg{Question: qs}
	m.Response = answer
	m.Authoritative = answer
	out := []*dns.Msg{m}
	for _, rr := range rrs {
		sec := &m.Answer
		if !answer {
			sec = &m.Ns
		}
		*sec = append(*sec, rr)
		if m.Len() > budget && len(*sec) > 1 {
			*sec = (*sec)[:len(*sec)-1]
			m = &dns.Msg{}
			m.Response = answer
			m.Authoritative = answer
			if !answer {
				m.Ns = []dns.RR{rr}
			} else {
				m.Answer = []dns.RR{rr}
			}
			out = append(out, m)
		}
	}
	return out
}

// packetBudgetFor is the largest mDNS payload sent on ifi unfragmented: its MTU less
// the IPv6 and UDP headers, within 512–9000 bytes (RFC 6762 §17).
func packetBudgetFor(ifi *net.Interface) int {
	return min(max(ifi.MTU-48, 512), maxPacket)
}

// multicastRecords multicasts answers (and extra records, which fill what room the
// answers leave) on ifc, leaving out every record multicast there within the last
// second unless force (a defence). Unique records carry the cache-flush bit.
func (r *responder) multicastRecords(ifc *rIface, answers, extra []dns.RR, now time.Time, force bool) {
	allowed := func(rr dns.RR) bool {
		return force || now.Sub(ifc.sent[recKey(rr)]) >= recordInterval
	}
	answers = slices.DeleteFunc(dedupe(slices.Clone(answers)), func(rr dns.RR) bool { return !allowed(rr) })
	if len(answers) == 0 {
		return
	}
	in := map[string]bool{}
	for _, rr := range answers {
		in[recKey(rr)] = true
	}
	extra = slices.DeleteFunc(dedupe(slices.Clone(extra)), func(rr dns.RR) bool { return in[recKey(rr)] || !allowed(rr) })
	msgs := split(ifc, nil, flushed(answers), true)
	last := msgs[len(msgs)-1]
	budget := packetBudgetFor(ifc.ifi)
	for _, rr := range flushed(extra) {
		last.Extra = append(last.Extra, rr)
		if last.Len() > budget {
			last.Extra = last.Extra[:len(last.Extra)-1]
			break
		}
	}
	for _, m := range msgs {
		r.send(ifc, m, netip.AddrPort{})
		t := r.now()
		for _, rr := range slices.Concat(m.Answer, m.Extra) {
			ifc.sent[recKey(rr)] = t
		}
	}
	r.pruneSent(ifc, now)
}

// flushed copies records, setting the cache-flush bit on unique ones.
func flushed(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		c := dns.Copy(rr)
		if !shared(c) {
			c.Header().Class |= cacheFlushBit
		}
		out[i] = c
	}
	return out
}

// pruneSent forgets send times older than the rate limit, so the map stays small.
func (r *responder) pruneSent(ifc *rIface, now time.Time) {
	if len(ifc.sent) < 256 {
		return
	}
	for k, t := range ifc.sent {
		if now.Sub(t) > 2*recordInterval {
			delete(ifc.sent, k)
		}
	}
}

// goodbye multicasts rrs with TTL 0 on ifc, at once, in as few packets as fit
// (§10.1). A goodbye is not held back by the rate limit: it must be prompt, and it
// follows each record at most once. It does count as the record's last multicast.
func (r *responder) goodbye(ifc *rIface, rrs []dns.RR, now time.Time) {
	rrs = dedupe(slices.Clone(rrs))
	if len(rrs) == 0 {
		return
	}
	bye := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		bye[i] = dns.Copy(rr)
		bye[i].Header().Ttl = 0
	}
	for _, m := range split(ifc, nil, bye, true) {
		r.send(ifc, m, netip.AddrPort{})
	}
	t := r.now()
	for _, rr := range bye {
		ifc.sent[recKey(rr)] = t
	}
}

// send packs m and puts it on the wire: multicast, or unicast to to when valid.
func (r *responder) send(ifc *rIface, m *dns.Msg, to netip.AddrPort) {
	b, err := m.Pack()
	if err != nil {
		r.log.Debug("mdns: pack a response", "iface", ifc.ifi.Name, "error", err)
		return
	}
	if to.IsValid() {
		r.out.unicast(ifc.ifi, to, b)
	} else {
		r.out.multicast(ifc.ifi, b)
	}
}

// shutdown says goodbye to everything announced, one packet per interface (as few
// as fit), and forgets it all.
func (r *responder) shutdown(now time.Time) {
	for _, name := range sortedKeys(r.ifaces) {
		ifc := r.ifaces[name]
		r.goodbye(ifc, r.allRecords(ifc, true), now)
	}
	r.insts = map[string]*entity{}
	r.batches = nil
	r.metrics.announced.Set(0)
}

// next is when tick has something to do, at most a minute from now.
func (r *responder) next(now time.Time) time.Time {
	t := now.Add(time.Minute)
	for _, b := range r.batches {
		if b.next.Before(t) {
			t = b.next
		}
	}
	for _, ifc := range r.ifaces {
		if ifc.pending != nil && ifc.pending.at.Before(t) {
			t = ifc.pending.at
		}
		if a := ifc.addrsAt.Add(addrPoll); a.Before(t) {
			t = a
		}
	}
	return t
}

// claim returns the entity that claims name (lower case), if any.
func (r *responder) claim(name string) *entity {
	if r.host != nil && r.host.fqdn() == name {
		return r.host
	}
	for _, e := range r.insts {
		if e.fqdn() == name {
			return e
		}
	}
	return nil
}

// handle takes one received packet (not one this responder sent: the owner filters
// its echoes). Malformed packets are ignored.
func (r *responder) handle(p packet, now time.Time) {
	var ifc *rIface
	for _, i := range r.ifaces {
		if i.ifi.Index == p.ifindex {
			ifc = i
		}
	}
	if ifc == nil || len(p.data) > maxPacket {
		return
	}
	var m dns.Msg
	if m.Unpack(p.data) != nil || m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		return
	}
	if m.Response {
		if p.src.Port() == mdnsPort { // §11: responses from elsewhere are ignored
			r.handleResponse(ifc, &m, now)
		}
		return
	}
	r.handleQuery(ifc, &m, p.src, now)
}

// records lists a message's records, bounded.
func records(secs ...[]dns.RR) []dns.RR {
	var out []dns.RR
	for _, sec := range secs {
		for _, rr := range sec {
			if len(out) >= maxRecordsPerPacket {
				return out
			}
			if rr != nil && rr.Header().Class&^cacheFlushBit == dns.ClassINET {
				out = append(out, rr)
			}
		}
	}
	return out
}

// handleResponse looks for conflicts with the names claimed (§8.1, §9) and drops
// from a pending response the records another responder just multicast (duplicate
// answer suppression, §7.4).
func (r *responder) handleResponse(ifc *rIface, m *dns.Msg, now time.Time) {
	rrs := records(m.Answer, m.Ns, m.Extra)
	for _, rr := range rrs {
		h := rr.Header()
		if h.Ttl == 0 {
			continue // a goodbye claims nothing
		}
		if e := r.claim(strings.ToLower(h.Name)); e != nil && r.conflicts(e, rr) {
			r.conflict(e, now)
		}
	}
	if p := ifc.pending; p != nil {
		dup := map[string]bool{}
		for _, rr := range rrs {
			dup[recKey(rr)] = true
		}
		keep := func(rrs []dns.RR) []dns.RR {
			return slices.DeleteFunc(rrs, func(rr dns.RR) bool { return dup[recKey(rr)] && shared(rr) })
		}
		p.answers, p.extra = keep(p.answers), keep(p.extra)
	}
}

// conflicts reports whether rr, received with e's name, conflicts with e: while
// probing any record with the name does (§8.1); once announced, one of the types e
// holds with data e does not hold on any interface (§9).
func (r *responder) conflicts(e *entity, rr dns.RR) bool {
	k := recKey(rr)
	mine := false
	types := []uint16{dns.TypeSRV, dns.TypeTXT}
	if e.host {
		types = []uint16{dns.TypeA, dns.TypeAAAA}
	}
	for _, ifc := range r.ifaces {
		for _, o := range r.uniqueRecords(e, ifc) {
			if recKey(o) == k {
				mine = true
			}
		}
	}
	if mine {
		return false
	}
	if e.state == probing {
		return true
	}
	return slices.Contains(types, rr.Header().Rrtype)
}

// conflict handles a conflict for e: while probing, it is renamed and probes again
// (slowed down after many conflicts, §8.1); once announced, it probes again (§9),
// and is renamed if the other still claims the name.
func (r *responder) conflict(e *entity, now time.Time) {
	r.metrics.conflicts.Inc()
	r.forget([]*entity{e})
	delay := time.Duration(0)
	if e.state == probing {
		e.conflicts = append(slices.DeleteFunc(e.conflicts, func(t time.Time) bool { return now.Sub(t) > conflictWindow }), now)
		if len(e.conflicts) >= conflictBurst {
			delay = conflictBackoff
		}
		e.label = nextName(e)
		r.log.Debug("mdns: name conflict while probing", "name", e.base, "now", e.label)
	} else {
		e.state = probing
		r.log.Debug("mdns: name conflict, probing again", "name", e.label)
	}
	ents := []*entity{e}
	if e.host {
		// Every instance's SRV names the host: announce them again with the new name.
		for _, k := range sortedKeys(r.insts) {
			if i := r.insts[k]; i.state == announced {
				ents = append(ents, i)
			}
		}
	}
	r.addBatch(ents, nil, now, delay)
}

// nextName is the name after a conflict: "Name (2)", "Name (3)"... for an instance
// (RFC 6763 §... and Bonjour's convention), "host-2", "host-3"... for a host.
func nextName(e *entity) string {
	n := 2
	if e.label != e.base {
		var k int
		var err error
		if e.host {
			_, err = fmt.Sscanf(strings.TrimPrefix(e.label, e.base), "-%d", &k)
		} else {
			_, err = fmt.Sscanf(strings.TrimPrefix(e.label, e.base), " (%d)", &k)
		}
		if err == nil {
			n = k + 1
		}
	}
	if e.host {
		return clip(e.base, 63-6) + fmt.Sprintf("-%d", n)
	}
	return clip(e.base, 63-8) + fmt.Sprintf(" (%d)", n)
}

// handleQuery answers a query (§6): probes for names this responder claims are
// tie-broken (§8.2) or defended; other questions are answered, leaving out the known
// answers (§7.1), by unicast to legacy queriers (§6.7) and to QU questions whose
// records went out by multicast recently, and otherwise by multicast, unique answers
// at once and shared ones after 20–120 ms (400–500 ms when more known answers
// follow, §7.2).
func (r *responder) handleQuery(ifc *rIface, m *dns.Msg, src netip.AddrPort, now time.Time) {
	legacy := src.Port() != mdnsPort
	known := map[string]uint32{}
	for i, rr := range m.Answer {
		if i >= maxKnown {
			break
		}
		known[recKey(rr)] = rr.Header().Ttl
	}
	// Known answers arriving in a later packet of a truncated query (§7.2).
	if p := ifc.pending; p != nil && len(known) > 0 {
		drop := func(rrs []dns.RR) []dns.RR {
			return slices.DeleteFunc(rrs, func(rr dns.RR) bool {
				ttl, ok := known[recKey(rr)]
				return ok && ttl >= rr.Header().Ttl/2
			})
		}
		p.answers = drop(p.answers)
	}
	var multi, uni []dns.RR
	sharedAnswer := false
	for i, q := range m.Question {
		if i >= maxQuestions {
			break
		}
		name := strings.ToLower(q.Name)
		if !legacy && len(m.Ns) > 0 {
			if e := r.claim(name); e != nil {
				r.probeSeen(ifc, e, m.Ns, now)
				continue
			}
		}
		for _, rr := range r.answers(ifc, name, q.Qtype) {
			if ttl, ok := known[recKey(rr)]; ok && ttl >= rr.Header().Ttl/2 {
				continue
			}
			qu := q.Qclass&cacheFlushBit != 0
			last, ok := ifc.sent[recKey(rr)]
			switch {
			case legacy:
				uni = append(uni, rr)
			case qu && ok && now.Sub(last) < time.Duration(rr.Header().Ttl)*time.Second/4:
				uni = append(uni, rr)
			default:
				multi = append(multi, rr)
				sharedAnswer = sharedAnswer || shared(rr)
			}
		}
	}
	if len(uni) > 0 {
		r.unicastAnswer(ifc, m, src, dedupe(uni), legacy)
	}
	if len(multi) == 0 {
		return
	}
	at := now
	switch {
	case m.Truncated:
		at = now.Add(400*time.Millisecond + time.Duration(r.rnd.IntN(100))*time.Millisecond)
	case sharedAnswer:
		at = now.Add(20*time.Millisecond + time.Duration(r.rnd.IntN(100))*time.Millisecond)
	}
	p := ifc.pending
	if p == nil {
		p = &pendingResp{at: at}
		ifc.pending = p
	}
	if at.Before(p.at) {
		p.at = at
	}
	p.answers = dedupe(append(p.answers, multi...))
	p.extra = dedupe(append(p.extra, r.additional(ifc, multi)...))
}

// probeSeen handles another host's probe for a name e claims: a simultaneous probe is
// tie-broken, and the loser probes again a second later (§8.2); an announced name is
// defended at once.
func (r *responder) probeSeen(ifc *rIface, e *entity, auth []dns.RR, now time.Time) {
	name := e.fqdn()
	var theirs []dns.RR
	for _, rr := range records(auth) {
		if strings.ToLower(rr.Header().Name) == name {
			theirs = append(theirs, rr)
		}
	}
	if e.state == announced {
		if now.Sub(ifc.defend[name]) < defendInterval {
			return
		}
		ifc.defend[name] = now
		r.multicastRecords(ifc, r.uniqueRecords(e, ifc), nil, now, true)
		return
	}
	if len(theirs) == 0 || compareProbes(r.uniqueRecords(e, ifc), theirs) >= 0 {
		return // we win, or it is our own data: go on probing
	}
	r.log.Debug("mdns: lost a simultaneous probe, probing again", "name", e.label)
	r.forget([]*entity{e})
	r.addBatch([]*entity{e}, nil, now, lostTieWait)
}

// answers are the announced records on ifc that answer a question.
func (r *responder) answers(ifc *rIface, name string, qtype uint16) []dns.RR {
	match := func(t uint16) bool { return qtype == t || qtype == dns.TypeANY }
	var out []dns.RR
	if r.host != nil && r.host.state == announced && name == r.host.fqdn() {
		for _, rr := range r.hostRecords(ifc, hostTTL) {
			if match(rr.Header().Rrtype) {
				out = append(out, rr)
			}
		}
		return out
	}
	for _, k := range sortedKeys(r.insts) {
		e := r.insts[k]
		if e.state != announced {
			continue
		}
		rrs := r.instRecords(e, ifc)
		switch {
		case name == servicesMeta && match(dns.TypePTR):
			out = append(out, rrs[1])
		case name == strings.ToLower(e.spec.Type+".local.") && match(dns.TypePTR):
			out = append(out, rrs[0])
		case name == e.fqdn():
			for _, rr := range rrs[2:] {
				if match(rr.Header().Rrtype) {
					out = append(out, rr)
				}
			}
		}
	}
	return dedupe(out)
}

// additional are the records that go with answers (RFC 6763 §12): an instance's SRV,
// TXT and addresses with its PTR, the addresses with an SRV.
func (r *responder) additional(ifc *rIface, answers []dns.RR) []dns.RR {
	var out []dns.RR
	addrs := false
	for _, rr := range answers {
		switch v := rr.(type) {
		case *dns.PTR:
			if e := r.claim(strings.ToLower(v.Ptr)); e != nil && !e.host && e.state == announced {
				out = append(out, r.instRecords(e, ifc)[2:]...)
				addrs = true
			}
		case *dns.SRV:
			addrs = true
		}
	}
	if addrs && r.host != nil && r.host.state == announced {
		out = append(out, r.hostRecords(ifc, hostTTL)...)
	}
	return out
}

// unicastAnswer answers src directly: for a legacy querier with its ID, its
// questions and TTLs of at most 10 s, no cache-flush bit (§6.7); for a QU question
// as a normal mDNS response.
func (r *responder) unicastAnswer(ifc *rIface, q *dns.Msg, src netip.AddrPort, answers []dns.RR, legacy bool) {
	m := &dns.Msg{}
	m.Response, m.Authoritative = true, true
	extra := r.additional(ifc, answers)
	if legacy {
		m.Id = q.Id
		m.Question = q.Question[:min(len(q.Question), maxQuestions)]
		cap := func(rrs []dns.RR) []dns.RR {
			out := make([]dns.RR, len(rrs))
			for i, rr := range rrs {
				out[i] = dns.Copy(rr)
				out[i].Header().Ttl = min(out[i].Header().Ttl, legacyTTL)
			}
			return out
		}
		answers, extra = cap(answers), cap(extra)
	} else {
		answers, extra = flushed(answers), flushed(extra)
	}
	m.Answer = answers
	in := map[string]bool{}
	for _, rr := range answers {
		in[recKey(rr)] = true
	}
	budget := packetBudgetFor(ifc.ifi)
	for _, rr := range dedupe(extra) {
		if in[recKey(rr)] {
			continue
		}
		m.Extra = append(m.Extra, rr)
		if m.Len() > budget {
			m.Extra = m.Extra[:len(m.Extra)-1]
			break
		}
	}
	if m.Len() > budget {
		m.Truncated = legacy
		m.Extra = nil
	}
	r.send(ifc, m, src)
}

// respond multicasts a due pending response (the rate limit applies).
func (r *responder) respond(ifc *rIface, answers, extra []dns.RR, now time.Time) {
	r.multicastRecords(ifc, answers, extra, now, false)
}
