package dnsserver

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Outcomes of handle besides an answer.
const (
	actAnswer  = iota // send the message
	actDrop           // send nothing (a response, or garbage without a header)
	actForward        // forward to the recursors
)

// A reply is an answer and what pack needs to fit it to its transport.
type reply struct {
	m      *dns.Msg
	size   int     // the most bytes the transport takes
	bounds []bound // the sections' lengths before and after each unit added
}

// bound is the lengths of the answer and additional sections at a unit boundary.
type bound struct{ na, ne int }

// pack packs r into buf, leaving out whole units from the end (and setting TC) until
// it fits r.size (RFC 2181 §9). A unit is an instance's records: a cut never leaves an
// SRV without its target's address. sc holds packMsg's reused table and copies.
func (s *Server) pack(r *reply, buf []byte, sc *scratch) ([]byte, error) {
	wire, err := packMsg(r.m, buf, sc.comp, &sc.rrs)
	for (err != nil || len(wire) > r.size) && len(r.bounds) > 1 {
		r.bounds = r.bounds[:len(r.bounds)-1]
		b := r.bounds[len(r.bounds)-1]
		r.m.Answer, r.m.Extra = r.m.Answer[:b.na], r.m.Extra[:b.ne]
		r.m.Truncated = true
		wire, err = packMsg(r.m, buf, sc.comp, &sc.rrs)
	}
	if err == nil && len(wire) > r.size { // not even one unit fits: an empty answer with TC
		r.m.Answer, r.m.Ns, r.m.Truncated = nil, nil, true
		r.m.Extra = slices.DeleteFunc(r.m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeOPT })
		wire, err = packMsg(r.m, buf, sc.comp, &sc.rrs)
	}
	return wire, err
}

// handle answers one query. tcp answers may be 64 KiB; UDP ones fit 512 bytes, or the
// client's EDNS0 size up to MaxUDPSize (pack fits them). It never blocks.
func (s *Server) handle(req *dns.Msg, tcp bool) (*reply, int) {
	if req.Response {
		return nil, actDrop
	}
	size := 512
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	m.RecursionAvailable = len(s.cfg.Recursors) > 0
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return &reply{m: m, size: size}, actAnswer
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return &reply{m: m, size: size}, actAnswer
	}
	if opt := req.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			m.SetEdns0(uint16(s.cfg.MaxUDPSize), false)
			m.Rcode = dns.RcodeBadVers
			return &reply{m: m, size: size}, actAnswer
		}
		size = min(max(int(opt.UDPSize()), 512), s.cfg.MaxUDPSize)
		m.SetEdns0(uint16(s.cfg.MaxUDPSize), false)
	}
	if tcp {
		size = dns.MaxMsgSize
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return &reply{m: m, size: size}, actAnswer
	}
	qn := strings.ToLower(q.Name)
	n := s.parseName(qn)
	var e *entry
	switch n.kind {
	case kindOutside:
		if len(s.cfg.Recursors) > 0 && req.RecursionDesired {
			return &reply{m: m, size: size}, actForward
		}
		m.Rcode = dns.RcodeRefused
		return &reply{m: m, size: size}, actAnswer
	case kindUnknown:
	case kindAddr:
		e = s.buildAddr(qn, n)
	default:
		e = s.lookup(qn, n)
	}
	if e == nil || !e.exists {
		if n.kind == kindReverse && len(s.cfg.Recursors) > 0 && req.RecursionDesired {
			return &reply{m: m, size: size}, actForward
		}
		m.Authoritative = n.zone != ""
		m.Rcode = dns.RcodeNameError
		if n.zone != "" {
			m.Ns = []dns.RR{s.soas[n.zone]}
		}
		return &reply{m: m, size: size}, actAnswer
	}
	m.Authoritative = true
	units := e.types[q.Qtype]
	if len(units) == 0 {
		if n.zone != "" {
			m.Ns = []dns.RR{s.soas[n.zone]}
		}
		return &reply{m: m, size: size}, actAnswer
	}
	r := &reply{m: m, size: size}
	s.fill(r, e, units)
	if len(m.Answer) == 0 && n.zone != "" { // all left out as unreachable: NODATA
		m.Ns = []dns.RR{s.soas[n.zone]}
	}
	return r, actAnswer
}

// picks is what choose reuses from answer to answer: the permutation it draws, the
// units it picks and the unreachable ones it puts last.
type picks struct{ idx, sel, later []int }

// picksPool recycles the picks of fill (the UDP fast path keeps its own in scratch).
var picksPool = sync.Pool{New: func() any { return &picks{idx: make([]int, 0, 64)} }}

// fill adds units to r.m in the order choose picks them, an instance's extra records
// once.
func (s *Server) fill(r *reply, e *entry, units []unit) {
	m := r.m
	p := picksPool.Get().(*picks)
	sel, tc, unreachable := s.choose(e, units, r.size, p)
	s.metrics.unreachable.Add(float64(unreachable))
	// Room for the units of the usual shape at once, rather than append's doublings.
	m.Answer = slices.Grow(m.Answer, len(sel)*len(units[0].ans))
	m.Extra = slices.Grow(m.Extra, len(sel)*len(units[0].extra))
	r.bounds = append(slices.Grow(r.bounds[:0], len(sel)+1), bound{len(m.Answer), len(m.Extra)})
	for _, i := range sel {
		u := &units[i]
		m.Answer = append(m.Answer, u.ans...)
		for _, rr := range u.extra {
			if !slices.Contains(m.Extra, rr) { // two instances on one node share a target
				m.Extra = append(m.Extra, rr)
			}
		}
		r.bounds = append(r.bounds, bound{len(m.Answer), len(m.Extra)})
	}
	if tc {
		m.Truncated = true
	}
	picksPool.Put(p)
}

// choose returns the indexes of the units an answer holds, in its order (random or
// weighted for services, nearest first with OrderNear, reachable first), up to
// ARecordLimit and no more than could fit size uncompressed twice over (pack trims
// the rest); truncated says it stopped for size, unreachable how many instances it
// found unreachable (for the caller to count once the answer is made: the fast path
// may give up and leave the query to fill, which chooses again). The slice is p's.
func (s *Server) choose(e *entry, units []unit, size int, p *picks) (sel []int, truncated bool, unreachable int) {
	k := len(units)
	if e.shuffle && s.cfg.ARecordLimit > 0 {
		k = min(k, s.cfg.ARecordLimit)
	}
	idx := p.idx[:0]
	for i := range units {
		idx = append(idx, i)
	}
	p.idx = idx
	var reach Reachability
	if s.cfg.Reachability != nil && s.cfg.Reachability.Active() {
		reach = s.cfg.Reachability
	}
	var rtts map[string]time.Duration
	if e.shuffle {
		if p := s.rtts.Load(); p != nil {
			rtts = *p
		}
	}
	switch {
	case rtts != nil:
		// Nearest first; ties and unknown nodes in random order.
		rand.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		slices.SortStableFunc(idx, func(a, b int) int {
			ra, oka := rtts[units[a].node]
			rb, okb := rtts[units[b].node]
			switch {
			case oka != okb:
				if oka {
					return -1
				}
				return 1
			case ra < rb:
				return -1
			case ra > rb:
				return 1
			}
			return 0
		})
	case e.weighted:
		weightedOrder(idx, units)
	case e.shuffle:
		// Partial Fisher–Yates: the first k are a uniform pick. When reachability
		// may skip some, the whole order is drawn.
		n := k
		if reach != nil {
			n = len(idx)
		}
		for i := 0; i < n; i++ {
			j := i + rand.IntN(len(idx)-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
	}
	sel = p.sel[:0]
	est := 0
	// add picks a unit unless the answer is full (then it says truncated when size
	// was the reason).
	add := func(i int) bool {
		if len(sel) == k {
			return false
		}
		if est += units[i].size; est > 2*size && len(sel) > 0 {
			truncated = true
			return false
		}
		sel = append(sel, i)
		return true
	}
	if reach == nil {
		for _, i := range idx {
			if !add(i) {
				break
			}
		}
		p.sel = sel
		return sel, truncated, 0
	}
	// Reachable instances first, in the order drawn; the others after them (so a cut
	// leaves them out first), or not at all with OnlyReachable. Only the units looked
	// at are asked about: a full answer stops the asking.
	full := false
	later := p.later[:0]
	for _, i := range idx {
		u := &units[i]
		if u.addr != "" && !reach.Reachable(u.addr) {
			if !s.cfg.OnlyReachable {
				later = append(later, i)
			}
			unreachable++
			continue
		}
		if !add(i) {
			full = true
			break
		}
	}
	for _, i := range later {
		if full || !add(i) {
			break
		}
	}
	p.sel, p.later = sel, later
	return sel, truncated, unreachable
}

// weightedOrder orders idx as a weighted random permutation (Efraimidis–Spirakis:
// sorting by u^(1/w) descending); zero weights go last, in random order.
func weightedOrder(idx []int, units []unit) {
	keys := make([]float64, len(units))
	for i := range units {
		u := rand.Float64()
		if w := float64(units[i].w); w > 0 {
			keys[i] = math.Pow(u, 1/w)
		} else {
			keys[i] = u - 2
		}
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(keys[b], keys[a]) }) // largest key first
}

// lookup returns the entry of a name from the cache, building it on a miss. Only
// names that exist are kept, so unknown names cannot grow the cache.
func (s *Server) lookup(qn string, n name) *entry {
	if v, ok := s.cache.Load(qn); ok {
		return v.(*entry)
	}
	e := s.build(qn, n)
	if e == nil {
		return nil
	}
	e.seal(qn)
	if s.cached.Add(1) > int64(s.cfg.MaxCacheEntries) {
		s.clearCache()
	}
	if _, loaded := s.cache.LoadOrStore(qn, e); loaded {
		s.cached.Add(-1)
	}
	// A change between the index read in build and the store above may have been
	// checked by the watcher before the store: check once more.
	if s.cfg.Catalog.TopicIndex(e.topic) != e.index {
		if s.cache.CompareAndDelete(qn, e) {
			s.cached.Add(-1)
		}
		s.gen.Add(1)
	}
	return e
}

// clearCache forgets every entry.
func (s *Server) clearCache() {
	defer s.gen.Add(1)
	s.cache.Range(func(k, v any) bool {
		if s.cache.CompareAndDelete(k, v) {
			s.cached.Add(-1)
		}
		return true
	})
}

// invalidate drops the entries whose topic moved since they were built, then moves
// gen so that the fast path's own caches forget them too.
func (s *Server) invalidate() {
	defer s.gen.Add(1)
	s.cache.Range(func(k, v any) bool {
		e := v.(*entry)
		if s.cfg.Catalog.TopicIndex(e.topic) != e.index {
			if s.cache.CompareAndDelete(k, v) {
				s.cached.Add(-1)
			}
		}
		return true
	})
}
