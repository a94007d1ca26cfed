package dnsserver

import (
	"strings"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
)

// A moved instance keeps its DNS-SD name for as long as its old node keeps the
// forward pointer (catalog.Move): <service ID>-<old node>._<service>._tcp.<zone>
// (the name mDNS and DNS-SD browsing give an instance; see sdInstance) is answered
// with a CNAME to the instance's new name, <new service ID>-<new node>._<service>._tcp.<zone>,
// followed by the new instance's records (SRV and TXT, its address as additional),
// so a client that kept the old name is sent on in one round trip (RFC 1034 §3.6.2).
// Service names (web.service.consul) need nothing: they list the instances where
// they are.

// Moves is what the server reads of forward pointers. *catalog.Catalog has it; a
// Catalog without it answers moved names as unknown (NXDOMAIN), as before moves.
type Moves interface {
	// Moves returns the live pointers of the named service ("" for all).
	Moves(name string) []catalog.MoveEntry
}

// movedTo returns the pointer whose old instance label (lower case) is inst, of
// the named service.
func (s *Server) movedTo(service, inst string) (catalog.MoveEntry, bool) {
	mv, ok := s.cfg.Catalog.(Moves)
	if !ok {
		return catalog.MoveEntry{}, false
	}
	for _, e := range mv.Moves(service) {
		if strings.ToLower(escapeLabel(e.ServiceID+"-"+e.From)) == inst {
			return e, true
		}
	}
	return catalog.MoveEntry{}, false
}

// addMoved fills e, the entry of a DNS-SD instance name qn that no instance holds,
// with a CNAME to where the instance moved and the new instance's records; false if
// it did not move (or its new instance is not answered: a CNAME to nothing would
// only cost the client a second failed lookup).
func (s *Server) addMoved(e *entry, qn string, n name, service string, insts []catalog.Instance) bool {
	mv, ok := s.movedTo(service, n.inst)
	if !ok {
		return false
	}
	for i := range insts {
		in := &insts[i]
		if in.Node.Node.Name != mv.Move.ToNode || in.Service.ID != mv.Move.ToServiceID || !s.serves(in) {
			continue
		}
		ttl := s.cfg.ttlFor(n.service)
		target := sdInstance(in) + "." + sdType(n.service, n.proto, n.zone)
		cname := &dns.CNAME{Hdr: hdr(qn, dns.TypeCNAME, ttl), Target: target}
		tgt, addrs := s.target(in, n.zone, ttl)
		srv := &dns.SRV{Hdr: hdr(target, dns.TypeSRV, ttl), Priority: 1, Weight: uint16(min(max(weight(in), 0), 65535)),
			Port: uint16(in.Service.Port), Target: tgt}
		txt := &dns.TXT{Hdr: hdr(target, dns.TypeTXT, ttl), Txt: txtStrings(in.Service.Meta)}
		if len(txt.Txt) == 0 {
			txt.Txt = []string{""}
		}
		ra := reachAddr(in)
		e.exists = true
		// RFC 1034 §3.6.2: the CNAME answers every type; the target's records of the
		// asked type follow it.
		e.add(dns.TypeSRV, unit{ans: []dns.RR{cname, srv}, extra: addrs, addr: ra})
		e.add(dns.TypeTXT, unit{ans: []dns.RR{cname, txt}, addr: ra})
		e.add(dns.TypeANY, unit{ans: []dns.RR{cname, srv, txt}, extra: addrs, addr: ra})
		for _, t := range []uint16{dns.TypeCNAME, dns.TypeA, dns.TypeAAAA} {
			e.add(t, unit{ans: []dns.RR{cname}})
		}
		return true
	}
	return false
}
