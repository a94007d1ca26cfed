package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rumor-sd/rumor/agent"
)

// dnsFlags are `rumor agent`'s --dns-* flags.
type dnsFlags struct {
	addr, domain, altDomain     string
	recursors, serviceTTL       []string
	onlyPassing, near           bool
	onlyReachable               bool
	nodeTTL, negativeTTL        time.Duration
	aRecordLimit, maxUDPSize    int
	recursorTimeout, queueDelay time.Duration
}

// addDNSFlags defines the --dns-* flags of `rumor agent`.
func addDNSFlags(fl *pflag.FlagSet, f *dnsFlags) {
	fl.StringVar(&f.addr, "dns-addr", "", "DNS listen address, UDP and TCP, host:port; \"off\" turns DNS off (default 127.0.0.1:8600; config: addresses.dns, ports.dns)")
	fl.StringVar(&f.domain, "dns-domain", "", "DNS zone answered (default \"consul.\"; config: domain)")
	fl.StringVar(&f.altDomain, "dns-alt-domain", "", "a second DNS zone answered the same way (config: alt_domain)")
	fl.StringArrayVar(&f.recursors, "dns-recursor", nil, "DNS server, host[:port], that names outside the zones are forwarded to (repeatable; default: none, such names are REFUSED; config: recursors)")
	fl.BoolVar(&f.onlyPassing, "dns-only-passing", false, "answer only instances whose checks pass, not those warning (config: dns_config.only_passing)")
	fl.BoolVar(&f.onlyReachable, "dns-only-reachable", false, "leave out of answers the instances this host cannot reach (by default they come last; config: dns_config.only_reachable)")
	fl.BoolVar(&f.near, "dns-near", false, "order service answers nearest first by network coordinates (as ?near=_agent) instead of at random; config: dns_config.near")
	fl.DurationVar(&f.nodeTTL, "dns-node-ttl", 0, "TTL of node and addr answers (default 0; config: dns_config.node_ttl)")
	fl.StringArrayVar(&f.serviceTTL, "dns-service-ttl", nil, "TTL of a service's answers, name=duration; a name ending in * is a prefix (repeatable; default 0; config: dns_config.service_ttl)")
	fl.DurationVar(&f.negativeTTL, "dns-negative-ttl", 0, "TTL of NXDOMAIN and NODATA answers (their SOA) (default 30s)")
	fl.IntVar(&f.aRecordLimit, "dns-a-record-limit", 0, "most instances in one answer (default: as many as fit; config: dns_config.a_record_limit)")
	fl.IntVar(&f.maxUDPSize, "dns-max-udp-size", 0, "largest UDP answer a client's EDNS0 buffer size may ask for (default 1232)")
	fl.DurationVar(&f.recursorTimeout, "dns-recursor-timeout", 0, "how long forwarded queries may take before SERVFAIL (default 2s)")
	fl.DurationVar(&f.queueDelay, "dns-max-queue-delay", 0, "drop UDP queries that waited longer than this for a worker, under overload (default 5ms)")
}

// applyDNSFlags sets cfg.DNS from the --dns-* flags given, over the files' keys.
func applyDNSFlags(f *agentFlags, cfg *agent.Config) error {
	d := &f.dns
	if f.given("dns-addr") {
		switch a := strings.TrimSpace(d.addr); a {
		case "", "off":
			cfg.DNS.Addr = ""
		default:
			if _, _, err := net.SplitHostPort(a); err != nil {
				return usagef("--dns-addr %q: want host:port, or off", d.addr)
			}
			cfg.DNS.Addr = a
		}
	}
	override(f, "dns-domain", &cfg.DNS.Domain, d.domain)
	override(f, "dns-alt-domain", &cfg.DNS.AltDomain, d.altDomain)
	if f.given("dns-recursor") {
		cfg.DNS.Recursors = d.recursors
	}
	override(f, "dns-only-passing", &cfg.DNS.OnlyPassing, d.onlyPassing)
	override(f, "dns-near", &cfg.DNS.OrderNear, d.near)
	override(f, "dns-only-reachable", &cfg.DNS.OnlyReachable, d.onlyReachable)
	for name, v := range map[string]time.Duration{"dns-node-ttl": d.nodeTTL, "dns-negative-ttl": d.negativeTTL,
		"dns-recursor-timeout": d.recursorTimeout, "dns-max-queue-delay": d.queueDelay} {
		if v < 0 {
			return usagef("--%s %s: must not be negative", name, v)
		}
	}
	override(f, "dns-node-ttl", &cfg.DNS.NodeTTL, d.nodeTTL)
	if f.given("dns-negative-ttl") {
		cfg.DNS.NegativeTTL = d.negativeTTL
		if d.negativeTTL == 0 {
			cfg.DNS.NegativeTTL = -1 // zero means the default in dnsserver.Config
		}
	}
	override(f, "dns-recursor-timeout", &cfg.DNS.RecursorTimeout, d.recursorTimeout)
	override(f, "dns-max-queue-delay", &cfg.DNS.MaxQueueDelay, d.queueDelay)
	if d.aRecordLimit < 0 {
		return usagef("--dns-a-record-limit %d: must not be negative", d.aRecordLimit)
	}
	override(f, "dns-a-record-limit", &cfg.DNS.ARecordLimit, d.aRecordLimit)
	if d.maxUDPSize != 0 && (d.maxUDPSize < 512 || d.maxUDPSize > 65535) {
		return usagef("--dns-max-udp-size %d: want 512 to 65535", d.maxUDPSize)
	}
	override(f, "dns-max-udp-size", &cfg.DNS.MaxUDPSize, d.maxUDPSize)
	for _, kv := range d.serviceTTL {
		name, v, ok := strings.Cut(kv, "=")
		dur, err := time.ParseDuration(v)
		if !ok || name == "" || err != nil || dur < 0 {
			return usagef("--dns-service-ttl %q: want name=duration, e.g. web=30s or 'web*=30s'", kv)
		}
		m := map[string]time.Duration{}
		for k, v := range cfg.DNS.ServiceTTL {
			m[k] = v
		}
		m[name] = dur
		cfg.DNS.ServiceTTL = m
	}
	return nil
}

// defaultDNSAddr is the address `rumor dns` commands ask: $RUMOR_DNS_ADDR, else
// 127.0.0.1:8600.
func defaultDNSAddr(c *cli) string {
	if a := c.getenv("RUMOR_DNS_ADDR"); a != "" && a != "off" {
		return a
	}
	return agent.DefaultDNSAddr
}

func newDNSCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Query the agent's DNS interface, or make *.consul resolve system-wide",
		Long: `The agent answers DNS on --dns-addr (default 127.0.0.1:8600), UDP and TCP:

  web.service.consul            A/AAAA of web's healthy instances; SRV: port and target
  v1.web.service.consul         ... with tag v1
  _web._tcp.service.consul      RFC 2782 form (_web._v1.service.consul: tag v1)
  web.service.dc1.consul        the datacenter may be named
  node1.node.consul             a node's address; TXT: its metadata
  0a000001.addr.consul          an address in hex (SRV targets of services with their own address)
  _services._dns-sd._udp.consul DNS-SD browsing: service types, then instances <ID>-<node>
  1.0.0.10.in-addr.arpa         PTR: nodes and services with that address`,
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newDNSQueryCmd(c), newDNSSetupCmd(c))
	return cmd
}

func newDNSQueryCmd(c *cli) *cobra.Command {
	var addr string
	var tcp bool
	cmd := &cobra.Command{
		Use:   "query NAME [TYPE]",
		Short: "Ask the agent's DNS server and print the answer as dig does",
		Long: `Ask the agent's DNS server for NAME (TYPE: A, AAAA, SRV, TXT, PTR, ANY, SOA or NS;
default SRV for service names, else A), over UDP with EDNS0, retrying over TCP when
the answer was truncated (or over TCP only with --tcp).`,
		Example: `  rumor dns query web.service.consul
  rumor dns query v1.web.service.consul A
  rumor dns query _services._dns-sd._udp.consul PTR`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			qtype := ""
			if len(a) == 2 {
				qtype = a[1]
			}
			if addr == "" {
				addr = defaultDNSAddr(c)
			}
			out, err := agent.DNSLookup(cmd.Context(), addr, a[0], qtype, tcp)
			if err != nil {
				if strings.Contains(err.Error(), "unknown (want") || strings.Contains(err.Error(), "not a domain name") {
					return usageErr(err)
				}
				return err
			}
			fmt.Fprint(c.stdout, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "dns-addr", "", "the agent's DNS address (default: $RUMOR_DNS_ADDR, else 127.0.0.1:8600)")
	cmd.Flags().BoolVar(&tcp, "tcp", false, "ask over TCP")
	return cmd
}

// resolvedDropIn is the systemd-resolved drop-in that sends the zone's names to the
// agent: a routing-only domain (~consul), so nothing else goes there.
func resolvedDropIn(addr, domain string) string {
	return fmt.Sprintf(`# rumor: resolve *.%[2]s through the local agent's DNS interface.
# Written by 'rumor dns setup --write'; apply with: systemctl restart systemd-resolved
[Resolve]
DNS=%[1]s
Domains=~%[2]s
`, addr, strings.TrimSuffix(domain, "."))
}

func newDNSSetupCmd(c *cli) *cobra.Command {
	var addr, domain, path string
	var write bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Print (or --write) the systemd-resolved drop-in that makes *.consul resolve system-wide",
		Long: `Print the systemd-resolved drop-in that routes the agent's zone (consul by default)
to its DNS interface, so every program on this host resolves web.service.consul.
With --write, install it at --path (default
/etc/systemd/resolved.conf.d/rumor.conf); then restart systemd-resolved.
systemd-resolved takes a port in DNS= since version 246. For dnsmasq, see the
README (server=/consul/127.0.0.1#8600).`,
		Example: `  rumor dns setup
  sudo rumor dns setup --write && sudo systemctl restart systemd-resolved
  resolvectl query web.service.consul`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if addr == "" {
				addr = defaultDNSAddr(c)
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return usagef("--dns-addr %q: want host:port", addr)
			}
			d := strings.Trim(strings.TrimSpace(domain), ".")
			if d == "" || strings.ContainsAny(d, " \t/") {
				return usagef("--domain %q: want a domain name, e.g. consul", domain)
			}
			text := resolvedDropIn(addr, d)
			if !write {
				fmt.Fprint(c.stdout, text)
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("dns setup: %w", err)
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				return fmt.Errorf("dns setup: %w", err)
			}
			fmt.Fprintf(c.stdout, "wrote %s; apply it with: systemctl restart systemd-resolved\n", path)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "dns-addr", "", "the agent's DNS address (default: $RUMOR_DNS_ADDR, else 127.0.0.1:8600)")
	cmd.Flags().StringVar(&domain, "domain", "consul", "the zone to route to the agent (its --dns-domain)")
	cmd.Flags().StringVar(&path, "path", "/etc/systemd/resolved.conf.d/rumor.conf", "where --write installs the drop-in")
	cmd.Flags().BoolVar(&write, "write", false, "install the drop-in instead of printing it")
	return cmd
}
