package mdns

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Record TTLs (RFC 6762 §10): 120 s for records that carry or name a host (SRV, A,
// AAAA), 75 minutes for the others (PTR, TXT).
const (
	hostTTL  = 120
	otherTTL = 4500
)

// legacyTTL caps the TTL of answers to legacy unicast queries (RFC 6762 §6.7).
const legacyTTL = 10

// escapeLabel writes one DNS label in miekg/dns's presentation form, the form in
// which it unpacks names, so that names built here compare equal to names received.
func escapeLabel(s string) string { return escapePresentation(s, `. '@;()"\`) }

// escapeTXT writes one TXT string in miekg/dns's presentation form.
func escapeTXT(s string) string { return escapePresentation(s, `"\`) }

// escapePresentation gives the bytes in special a backslash and writes bytes outside
// printable ASCII as \DDD, as miekg/dns does for labels and TXT strings (which differ
// only in what is special).
func escapePresentation(s, special string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case strings.IndexByte(special, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// txtStrings turns a TXT map into the record's strings, "key=value", sorted by key
// so that the record, and so its rate limit and conflict checks, is stable.
func txtStrings(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, escapeTXT(k+"="+m[k]))
	}
	if len(out) == 0 {
		out = []string{""} // RFC 6763 §6.1: an empty TXT record holds one empty string
	}
	return out
}

// recKey names a record for rate limiting and comparison: its name (lower case),
// type and data. Records of types rdata does not know get their text form.
func recKey(rr dns.RR) string {
	h := rr.Header()
	d, ok := rdata(rr)
	if !ok {
		d = strings.TrimPrefix(rr.String(), h.String())
	}
	return strings.ToLower(h.Name) + "\x00" + strconv.Itoa(int(h.Rrtype)) + "\x00" + d
}

// shared reports whether a record is shared (a PTR: many responders may hold it)
// rather than unique to one responder (SRV, TXT, A, AAAA: sent with the cache-flush
// bit, RFC 6762 §10.2).
func shared(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypePTR }

// rawRdata is a record's data in wire form, uncompressed (RFC 6762 §8.2's
// lexicographic comparison).
func rawRdata(rr dns.RR) []byte {
	buf := make([]byte, dns.Len(rr)+64)
	end, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil || end < 2 {
		return nil
	}
	nameLen := dns.Len(&dns.ANY{Hdr: dns.RR_Header{Name: rr.Header().Name}}) - 10
	start := nameLen + 10
	if start < 0 || start > end {
		return nil
	}
	return buf[start:end]
}

// compareProbes compares two sets of proposed records for one name as RFC 6762 §8.2
// says: each sorted by class, type and data, then compared pairwise; the first
// difference decides, and when one set is a prefix of the other the longer wins. It
// returns >0 when ours wins, <0 when theirs does, and 0 for identical sets.
func compareProbes(ours, theirs []dns.RR) int {
	type item struct {
		class, typ uint16
		data       []byte
	}
	norm := func(rrs []dns.RR) []item {
		out := make([]item, 0, len(rrs))
		for _, rr := range rrs {
			h := rr.Header()
			out = append(out, item{h.Class &^ cacheFlushBit, h.Rrtype, rawRdata(rr)})
		}
		slices.SortFunc(out, func(a, b item) int {
			if a.class != b.class {
				return int(a.class) - int(b.class)
			}
			if a.typ != b.typ {
				return int(a.typ) - int(b.typ)
			}
			return bytes.Compare(a.data, b.data)
		})
		return out
	}
	a, b := norm(ours), norm(theirs)
	for i := range min(len(a), len(b)) {
		switch {
		case a[i].class != b[i].class:
			return int(a[i].class) - int(b[i].class)
		case a[i].typ != b[i].typ:
			return int(a[i].typ) - int(b[i].typ)
		}
		if c := bytes.Compare(a[i].data, b[i].data); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// addrRecords are a host's A and AAAA records for the given addresses.
func addrRecords(host string, addrs []netip.Addr, ttl uint32) []dns.RR {
	var out []dns.RR
	for _, a := range addrs {
		if a.Is4() {
			out = append(out, &dns.A{Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IP(a.AsSlice())})
		} else if a.Is6() {
			out = append(out, &dns.AAAA{Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.IP(a.WithZone("").AsSlice())})
		}
	}
	return out
}

// ifaceAddrs lists the unicast addresses of an interface that mDNS announces: IPv4
// and IPv6 (link-local included: it is how hosts on the link reach each other),
// never loopback nor multicast.
func ifaceAddrs(ifi *net.Interface) []netip.Addr {
	as, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		p, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(p.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
