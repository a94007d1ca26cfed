package dnsserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Lookup asks the DNS server at addr ("host:port") for name and qtype ("SRV", "A",
// ...; "" means SRV for names with "service" in them, else A) over UDP with EDNS0
// (or TCP), and returns the answer in dig's format. It is what `rumor dns query`
// prints, so the CLI need not import miekg/dns.
func Lookup(ctx context.Context, addr, name, qtype string, tcp bool) (string, error) {
	if qtype == "" {
		qtype = "A"
		if strings.Contains(strings.ToLower(name), ".service.") || strings.HasPrefix(name, "_") {
			qtype = "SRV"
		}
	}
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		return "", fmt.Errorf("dns: query type %q: unknown (want A, AAAA, SRV, TXT, PTR, ANY, SOA or NS)", qtype)
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return "", fmt.Errorf("dns: %q is not a domain name", name)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	m.SetEdns0(DefaultMaxUDPSize, false)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, UDPSize: DefaultMaxUDPSize}
	if tcp {
		c.Net = "tcp"
	}
	r, rtt, err := c.ExchangeContext(ctx, m, addr)
	if err == nil && r.Truncated && !tcp {
		c.Net = "tcp"
		r, rtt, err = c.ExchangeContext(ctx, m, addr)
	}
	if err != nil {
		return "", fmt.Errorf("dns: query %s %s at %s: %w", name, qtype, addr, err)
	}
	return fmt.Sprintf("%s\n;; Query time: %d usec\n;; SERVER: %s (%s)\n", r, rtt.Microseconds(), addr, c.Net), nil
}
