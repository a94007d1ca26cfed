package dnsserver

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Outcomes of handle besides an answer.
const (
	actAnswer  = iota // send the message
	actDrop           // send nothing (a response, or garbage without a header)
	actForward        // forward to the recursors
)

// handle answers one query. tcp answers may be 64 KiB; UDP ones fit 512 bytes, or the
// client's EDNS0 size up to MaxUDPSize. It never blocks.
func (s *Server) handle(req *dns.Msg, tcp bool) (*dns.Msg, int) {
	if req.Response {
		return nil, actDrop
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	m.RecursionAvailable = len(s.cfg.Recursors) > 0
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, actAnswer
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m, actAnswer
	}
	size := 512
	if opt := req.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			m.SetEdns0(uint16(s.cfg.MaxUDPSize), false)
			m.Rcode = dns.RcodeBadVers
			return m, actAnswer
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
		return m, actAnswer
	}
	qn := strings.ToLower(q.Name)
	n := s.parseName(qn)
	var e *entry
	switch n.kind {
	case kindOutside:
		if len(s.cfg.Recursors) > 0 && req.RecursionDesired {
			return m, actForward
		}
		m.Rcode = dns.RcodeRefused
		return m, actAnswer
	case kindUnknown:
	case kindAddr:
		e = s.buildAddr(qn, n)
	default:
		e = s.lookup(qn, n)
	}
	if e == nil || !e.exists {
		if n.kind == kindReverse && len(s.cfg.Recursors) > 0 && req.RecursionDesired {
			return m, actForward
		}
		m.Authoritative = n.zone != ""
		m.Rcode = dns.RcodeNameError
		if n.zone != "" {
			m.Ns = []dns.RR{s.soas[n.zone]}
		}
		return m, actAnswer
	}
	m.Authoritative = true
	units := e.types[q.Qtype]
	if len(units) == 0 {
		if n.zone != "" {
			m.Ns = []dns.RR{s.soas[n.zone]}
		}
		return m, actAnswer
	}
	s.fill(m, e, units, size, tcp)
	return m, actAnswer
}

// idxPool recycles the permutations fill draws.
var idxPool = sync.Pool{New: func() any { s := make([]int, 0, 64); return &s }}

// fill adds units to m in the entry's order (random or weighted for services) until
// ARecordLimit or the size limit; a unit that does not fit is left out whole and sets
// TC (RFC 2181 §9).
func (s *Server) fill(m *dns.Msg, e *entry, units []unit, size int, tcp bool) {
	k := len(units)
	if e.shuffle && s.cfg.ARecordLimit > 0 {
		k = min(k, s.cfg.ARecordLimit)
	}
	ip := idxPool.Get().(*[]int)
	idx := (*ip)[:0]
	for i := range units {
		idx = append(idx, i)
	}
	switch {
	case e.weighted:
		weightedOrder(idx, units)
	case e.shuffle:
		for i := 0; i < k; i++ { // partial Fisher–Yates: the first k are a uniform pick
			j := i + rand.IntN(len(idx)-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
	}
	for _, i := range idx[:k] {
		u := &units[i]
		na, ne := len(m.Answer), len(m.Extra)
		m.Answer = append(m.Answer, u.ans...)
		for _, rr := range u.extra {
			if !slices.Contains(m.Extra, rr) { // two instances on one node share a target
				m.Extra = append(m.Extra, rr)
			}
		}
		if !tcp && m.Len() > size {
			m.Answer, m.Extra = m.Answer[:na], m.Extra[:ne]
			m.Truncated = true
			break
		}
	}
	*ip = idx
	idxPool.Put(ip)
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
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case keys[a] > keys[b]:
			return -1
		case keys[a] < keys[b]:
			return 1
		}
		return 0
	})
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
	}
	return e
}

// clearCache forgets every entry.
func (s *Server) clearCache() {
	s.cache.Range(func(k, v any) bool {
		if s.cache.CompareAndDelete(k, v) {
			s.cached.Add(-1)
		}
		return true
	})
}

// invalidate drops the entries whose topic moved since they were built.
func (s *Server) invalidate() {
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
