package dnsserver

import (
	"encoding/binary"
	"fmt"

	"github.com/miekg/dns"
)

// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD and CD), as miekg/dns packs them.
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagZ  = 1 << 6
	flagAD = 1 << 5
	flagCD = 1 << 4
)

// packMsg packs m into buf with name compression, as m.PackBuffer(buf) does with
// m.Compress set, byte for byte (TestPackMsgMatchesMiekg), but with a compression
// table the caller keeps: PackBuffer makes and grows a new map for every message,
// which was a sixth of a UDP answer's allocations. comp is cleared first; buf must
// hold the message (a UDP or TCP answer's buffer is dns.MaxMsgSize).
//
// dns.PackRR writes the record's Rdlength, and the server's records are shared by
// concurrent answers: cp holds the caller's private copies of the records packed.
func packMsg(m *dns.Msg, buf []byte, comp map[string]int, cp *rrCopies) ([]byte, error) {
	if m.Rcode < 0 || m.Rcode > 0xFFF {
		return nil, dns.ErrRcode
	}
	if opt := m.IsEdns0(); opt != nil {
		opt.SetExtendedRcode(uint16(m.Rcode))
	} else if m.Rcode > 0xF {
		return nil, dns.ErrExtendedRcode
	}
	clear(comp)
	buf = buf[:cap(buf)]
	if len(buf) < 12 {
		return nil, dns.ErrBuf
	}
	bits := uint16(m.Opcode)<<11 | uint16(m.Rcode&0xF)
	for _, f := range [...]struct {
		set bool
		bit uint16
	}{{m.Response, flagQR}, {m.Authoritative, flagAA}, {m.Truncated, flagTC}, {m.RecursionDesired, flagRD},
		{m.RecursionAvailable, flagRA}, {m.Zero, flagZ}, {m.AuthenticatedData, flagAD}, {m.CheckingDisabled, flagCD}} {
		if f.set {
			bits |= f.bit
		}
	}
	binary.BigEndian.PutUint16(buf[0:], m.Id)
	binary.BigEndian.PutUint16(buf[2:], bits)
	binary.BigEndian.PutUint16(buf[4:], uint16(len(m.Question)))
	binary.BigEndian.PutUint16(buf[6:], uint16(len(m.Answer)))
	binary.BigEndian.PutUint16(buf[8:], uint16(len(m.Ns)))
	binary.BigEndian.PutUint16(buf[10:], uint16(len(m.Extra)))
	off := 12
	var err error
	for _, q := range m.Question {
		if off, err = dns.PackDomainName(q.Name, buf, off, comp, true); err != nil {
			return nil, fmt.Errorf("dnsserver: pack question %q: %w", q.Name, err)
		}
		if off+4 > len(buf) {
			return nil, dns.ErrBuf
		}
		binary.BigEndian.PutUint16(buf[off:], q.Qtype)
		binary.BigEndian.PutUint16(buf[off+2:], q.Qclass)
		off += 4
	}
	for _, sec := range [...][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if off, err = dns.PackRR(cp.of(rr), buf, off, comp, true); err != nil {
				return nil, fmt.Errorf("dnsserver: pack %s record of %q: %w", dns.TypeToString[rr.Header().Rrtype], rr.Header().Name, err)
			}
		}
	}
	return buf[:off], nil
}

// rrCopies is one goroutine's copies of the records it packs, one per common type, so
// that dns.PackRR's write of Rdlength lands in memory no other goroutine reads. Copying
// a record copies its header and slice headers, not what they point to: packing only
// reads those.
type rrCopies struct {
	a     dns.A
	aaaa  dns.AAAA
	srv   dns.SRV
	txt   dns.TXT
	ptr   dns.PTR
	cname dns.CNAME
	ns    dns.NS
	soa   dns.SOA
	opt   dns.OPT
}

// of returns a private copy of rr: one of c's for the common types, a new one (an
// allocation) for others.
func (c *rrCopies) of(rr dns.RR) dns.RR {
	switch v := rr.(type) {
	case *dns.A:
		c.a = *v
		return &c.a
	case *dns.AAAA:
		c.aaaa = *v
		return &c.aaaa
	case *dns.SRV:
		c.srv = *v
		return &c.srv
	case *dns.TXT:
		c.txt = *v
		return &c.txt
	case *dns.PTR:
		c.ptr = *v
		return &c.ptr
	case *dns.CNAME:
		c.cname = *v
		return &c.cname
	case *dns.NS:
		c.ns = *v
		return &c.ns
	case *dns.SOA:
		c.soa = *v
		return &c.soa
	case *dns.OPT:
		c.opt = *v
		return &c.opt
	}
	return dns.Copy(rr)
}
