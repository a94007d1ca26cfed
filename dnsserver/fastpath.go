package dnsserver

import (
	"encoding/binary"
	"strings"

	"github.com/miekg/dns"
)

// The UDP fast path answers the common query (one question of a name the cache
// holds, at most a bare OPT record) by copying bytes: each unit's records are packed
// once, when its entry is built (seal), and an answer is the query's header and
// question followed by the chosen units' records, with the ID, flags and counts
// written and the few compression pointers that depend on where a record lands
// patched in. No dns.Msg is made and nothing is allocated. Whatever it does not
// handle (another form of query, an answer that would need truncating, NODATA,
// NXDOMAIN, forwarding) goes the general way, handle and pack, which the fast path's
// answers decode equal to (TestFastPathMatchesHandle, FuzzFastPath).

// A wireRR is one of a unit's records in wire format: owner, type, class, TTL,
// rdlength and rdata (uncompressed). Its owner is either a pointer to the question
// (the name asked, in lower case as the entry's: 0xC00C, fixed), a pointer to a name an earlier record of the unit
// holds (patched when the answer is assembled), or the name itself.
type wireRR struct {
	b []byte
	// ref is the index, in the unit's records (answers then extras), of the record
	// holding this record's owner name, at offset at in it; -1 when b is whole.
	ref, at int
}

// seal packs the wire form of every unit of e, an entry of the name qn (lower case),
// before e is shared. A type whose units share an extra record (which fill adds
// once) keeps none: its answers go the general way.
func (e *entry) seal(qn string) {
	buf := make([]byte, dns.MaxMsgSize) // one record at a time, packed here first
	for _, units := range e.types {
		shared := false
		seen := map[dns.RR]bool{}
		for _, u := range units {
			for _, rr := range u.extra {
				shared = shared || seen[rr]
				seen[rr] = true
			}
		}
		for i := range units {
			if !shared {
				units[i].wire = packUnit(qn, &units[i], buf)
			}
		}
	}
}

// packUnit packs a unit's records as wireRRs, or returns nil when one does not pack;
// buf is room for one record.
func packUnit(qn string, u *unit, buf []byte) []wireRR {
	var names []heldName
	out := make([]wireRR, 0, len(u.ans)+len(u.extra))
	for i, rr := range slices2(u.ans, u.extra) {
		rr = dns.Copy(rr) // PackRR writes Rdlength; the entry's records stay as built
		end, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			return nil
		}
		nameEnd := 0 // the owner's end: its labels up to the root
		for buf[nameEnd] != 0 {
			nameEnd += 1 + int(buf[nameEnd])
		}
		nameEnd++
		w := wireRR{ref: -1}
		owner := rr.Header().Name
		switch j := indexHeld(names, owner); {
		case strings.EqualFold(owner, qn):
			w.b = append([]byte{0xC0, 12}, buf[nameEnd:end]...)
		case j >= 0:
			w.b = append([]byte{0xC0, 0}, buf[nameEnd:end]...)
			w.ref, w.at = names[j].rec, names[j].at
		default:
			w.b = append([]byte(nil), buf[:end]...)
			names = append(names, heldName{name: owner, rec: i})
		}
		rdata := len(w.b) - int(rr.Header().Rdlength)
		switch v := rr.(type) {
		case *dns.SRV:
			names = append(names, heldName{name: v.Target, rec: i, at: rdata + 6})
		case *dns.PTR:
			names = append(names, heldName{name: v.Ptr, rec: i, at: rdata})
		case *dns.CNAME:
			names = append(names, heldName{name: v.Target, rec: i, at: rdata})
		case *dns.NS:
			names = append(names, heldName{name: v.Ns, rec: i, at: rdata})
		}
		out = append(out, w)
	}
	return out
}

// A heldName is a name one of a unit's records writes in full, at offset at of its
// rec-th record, which a later record's owner may point to.
type heldName struct {
	name    string
	rec, at int
}

// indexHeld returns the index of the first held name equal to name (any case), or -1.
func indexHeld(names []heldName, name string) int {
	for i, h := range names {
		if strings.EqualFold(h.name, name) {
			return i
		}
	}
	return -1
}

// slices2 is a and b in one new slice.
func slices2(a, b []dns.RR) []dns.RR {
	return append(append(make([]dns.RR, 0, len(a)+len(b)), a...), b...)
}

// fastQuery is what the fast path reads of a query.
type fastQuery struct {
	qtype  uint16
	qend   int  // the question's end in the packet
	edns   bool // a bare OPT record (version 0, no options) follows the question
	udpMax int  // the client's EDNS0 buffer size (edns)
}

// parseFast reads a query the fast path can answer: a standard query with one
// question of class IN whose name is plain labels (lower-case letters, digits, '-',
// '_'; no compression), then nothing, or one bare OPT record of version 0 and nothing else.
// It writes the name in presentation form (with the final dot) into lower, which
// must have room for 255 bytes, and returns its length; ok is false for anything
// else, which the general path answers. A name with upper-case letters is left to it
// too: answers name their records in lower case (as the entries hold them), and the
// fast path's owners point at the question as asked.
func parseFast(data []byte, lower []byte) (q fastQuery, n int, ok bool) {
	if len(data) < 12+1+4 || data[2]&0xF8 != 0 || // QR clear, opcode QUERY
		binary.BigEndian.Uint16(data[4:]) != 1 || binary.BigEndian.Uint16(data[6:]) != 0 ||
		binary.BigEndian.Uint16(data[8:]) != 0 || binary.BigEndian.Uint16(data[10:]) > 1 {
		return q, 0, false
	}
	off := 12
	mixed := false
	for {
		l := int(data[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || off+1+l >= len(data) || off+1+l-12 > 254 { // no pointers; at most 255 bytes
			return q, 0, false
		}
		for _, c := range data[off+1 : off+1+l] {
			switch {
			case c >= 'A' && c <= 'Z':
				mixed = true
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return q, 0, false
			}
			lower[n] = c
			n++
		}
		lower[n] = '.'
		n++
		off += 1 + l
	}
	if n == 0 || mixed || off+4 > len(data) || binary.BigEndian.Uint16(data[off+2:]) != dns.ClassINET {
		return q, 0, false
	}
	q.qtype = binary.BigEndian.Uint16(data[off:])
	off += 4
	q.qend = off
	if data[11] == 0 {
		return q, n, off == len(data)
	}
	// OPT (RFC 6891 §6.1.2): root owner, type 41, class the buffer size, TTL extended
	// RCODE, version and flags, no options.
	if len(data) != off+11 || data[off] != 0 || binary.BigEndian.Uint16(data[off+1:]) != dns.TypeOPT ||
		data[off+6] != 0 || binary.BigEndian.Uint16(data[off+9:]) != 0 {
		return q, 0, false
	}
	q.edns, q.udpMax = true, int(binary.BigEndian.Uint16(data[off+3:]))
	return q, n, true
}

// answerFast answers a UDP query into sc.out by the fast path, or returns ok false
// for the general path to answer it.
func (s *Server) answerFast(data []byte, sc *scratch) (wire []byte, qtype uint16, ok bool) {
	q, n, ok := parseFast(data, sc.lower[:])
	if !ok {
		return nil, 0, false
	}
	if g := s.gen.Load(); g != sc.gen {
		clear(sc.cache)
		sc.gen = g
	}
	e, hit := sc.cache[string(sc.lower[:n])]
	if !hit {
		e = s.lookupFast(string(sc.lower[:n]), sc)
	}
	if e == nil {
		return nil, 0, false
	}
	units := e.types[q.qtype]
	if len(units) == 0 {
		return nil, 0, false // NODATA: with the zone's SOA, the general way
	}
	size := 512
	if q.edns {
		size = min(max(q.udpMax, 512), s.cfg.MaxUDPSize)
	}
	sel, tc, unreachable := s.choose(e, units, size, &sc.picks)
	if len(sel) == 0 {
		return nil, 0, false
	}
	b, ok := s.assemble(data[:q.qend], q.edns, units, sel, tc, size, sc)
	if ok && unreachable > 0 {
		s.metrics.unreachable.Add(float64(unreachable))
	}
	return b, q.qtype, ok
}

// lookupFast finds the entry of a name not in sc's cache and keeps it there, or
// keeps nil (the general path answers the name) for a name with no cached entry.
// Nothing is kept when the catalog moved meanwhile.
func (s *Server) lookupFast(qn string, sc *scratch) *entry {
	var e *entry
	switch n := s.parseName(qn); n.kind {
	case kindOutside, kindUnknown, kindAddr:
	default:
		e = s.lookup(qn, n)
	}
	if len(sc.cache) >= maxFastCache {
		clear(sc.cache)
	}
	if s.gen.Load() == sc.gen {
		sc.cache[qn] = e
	}
	return e
}

// maxFastCache bounds the names a scratch remembers (unknown names included, as nil).
const maxFastCache = 1024

// assemble writes the answer to the question (the query's bytes up to its end) of
// the units sel picks, or returns ok false when a picked unit has no wire form or the
// answer does not fit size (pack's trimming is the general path's).
func (s *Server) assemble(query []byte, edns bool, units []unit, sel []int, tc bool, size int, sc *scratch) ([]byte, bool) {
	buf := sc.out[:min(cap(sc.out), size)]
	if len(query) > len(buf) {
		return nil, false
	}
	off := copy(buf, query)
	flags := uint16(flagQR | flagAA)
	flags |= binary.BigEndian.Uint16(query[2:]) & (flagRD | flagCD) // SetReply copies RD and CD
	if len(s.cfg.Recursors) > 0 {
		flags |= flagRA
	}
	if tc {
		flags |= flagTC
	}
	binary.BigEndian.PutUint16(buf[2:], flags)
	// starts[bases[p]+j] is where the j-th record of the p-th unit picked begins.
	bases, starts := sc.bases[:0], sc.starts[:0]
	put := func(p, j int, w *wireRR) bool {
		if off+len(w.b) > len(buf) {
			return false
		}
		starts[bases[p]+j] = off
		copy(buf[off:], w.b)
		if w.ref >= 0 {
			ptr := starts[bases[p]+w.ref] + w.at
			if ptr > 0x3FFF {
				return false
			}
			binary.BigEndian.PutUint16(buf[off:], 0xC000|uint16(ptr))
		}
		off += len(w.b)
		return true
	}
	an, ar := 0, 0
	for p, i := range sel {
		u := &units[i]
		if u.wire == nil {
			return nil, false
		}
		bases = append(bases, len(starts))
		for range u.wire {
			starts = append(starts, 0)
		}
		for j := range u.ans {
			if !put(p, j, &u.wire[j]) {
				return nil, false
			}
			an++
		}
	}
	sc.bases, sc.starts = bases, starts
	if edns {
		if off+len(s.optWire) > len(buf) {
			return nil, false
		}
		off += copy(buf[off:], s.optWire)
		ar++
	}
	for p, i := range sel {
		u := &units[i]
		for j := len(u.ans); j < len(u.wire); j++ {
			if !put(p, j, &u.wire[j]) {
				return nil, false
			}
			ar++
		}
	}
	binary.BigEndian.PutUint16(buf[6:], uint16(an))
	binary.BigEndian.PutUint16(buf[8:], 0)
	binary.BigEndian.PutUint16(buf[10:], uint16(ar))
	return buf[:off], true
}
