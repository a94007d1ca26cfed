package mdns

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// cacheFlushBit is the top bit of a resource record's class in mDNS: set on unique
// records, it tells caches to drop older records of the same name and type
// (RFC 6762 §10.2).
const cacheFlushBit = 1 << 15

// maxCacheEntries bounds one interface's cache, so that a flood of hostile or
// merely numerous records costs bounded memory; beyond it new records are dropped.
const maxCacheEntries = 20000

// refreshPoints are the fractions of a record's TTL at which the querier asks for it
// again while it is still wanted (RFC 6762 §5.2: 80, 85, 90 and 95 %, each plus up
// to 2 % of random variation).
var refreshPoints = [...]float64{0.80, 0.85, 0.90, 0.95}

type cacheKey struct {
	name string // lower case, fully qualified
	typ  uint16
	data string // the record's data in canonical form
}

type cached struct {
	rr       dns.RR // class with the cache-flush bit cleared
	received time.Time
	expires  time.Time
	ttl      time.Duration
	// refresh is the next time to ask for the record again, zero when no refresh
	// remains; step counts the refresh points passed.
	refresh time.Time
	step    int
}

// cache is one interface's mDNS cache. It is not safe for concurrent use; the
// querier's loop owns it.
type cache struct {
	entries map[cacheKey]*cached
}

func newCache() *cache { return &cache{entries: map[cacheKey]*cached{}} }

// rdata is a record's data in a form that compares equal for equal data.
func rdata(rr dns.RR) (string, bool) {
	switch r := rr.(type) {
	case *dns.PTR:
		return strings.ToLower(r.Ptr), true
	case *dns.SRV:
		return strings.ToLower(r.Target) + " " + strconv.Itoa(int(r.Port)) + " " +
			strconv.Itoa(int(r.Priority)) + " " + strconv.Itoa(int(r.Weight)), true
	case *dns.TXT:
		return strings.Join(r.Txt, "\x00"), true
	case *dns.A:
		a, ok := netip.AddrFromSlice(r.A.To4())
		return a.String(), ok
	case *dns.AAAA:
		a, ok := netip.AddrFromSlice(r.AAAA.To16())
		return a.String(), ok && len(r.AAAA) == 16
	}
	return "", false
}

// add puts a record received at now into the cache, following RFC 6762: TTL 0 is a
// goodbye that expires the record one second later (§10.1); a set cache-flush bit
// expires, one second later, the records of the same name and type received more than
// a second before (§10.2). It reports whether the cache's content changed, which a
// mere TTL renewal does not.
func (c *cache) add(rr dns.RR, now time.Time) bool {
	h := rr.Header()
	data, ok := rdata(rr)
	if !ok {
		return false
	}
	flush := h.Class&cacheFlushBit != 0
	h.Class &^= cacheFlushBit
	name := strings.ToLower(h.Name)
	k := cacheKey{name: name, typ: h.Rrtype, data: data}
	changed := false
	if flush {
		for ok2, e := range c.entries {
			if ok2.name == name && ok2.typ == h.Rrtype && ok2 != k && now.Sub(e.received) > time.Second &&
				e.expires.After(now.Add(time.Second)) {
				e.expires, e.refresh = now.Add(time.Second), time.Time{}
			}
		}
	}
	e := c.entries[k]
	if h.Ttl == 0 {
		if e != nil && e.expires.After(now.Add(time.Second)) {
			e.expires, e.refresh = now.Add(time.Second), time.Time{}
		}
		return false
	}
	if e == nil {
		if len(c.entries) >= maxCacheEntries {
			return false
		}
		e = &cached{}
		c.entries[k] = e
		changed = true
	}
	e.rr = rr
	e.received = now
	e.ttl = time.Duration(h.Ttl) * time.Second
	e.expires = now.Add(e.ttl)
	e.step = 0
	e.refresh = e.refreshAt(0)
	return changed
}

func (e *cached) refreshAt(step int) time.Time {
	if step >= len(refreshPoints) {
		return time.Time{}
	}
	f := refreshPoints[step] + rand.Float64()*0.02
	return e.received.Add(time.Duration(f * float64(e.ttl)))
}

// expire drops the records whose time has come and reports whether any was dropped.
func (c *cache) expire(now time.Time) bool {
	dropped := false
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
			dropped = true
		}
	}
	return dropped
}

// refreshQuestion is a question for a record due for refresh, with the record's
// refresh step (5 % of its TTL): another host's question within the last step asked
// for it already (§7.3).
type refreshQuestion struct {
	dns.Question
	step time.Duration
}

// dueRefreshes returns the questions for the records whose refresh point has passed,
// moving each to its next point.
func (c *cache) dueRefreshes(now time.Time) []refreshQuestion {
	var qs []refreshQuestion
	seen := map[dns.Question]bool{}
	for k, e := range c.entries {
		if e.refresh.IsZero() || now.Before(e.refresh) {
			continue
		}
		// Each point's random variation is drawn once: drawing it again here could
		// put the point just passed back in the future and ask twice for it.
		for !e.refresh.IsZero() && !now.Before(e.refresh) {
			e.step++
			e.refresh = e.refreshAt(e.step)
		}
		q := dns.Question{Name: e.rr.Header().Name, Qtype: k.typ, Qclass: dns.ClassINET}
		if !seen[q] {
			seen[q] = true
			qs = append(qs, refreshQuestion{Question: q, step: e.ttl / 20})
		}
	}
	return qs
}

// next returns the earliest expiry or refresh point, zero if the cache is empty.
func (c *cache) next() time.Time {
	var t time.Time
	for _, e := range c.entries {
		for _, u := range [2]time.Time{e.expires, e.refresh} {
			if !u.IsZero() && (t.IsZero() || u.Before(t)) {
				t = u
			}
		}
	}
	return t
}

// lookup returns the live records of one name and type, oldest data first.
func (c *cache) lookup(name string, typ uint16) []*cached {
	name = strings.ToLower(name)
	var out []*cached
	for k, e := range c.entries {
		if k.name == name && k.typ == typ {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *cached) int {
		da, _ := rdata(a.rr)
		db, _ := rdata(b.rr)
		return strings.Compare(da, db)
	})
	return out
}

// has reports whether the cache holds any record of name and type.
func (c *cache) has(name string, typ uint16) bool {
	name = strings.ToLower(name)
	for k := range c.entries {
		if k.name == name && k.typ == typ {
			return true
		}
	}
	return false
}

// instances assembles the instances of one service type ("_http._tcp") seen on iface:
// every PTR of the type with an SRV record, its TXT and its host's addresses. It also
// returns the questions that would complete what is missing (SRV and TXT of instances,
// addresses of hosts).
func (c *cache) instances(typ, iface string) ([]Instance, []dns.Question) {
	var out []Instance
	var missing []dns.Question
	for _, p := range c.lookup(typ+".local.", dns.TypePTR) {
		full := p.rr.(*dns.PTR).Ptr
		label, ok := instanceLabel(full, typ)
		if !ok {
			continue
		}
		srvs := c.lookup(full, dns.TypeSRV)
		if len(srvs) == 0 {
			missing = append(missing, dns.Question{Name: full, Qtype: dns.TypeSRV, Qclass: dns.ClassINET})
			if !c.has(full, dns.TypeTXT) {
				missing = append(missing, dns.Question{Name: full, Qtype: dns.TypeTXT, Qclass: dns.ClassINET})
			}
			continue
		}
		srv := srvs[0].rr.(*dns.SRV)
		inst := Instance{Name: label, Type: typ, Iface: iface, Host: strings.ToLower(srv.Target), Port: int(srv.Port)}
		if txts := c.lookup(full, dns.TypeTXT); len(txts) > 0 {
			inst.Text = ParseText(txts[len(txts)-1].rr.(*dns.TXT).Txt)
		} else {
			inst.Text = map[string]string{}
			missing = append(missing, dns.Question{Name: full, Qtype: dns.TypeTXT, Qclass: dns.ClassINET})
		}
		for _, a := range c.lookup(srv.Target, dns.TypeA) {
			if ip, ok := netip.AddrFromSlice(a.rr.(*dns.A).A.To4()); ok {
				inst.Addrs = append(inst.Addrs, ip)
			}
		}
		for _, a := range c.lookup(srv.Target, dns.TypeAAAA) {
			if ip, ok := netip.AddrFromSlice(a.rr.(*dns.AAAA).AAAA.To16()); ok {
				if ip.IsLinkLocalUnicast() {
					ip = ip.WithZone(iface)
				}
				inst.Addrs = append(inst.Addrs, ip)
			}
		}
		if len(inst.Addrs) == 0 {
			missing = append(missing, dns.Question{Name: srv.Target, Qtype: dns.TypeA, Qclass: dns.ClassINET},
				dns.Question{Name: srv.Target, Qtype: dns.TypeAAAA, Qclass: dns.ClassINET})
		}
		out = append(out, inst)
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
	out = slices.CompactFunc(out, func(a, b Instance) bool { return a.Name == b.Name })
	return out, missing
}

// types returns the service types announced under _services._dns-sd._udp.local.
func (c *cache) types() []string {
	var out []string
	for _, p := range c.lookup(servicesMeta, dns.TypePTR) {
		t := strings.TrimSuffix(strings.ToLower(p.rr.(*dns.PTR).Ptr), ".local.")
		if t != p.rr.(*dns.PTR).Ptr {
			out = append(out, t)
		}
	}
	return out
}

// servicesMeta is DNS-SD's service type enumeration name (RFC 6763 §9).
const servicesMeta = "_services._dns-sd._udp.local."

// instanceLabel returns the unescaped first label of full when the rest is
// typ + ".local.".
func instanceLabel(full, typ string) (string, bool) {
	labels := dns.SplitDomainName(full)
	if len(labels) != 4 || !strings.EqualFold(labels[1]+"."+labels[2], typ) || !strings.EqualFold(labels[3], "local") {
		return "", false
	}
	return unescapeLabel(labels[0]), true
}

// unescapeLabel undoes miekg/dns's presentation escapes (\X and \DDD).
func unescapeLabel(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b = append(b, s[i])
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			n, _ := strconv.Atoi(s[i+1 : i+4])
			b = append(b, byte(n))
			i += 3
			continue
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
