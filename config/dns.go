package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/agent"
)

// The DNS server's keys, as Consul spells them: ports.dns (-1 turns DNS off),
// addresses.dns (else client_addr), domain, alt_domain, recursors and the dns_config
// block (only_passing, node_ttl, service_ttl, a_record_limit, recursor_timeout), plus
// rumor's own dns_config.negative_ttl, dns_config.max_udp_size,
// dns_config.only_reachable and dns_config.near.

// DefaultDNSPort is Consul's DNS port, used with addresses.dns or client_addr when
// ports.dns is not given.
const DefaultDNSPort = 8600

// dnsFileConfig is Consul's dns_config block (the keys rumor understands).
type dnsFileConfig struct {
	OnlyPassing     *bool
	NodeTTL         *time.Duration
	ServiceTTL      map[string]time.Duration
	ARecordLimit    *int
	RecursorTimeout *time.Duration
	NegativeTTL     *time.Duration // rumor's own: the SOA's TTL and minimum (RFC 2308)
	MaxUDPSize      *int           // rumor's own: the largest EDNS0 UDP answer
	OnlyReachable   *bool          // rumor's own: leave out instances this host cannot reach
	Near            *bool          // rumor's own: service answers nearest first (--dns-near)
}

// DNSSettings are the DNS keys config files gave; nil or empty means not given.
type DNSSettings struct {
	Addr            *string // from client_addr, addresses.dns and ports.dns; "" means off (ports.dns -1)
	Domain          *string
	AltDomain       *string
	Recursors       []string
	OnlyPassing     *bool
	NodeTTL         *time.Duration
	ServiceTTL      map[string]time.Duration
	ARecordLimit    *int
	RecursorTimeout *time.Duration
	NegativeTTL     *time.Duration
	MaxUDPSize      *int
	OnlyReachable   *bool
	Near            *bool
}

// dnsParts are the pieces of the DNS address, merged across files.
type dnsParts struct {
	addr *string
	port *int
}

// addrWith is the DNS address the parts and client_addr give (Consul's DNS listens
// on client_addr too), or nil if no file gave any.
func (d *dnsParts) addrWith(clientAddr *string) *string {
	if d.addr == nil && d.port == nil && clientAddr == nil {
		return nil
	}
	host, port := DefaultClientAddr, DefaultDNSPort
	if clientAddr != nil {
		host = *clientAddr
	}
	if d.addr != nil {
		host = *d.addr
	}
	if d.port != nil {
		port = *d.port
	}
	a := ""
	if port >= 0 {
		a = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return &a
}

// dnsSettings checks this file's DNS keys and merges them into s.
func (pf *parsedFile) dnsSettings(s *DNSSettings, d *dnsParts) Errors {
	var errs Errors
	fc := &pf.fc
	bad := func(field, format string, args ...any) {
		errs = append(errs, &Error{File: pf.path, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if fc.Addresses != nil && fc.Addresses.DNS != nil {
		if net.ParseIP(*fc.Addresses.DNS) == nil {
			bad("addresses.dns", "%q is not an IP address", *fc.Addresses.DNS)
		} else {
			d.addr = fc.Addresses.DNS
		}
	}
	if fc.Ports != nil && fc.Ports.DNS != nil {
		if p := *fc.Ports.DNS; p < -1 || p > 65535 {
			bad("ports.dns", "%d is outside 0–65535 (or -1: off)", p)
		} else {
			d.port = fc.Ports.DNS
		}
	}
	for field, v := range map[string]*string{"domain": fc.Domain, "alt_domain": fc.AltDomain} {
		if v != nil && (strings.TrimSpace(*v) == "" || strings.ContainsAny(*v, " \t") || strings.Trim(*v, ".") == "") {
			bad(field, "%q is not a domain name", *v)
		}
	}
	if fc.Domain != nil {
		s.Domain = fc.Domain
	}
	if fc.AltDomain != nil {
		s.AltDomain = fc.AltDomain
	}
	for i, r := range fc.Recursors {
		if strings.TrimSpace(r) == "" {
			bad(fmt.Sprintf("recursors[%d]", i), "must not be empty")
		}
	}
	s.Recursors = append(s.Recursors, fc.Recursors...)
	if c := fc.DNSConfig; c != nil {
		if c.ARecordLimit != nil && *c.ARecordLimit < 0 {
			bad("dns_config.a_record_limit", "%d is negative", *c.ARecordLimit)
		} else if c.ARecordLimit != nil {
			s.ARecordLimit = c.ARecordLimit
		}
		if c.MaxUDPSize != nil && (*c.MaxUDPSize < 512 || *c.MaxUDPSize > 65535) {
			bad("dns_config.max_udp_size", "%d is outside 512–65535", *c.MaxUDPSize)
		} else if c.MaxUDPSize != nil {
			s.MaxUDPSize = c.MaxUDPSize
		}
		set := func(dst **time.Duration, v *time.Duration) {
			if v != nil {
				*dst = v
			}
		}
		set(&s.NodeTTL, c.NodeTTL)
		set(&s.RecursorTimeout, c.RecursorTimeout)
		set(&s.NegativeTTL, c.NegativeTTL)
		if c.OnlyPassing != nil {
			s.OnlyPassing = c.OnlyPassing
		}
		if c.OnlyReachable != nil {
			s.OnlyReachable = c.OnlyReachable
		}
		if c.Near != nil {
			s.Near = c.Near
		}
		for k, v := range c.ServiceTTL {
			if k == "" || strings.Contains(strings.TrimSuffix(k, "*"), "*") {
				bad("dns_config.service_ttl", "%q: want a service name, or a prefix ending in *", k)
				continue
			}
			if s.ServiceTTL == nil {
				s.ServiceTTL = map[string]time.Duration{}
			}
			s.ServiceTTL[k] = v
		}
	}
	slices.SortStableFunc(errs, func(a, b *Error) int { return strings.Compare(a.Field, b.Field) })
	return errs
}

// Apply sets the DNS fields of cfg that the files gave.
func (s *DNSSettings) Apply(cfg *agent.Config) {
	if s.Addr != nil {
		cfg.DNS.Addr = *s.Addr
	}
	if s.Domain != nil {
		cfg.DNS.Domain = *s.Domain
	}
	if s.AltDomain != nil {
		cfg.DNS.AltDomain = *s.AltDomain
	}
	cfg.DNS.Recursors = append(slices.Clone(cfg.DNS.Recursors), s.Recursors...)
	if s.OnlyPassing != nil {
		cfg.DNS.OnlyPassing = *s.OnlyPassing
	}
	if s.NodeTTL != nil {
		cfg.DNS.NodeTTL = *s.NodeTTL
	}
	if len(s.ServiceTTL) > 0 {
		m := map[string]time.Duration{}
		for k, v := range cfg.DNS.ServiceTTL {
			m[k] = v
		}
		for k, v := range s.ServiceTTL {
			m[k] = v
		}
		cfg.DNS.ServiceTTL = m
	}
	if s.ARecordLimit != nil {
		cfg.DNS.ARecordLimit = *s.ARecordLimit
	}
	if s.RecursorTimeout != nil {
		cfg.DNS.RecursorTimeout = *s.RecursorTimeout
	}
	if s.NegativeTTL != nil {
		cfg.DNS.NegativeTTL = *s.NegativeTTL
		if *s.NegativeTTL == 0 {
			cfg.DNS.NegativeTTL = -1 // dnsserver: negative means 0, zero the default
		}
	}
	if s.MaxUDPSize != nil {
		cfg.DNS.MaxUDPSize = *s.MaxUDPSize
	}
	if s.OnlyReachable != nil {
		cfg.DNS.OnlyReachable = *s.OnlyReachable
	}
	if s.Near != nil {
		cfg.DNS.OrderNear = *s.Near
	}
}
