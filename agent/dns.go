package agent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/rumor-sd/rumor/dnsserver"
)

// The DNS server (package dnsserver) answers from this agent's catalog when
// Config.DNS.Addr is set. It is off by default in the Go API, so that tests and
// programs embedding several agents need no free port 8600; `rumor agent` turns it on
// at 127.0.0.1:8600 (--dns-addr).

// DNSConfig configures the agent's DNS server: dnsserver.Config, whose Catalog,
// NodeName, Datacenter, Registerer, Logger and Reachability the agent sets (and
// Near, gossip's network coordinates, with OrderNear). An empty Addr turns the
// server off (the default).
type DNSConfig = dnsserver.Config

// newDNS returns the agent's DNS server, not yet listening; nil when off.
func (a *Agent) newDNS() (*dnsserver.Server, error) {
	if a.cfg.DNS.Addr == "" {
		return nil, nil
	}
	c := a.cfg.DNS
	c.Catalog, c.NodeName, c.Datacenter = a.cat, a.cfg.NodeName, a.cfg.Datacenter
	c.Registerer, c.Logger = a.reg, a.cfg.Logger.With("node", a.cfg.NodeName, "component", "dns")
	if c.OrderNear && c.Near == nil {
		c.Near = apiAgent{a} // gossip's network coordinates, as the HTTP API's ?near=
	}
	c.Reachability = dnsReach{a} // reachable instances first; OnlyReachable leaves the others out
	s, err := dnsserver.New(c)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return s, nil
}

// startDNSLocked starts the DNS server, if configured.
func (a *Agent) startDNSLocked(ctx context.Context) error {
	if a.dns == nil {
		return nil
	}
	if err := a.dns.Start(ctx); err != nil {
		return fmt.Errorf("agent: start DNS on %s: %w", a.cfg.DNS.Addr, err)
	}
	a.dnsStarted = true
	return nil
}

// closeDNS stops the DNS server, if it runs.
func (a *Agent) closeDNS() error {
	a.mu.Lock()
	s, started := a.dns, a.dnsStarted
	a.mu.Unlock()
	if s == nil || !started {
		return nil
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("agent: stop DNS: %w", err)
	}
	return nil
}

// DNSAddr returns the address the DNS server listens on (UDP and TCP), or an invalid
// address when it is off or before Start.
func (a *Agent) DNSAddr() netip.AddrPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dns == nil || !a.dnsStarted {
		return netip.AddrPort{}
	}
	return a.dns.Addr()
}

// DefaultDNSAddr is where `rumor agent` serves DNS unless told otherwise (Consul's
// port 8600, on loopback).
const DefaultDNSAddr = dnsserver.DefaultAddr

// DNSLookup asks a DNS server and returns the answer as dig prints it (for `rumor dns
// query`; see dnsserver.Lookup).
var DNSLookup = dnsserver.Lookup

// dnsReach gives the DNS server the agent's reachability tracker. The server is made
// in New, the tracker in Start before the server starts (and never replaced): the
// server's goroutines, started after, see it. Before Start nothing is known.
type dnsReach struct{ a *Agent }

var _ dnsserver.Reachability = dnsReach{}

func (x dnsReach) Reachable(addr string) bool {
	if t := x.a.reach; t != nil {
		return t.Reachable(addr)
	}
	return true
}

func (x dnsReach) Active() bool {
	if t := x.a.reach; t != nil {
		return apiReach{t}.Active()
	}
	return false
}
