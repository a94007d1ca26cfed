package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"strings"
)

// kind is the form of a query name.
type kind uint8

const (
	kindOutside    kind = iota // outside the zones and not a reverse name: refused or forwarded
	kindUnknown                // in a zone but no form of ours (NXDOMAIN)
	kindApex                   // the zone itself: SOA, NS
	kindNS                     // ns.<domain>: this node's address
	kindService                // [tag.]<service>.service[.<dc>] and _<service>._<tag|tcp|udp>.service[.<dc>]
	kindNode                   // <node>.node[.<dc>]
	kindAddr                   // <hex-ip>.addr[.<dc>]
	kindSDServices             // _services._dns-sd._udp: every service type (RFC 6763 §9)
	kindSDType                 // _<service>._tcp: the service's instances (RFC 6763 §4)
	kindSDInstance             // <service ID>-<node>._<service>._tcp: one instance (RFC 6763 §6)
	kindReverse                // <ip>.in-addr.arpa, <nibbles>.ip6.arpa
)

// name is a parsed query name. Every string is lower case.
type name struct {
	kind    kind
	zone    string // the zone it is in ("consul."), "" for kindOutside and kindReverse
	service string // kindService, kindSD*
	tag     string // kindService; "" for none
	node    string // kindNode
	inst    string // kindSDInstance: the instance label
	proto   string // kindSD*: "_tcp" or "_udp"
	addr    netip.Addr
}

// parseName parses a lower-case, fully qualified name.
func (s *Server) parseName(q string) name {
	zone := ""
	switch {
	case inZone(q, s.cfg.Domain):
		zone = s.cfg.Domain
	case s.cfg.AltDomain != "" && inZone(q, s.cfg.AltDomain):
		zone = s.cfg.AltDomain
	default:
		if a, ok := parseReverse(q); ok {
			return name{kind: kindReverse, addr: a}
		}
		return name{kind: kindOutside}
	}
	n := name{kind: kindUnknown, zone: zone}
	if len(q) == len(zone) {
		n.kind = kindApex
		return n
	}
	labels := splitLabels(q[:len(q)-len(zone)-1])
	last := len(labels) - 1
	// An optional datacenter label after the keyword.
	if last >= 1 && isKeyword(labels[last-1]) && !isKeyword(labels[last]) {
		if labels[last] != s.cfg.Datacenter {
			return n // another datacenter: unknown here
		}
		labels, last = labels[:last], last-1
	}
	switch labels[last] {
	case "service":
		switch {
		case last == 2 && strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_"):
			// RFC 2782: _<service>._<tag|tcp|udp>.service
			n.kind, n.service = kindService, labels[0][1:]
			if t := labels[1][1:]; t != "tcp" && t != "udp" {
				n.tag = t
			}
		case last == 1:
			n.kind, n.service = kindService, labels[0]
		case last == 2:
			n.kind, n.tag, n.service = kindService, labels[0], labels[1]
		}
		if n.service == "" {
			n.kind = kindUnknown
		}
	case "node":
		if last == 1 {
			n.kind, n.node = kindNode, labels[0]
		}
	case "addr":
		if last == 1 {
			if a, ok := parseHexAddr(labels[0]); ok {
				n.kind, n.addr = kindAddr, a
			}
		}
	case "_tcp", "_udp":
		if last >= 1 && len(labels[last-1]) > 1 && labels[last-1][0] == '_' {
			n.service, n.proto = labels[last-1][1:], labels[last]
			switch last {
			case 1:
				n.kind = kindSDType
			case 2:
				n.kind, n.inst = kindSDInstance, labels[0]
			}
		}
	case "ns":
		if last == 0 {
			n.kind = kindNS
		}
	}
	if last == 2 && labels[0] == "_services" && labels[1] == "_dns-sd" && labels[2] == "_udp" {
		n.kind = kindSDServices
	}
	return n
}

func isKeyword(l string) bool { return l == "service" || l == "node" || l == "addr" }

// inZone reports whether q is zone or below it.
func inZone(q, zone string) bool {
	return q == zone || (len(q) > len(zone) && strings.HasSuffix(q, zone) && q[len(q)-len(zone)-1] == '.')
}

// splitLabels splits a name without its trailing dot at the dots that are not
// escaped; labels keep their escapes.
func splitLabels(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '.':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseHexAddr reads Consul's addr form: 8 hex digits for IPv4, 32 for IPv6.
func parseHexAddr(h string) (netip.Addr, bool) {
	if len(h) != 8 && len(h) != 32 {
		return netip.Addr{}, false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return netip.Addr{}, false
	}
	a, _ := netip.AddrFromSlice(b)
	return a, true
}

// hexAddr is the addr label of a.
func hexAddr(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		return hex.EncodeToString(b[:])
	}
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// parseReverse reads a reverse-lookup name (RFC 1035 §3.5, RFC 3596 §2.5).
func parseReverse(q string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(q, ".in-addr.arpa."); ok {
		l := strings.Split(rest, ".")
		if len(l) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(l[3] + "." + l[2] + "." + l[1] + "." + l[0])
		return a, err == nil && a.Is4()
	}
	if rest, ok := strings.CutSuffix(q, ".ip6.arpa."); ok {
		l := strings.Split(rest, ".")
		if len(l) != 32 {
			return netip.Addr{}, false
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			if len(l[i]) != 1 {
				return netip.Addr{}, false
			}
			b.WriteString(l[i])
		}
		return parseHexAddr(b.String())
	}
	return netip.Addr{}, false
}
