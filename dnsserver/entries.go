package dnsserver

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
)

// An entry is the precomputed answer of one query name, built from the catalog and
// kept until topic moves past index. Entries are immutable once stored: queries read
// them without locks, and their records are shared by concurrent answers (packing
// only reads a record).
type entry struct {
	topic    catalog.Topic
	index    uint64
	exists   bool              // the name exists (NODATA rather than NXDOMAIN)
	shuffle  bool              // pick units at random (service answers)
	weighted bool              // ... by weight
	types    map[uint16][]unit // answers by query type, dns.TypeANY included
}

// A unit is what one answered instance adds: answers and additional records, all or
// nothing, so that a cut never leaves an SRV without its target's address.
type unit struct {
	ans   []dns.RR
	extra []dns.RR
	w     int    // load-balancing weight, when the entry is weighted
	size  int    // the records' uncompressed wire length
	node  string // the instance's node, for OrderNear
	// addr is the instance's "ip:port" asked of Config.Reachability; "" (no port or
	// address: nothing to connect to) counts as reachable.
	addr string
	// wire is the records packed for the UDP fast path (fastpath.go), answers then
	// extras; nil when the entry was not sealed or the unit does not pack.
	wire []wireRR
}

func (e *entry) add(t uint16, u unit) {
	if e.types == nil {
		e.types = map[uint16][]unit{}
	}
	for _, rr := range u.ans {
		u.size += dns.Len(rr)
	}
	for _, rr := range u.extra {
		u.size += dns.Len(rr)
	}
	e.types[t] = append(e.types[t], u)
}

func hdr(owner string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// addrRR returns an A or AAAA record of a.
func addrRR(owner string, a netip.Addr, ttl uint32) (dns.RR, uint16) {
	if a.Is4() || a.Is4In6() {
		return &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: a.Unmap().AsSlice()}, dns.TypeA
	}
	return &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: a.AsSlice()}, dns.TypeAAAA
}

// txtStrings returns meta as sorted "key=value" strings of at most 255 bytes.
func txtStrings(meta map[string]string) []string {
	out := make([]string, 0, len(meta))
	for k, v := range meta {
		s := k + "=" + v
		if len(s) > 255 {
			s = s[:255]
		}
		out = append(out, escapeTXT(s))
	}
	slices.Sort(out)
	return out
}

// escapeTXT escapes what miekg/dns would read as presentation-format syntax.
func escapeTXT(s string) string {
	if !strings.ContainsAny(s, "\\\"") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// escapeLabel turns free text into one DNS label in presentation format.
func escapeLabel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' || c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' || c == '@' || c == '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c <= ' ' || c >= 0x7f:
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// serves reports whether an instance is answered: its checks pass (or warn, unless
// OnlyPassing) and gossip does not hold its node failed or gone.
func (s *Server) serves(in *catalog.Instance) bool {
	if l := in.Node.Liveness; l == catalog.LivenessFailed || l == catalog.LivenessLeft {
		return false
	}
	switch in.Status {
	case catalog.StatusPassing:
		return true
	case catalog.StatusWarning:
		return !s.cfg.OnlyPassing
	}
	return false
}

func weight(in *catalog.Instance) int {
	if in.Status == catalog.StatusWarning {
		return in.Service.Weights.Warning
	}
	return in.Service.Weights.Passing
}

// names maps lower-case service names to the catalog's spelling, as of a
// TopicServices index.
type names struct {
	index   uint64
	byLower map[string]string
}

// serviceName returns the catalog's name of a service asked in lower case: DNS names
// are case-insensitive, catalog names are not. An unknown name costs one map lookup
// (and a TopicServices read), so random names cannot make the server scan the catalog.
func (s *Server) serviceName(lower string) (string, bool) {
	idx := s.cfg.Catalog.TopicIndex(catalog.TopicServices)
	ns := s.names.Load()
	if ns == nil || ns.index != idx {
		ns = &names{index: idx, byLower: map[string]string{}}
		for _, sum := range s.cfg.Catalog.Services(catalog.Filter{}) {
			ns.byLower[strings.ToLower(sum.Name)] = sum.Name
		}
		s.names.Store(ns)
	}
	n, ok := ns.byLower[lower]
	return n, ok
}

// instances returns the instances of the service asked for in lower case.
func (s *Server) instances(svc string) []catalog.Instance {
	name, ok := s.serviceName(svc)
	if !ok {
		return nil
	}
	return s.cfg.Catalog.ServiceInstances(name, catalog.Filter{})
}

// node returns the named node, matching without regard to case.
func (s *Server) node(nm string) (catalog.NodeEntry, bool) {
	if nm == "" {
		return catalog.NodeEntry{}, false
	}
	for _, n := range s.cfg.Catalog.Nodes(catalog.Filter{}) {
		if strings.EqualFold(n.Node.Name, nm) {
			return n, true
		}
	}
	return catalog.NodeEntry{}, false
}

// target returns the SRV target of an instance and its address records: the node's
// name when the instance has the node's address, <hex>.addr otherwise, or the
// service's own host name.
func (s *Server) target(in *catalog.Instance, zone string, ttl uint32) (string, []dns.RR) {
	dc := s.cfg.Datacenter
	nodeAddr, _ := netip.ParseAddr(in.Node.Node.Address)
	addr := nodeAddr
	host := strings.ToLower(escapeLabel(in.Node.Node.Name)) + ".node." + dc + "." + zone
	if in.Service.Address != "" && in.Service.Address != in.Node.Node.Address {
		a, err := netip.ParseAddr(in.Service.Address)
		if err != nil {
			if _, ok := dns.IsDomainName(in.Service.Address); ok {
				return dns.Fqdn(strings.ToLower(in.Service.Address)), nil
			}
			return host, nil
		}
		addr = a
		host = hexAddr(a) + ".addr." + dc + "." + zone
	}
	if !addr.IsValid() {
		return host, nil
	}
	rr, _ := addrRR(host, addr, ttl)
	return host, []dns.RR{rr}
}

// build computes the entry of a name; nil means the name does not exist.
func (s *Server) build(qn string, n name) *entry {
	switch n.kind {
	case kindService:
		return s.buildService(qn, n)
	case kindNode:
		return s.buildNode(qn, n)
	case kindApex, kindNS:
		return s.buildApex(qn, n)
	case kindSDServices:
		return s.buildSDServices(qn, n)
	case kindSDType, kindSDInstance:
		return s.buildSD(qn, n)
	case kindReverse:
		return s.buildReverse(qn, n)
	}
	return nil
}

func (s *Server) buildService(qn string, n name) *entry {
	e := &entry{topic: catalog.ServiceTopic(n.service), shuffle: true}
	e.index = s.cfg.Catalog.TopicIndex(e.topic)
	insts := s.instances(n.service)
	if len(insts) > 0 {
		e.topic = catalog.ServiceTopic(insts[0].Service.Name)
		e.index = s.cfg.Catalog.TopicIndex(e.topic)
		insts = s.instances(n.service) // read after the index: a later change moves it
	}
	ttl := s.cfg.ttlFor(n.service)
	for i := range insts {
		in := &insts[i]
		if n.tag != "" && !slices.ContainsFunc(in.Service.Tags, func(t string) bool { return strings.EqualFold(t, n.tag) }) {
			continue
		}
		e.exists = true
		if !s.serves(in) {
			continue
		}
		w := weight(in)
		if w != 1 {
			e.weighted = true
		}
		tgt, extra := s.target(in, n.zone, ttl)
		srv := &dns.SRV{Hdr: hdr(qn, dns.TypeSRV, ttl), Priority: 1, Weight: uint16(min(max(w, 0), 65535)),
			Port: uint16(in.Service.Port), Target: tgt}
		nd, ra := in.Node.Node.Name, reachAddr(in)
		e.add(dns.TypeSRV, unit{ans: []dns.RR{srv}, extra: extra, w: w, node: nd, addr: ra})
		var any []dns.RR
		if a, err := netip.ParseAddr(addrOf(in)); err == nil {
			rr, t := addrRR(qn, a, ttl)
			e.add(t, unit{ans: []dns.RR{rr}, w: w, node: nd, addr: ra})
			any = append(any, rr)
		}
		if len(in.Service.Meta) > 0 {
			txt := &dns.TXT{Hdr: hdr(qn, dns.TypeTXT, ttl), Txt: txtStrings(in.Service.Meta)}
			e.add(dns.TypeTXT, unit{ans: []dns.RR{txt}, w: w, node: nd, addr: ra})
			any = append(any, txt)
		}
		if len(any) > 0 {
			e.add(dns.TypeANY, unit{ans: any, w: w, node: nd, addr: ra})
		}
	}
	if !e.exists {
		return nil
	}
	return e
}

// reachAddr is the "ip:port" whose reachability from here decides an instance's
// place in answers (as the HTTP API asks it), or "" when it has no port or address.
func reachAddr(in *catalog.Instance) string {
	a := addrOf(in)
	if in.Service.Port == 0 || a == "" {
		return ""
	}
	return net.JoinHostPort(a, strconv.Itoa(in.Service.Port))
}

func addrOf(in *catalog.Instance) string {
	if in.Service.Address != "" {
		return in.Service.Address
	}
	return in.Node.Node.Address
}

func (s *Server) nodeRecords(e *entry, owner string, nd catalog.NodeEntry) {
	ttl := secs(s.cfg.NodeTTL)
	var any []dns.RR
	if a, err := netip.ParseAddr(nd.Node.Address); err == nil {
		rr, t := addrRR(owner, a, ttl)
		e.add(t, unit{ans: []dns.RR{rr}})
		any = append(any, rr)
	}
	if len(nd.Node.Meta) > 0 {
		var txts []dns.RR
		for _, t := range txtStrings(nd.Node.Meta) {
			txts = append(txts, &dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: []string{t}})
		}
		e.add(dns.TypeTXT, unit{ans: txts})
		any = append(any, txts...)
	}
	if len(any) > 0 {
		e.add(dns.TypeANY, unit{ans: any})
	}
}

func (s *Server) buildNode(qn string, n name) *entry {
	e := &entry{topic: catalog.TopicNodes, exists: true}
	e.index = s.cfg.Catalog.TopicIndex(e.topic)
	nd, ok := s.node(n.node)
	if !ok {
		return nil
	}
	s.nodeRecords(e, qn, nd)
	return e
}

// buildApex answers the zone (SOA, NS) and ns.<zone>, the name of its server: this
// node.
func (s *Server) buildApex(qn string, n name) *entry {
	e := &entry{topic: catalog.NodeTopic(s.cfg.NodeName), exists: true}
	e.index = s.cfg.Catalog.TopicIndex(e.topic)
	nsName := "ns." + n.zone
	var glue entry
	if nd, ok := s.node(s.cfg.NodeName); ok {
		s.nodeRecords(&glue, nsName, nd)
	}
	if n.kind == kindNS {
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			for _, u := range glue.types[t] {
				e.add(t, u)
				e.add(dns.TypeANY, u)
			}
		}
		return e
	}
	soa := s.soa(n.zone)
	ns := &dns.NS{Hdr: hdr(qn, dns.TypeNS, secs(s.cfg.NodeTTL)), Ns: nsName}
	var extra []dns.RR
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		for _, u := range glue.types[t] {
			extra = append(extra, u.ans...)
		}
	}
	e.add(dns.TypeSOA, unit{ans: []dns.RR{soa}})
	e.add(dns.TypeNS, unit{ans: []dns.RR{ns}, extra: extra})
	e.add(dns.TypeANY, unit{ans: []dns.RR{soa, ns}, extra: extra})
	return e
}

// sdType is the DNS-SD service type name of a service in a zone: _web._tcp.consul.
func sdType(service, proto, zone string) string {
	return "_" + strings.ToLower(escapeLabel(service)) + "." + proto + "." + zone
}

// sdInstance is an instance's DNS-SD name, <service ID>-<node>, as mDNS publishes it.
func sdInstance(in *catalog.Instance) string {
	return escapeLabel(in.Service.ID + "-" + in.Node.Node.Name)
}

func (s *Server) buildSDServices(qn string, n name) *entry {
	e := &entry{topic: catalog.TopicServices, exists: true}
	e.index = s.cfg.Catalog.TopicIndex(e.topic)
	for _, sum := range s.cfg.Catalog.Services(catalog.Filter{}) {
		ptr := &dns.PTR{Hdr: hdr(qn, dns.TypePTR, 0), Ptr: sdType(sum.Name, "_tcp", n.zone)}
		e.add(dns.TypePTR, unit{ans: []dns.RR{ptr}})
		e.add(dns.TypeANY, unit{ans: []dns.RR{ptr}})
	}
	return e
}

// buildSD answers a DNS-SD service type (PTR to its instances, with their SRV, TXT
// and addresses as additional records, RFC 6763 §12.1) or one instance (SRV, TXT).
func (s *Server) buildSD(qn string, n name) *entry {
	e := &entry{topic: catalog.ServiceTopic(n.service)}
	insts := s.instances(n.service)
	if len(insts) > 0 {
		e.topic = catalog.ServiceTopic(insts[0].Service.Name)
	}
	e.index = s.cfg.Catalog.TopicIndex(e.topic)
	insts = s.instances(n.service)
	typ := sdType(n.service, n.proto, n.zone)
	ttl := s.cfg.ttlFor(n.service)
	for i := range insts {
		in := &insts[i]
		label := sdInstance(in)
		if n.kind == kindSDInstance && strings.ToLower(label) != n.inst {
			continue
		}
		e.exists = true
		if !s.serves(in) {
			continue
		}
		instName := label + "." + typ
		owner := instName
		if n.kind == kindSDInstance {
			owner = qn
		}
		tgt, addrs := s.target(in, n.zone, ttl)
		srv := &dns.SRV{Hdr: hdr(owner, dns.TypeSRV, ttl), Priority: 1, Weight: uint16(min(max(weight(in), 0), 65535)),
			Port: uint16(in.Service.Port), Target: tgt}
		txt := &dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: txtStrings(in.Service.Meta)}
		if len(txt.Txt) == 0 {
			txt.Txt = []string{""} // RFC 6763 §6.1: an empty TXT record holds one empty string
		}
		ra := reachAddr(in)
		if n.kind == kindSDInstance {
			e.add(dns.TypeSRV, unit{ans: []dns.RR{srv}, extra: addrs, addr: ra})
			e.add(dns.TypeTXT, unit{ans: []dns.RR{txt}, addr: ra})
			e.add(dns.TypeANY, unit{ans: []dns.RR{srv, txt}, extra: addrs, addr: ra})
			continue
		}
		ptr := &dns.PTR{Hdr: hdr(qn, dns.TypePTR, ttl), Ptr: instName}
		u := unit{ans: []dns.RR{ptr}, extra: append([]dns.RR{srv, txt}, addrs...), addr: ra}
		e.add(dns.TypePTR, u)
		e.add(dns.TypeANY, u)
	}
	if n.kind == kindSDType && len(insts) > 0 {
		e.exists = true
	}
	if n.kind == kindSDInstance && !e.exists && len(insts) > 0 {
		s.addMoved(e, qn, n, insts[0].Service.Name, insts) // moved.go
	}
	if !e.exists {
		return nil
	}
	return e
}

// buildReverse answers a PTR query for an address: the nodes that have it and the
// services registered with it as their own address.
func (s *Server) buildReverse(qn string, n name) *entry {
	e := &entry{topic: catalog.TopicAll}
	e.index = s.cfg.Catalog.TopicIndex(e.topic)
	zone, dc := s.cfg.Domain, s.cfg.Datacenter
	ttl := secs(s.cfg.NodeTTL)
	seen := map[string]bool{}
	addPTR := func(target string) {
		if seen[target] {
			return
		}
		seen[target] = true
		ptr := &dns.PTR{Hdr: hdr(qn, dns.TypePTR, ttl), Ptr: target}
		e.add(dns.TypePTR, unit{ans: []dns.RR{ptr}})
		e.add(dns.TypeANY, unit{ans: []dns.RR{ptr}})
		e.exists = true
	}
	for _, nd := range s.cfg.Catalog.Nodes(catalog.Filter{}) {
		if a, err := netip.ParseAddr(nd.Node.Address); err == nil && a.Unmap() == n.addr.Unmap() {
			addPTR(strings.ToLower(escapeLabel(nd.Node.Name)) + ".node." + dc + "." + zone)
		}
	}
	for _, sum := range s.cfg.Catalog.Services(catalog.Filter{}) {
		for _, in := range s.cfg.Catalog.ServiceInstances(sum.Name, catalog.Filter{}) {
			if a, err := netip.ParseAddr(in.Service.Address); err == nil && a.Unmap() == n.addr.Unmap() {
				addPTR(strings.ToLower(escapeLabel(sum.Name)) + ".service." + dc + "." + zone)
			}
		}
	}
	if !e.exists {
		return nil
	}
	return e
}

// buildAddr answers <hex>.addr names; it needs no catalog.
func (s *Server) buildAddr(qn string, n name) *entry {
	e := &entry{exists: true}
	rr, t := addrRR(qn, n.addr, secs(s.cfg.NodeTTL))
	e.add(t, unit{ans: []dns.RR{rr}})
	e.add(dns.TypeANY, unit{ans: []dns.RR{rr}})
	return e
}

// soa is the zone's SOA record; its minimum and TTL are the negative TTL (RFC 2308).
func (s *Server) soa(zone string) *dns.SOA {
	neg := secs(s.cfg.NegativeTTL)
	return &dns.SOA{Hdr: hdr(zone, dns.TypeSOA, neg), Ns: "ns." + zone, Mbox: "hostmaster." + zone,
		Serial: s.serial, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: neg}
}
