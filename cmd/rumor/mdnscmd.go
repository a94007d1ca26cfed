package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rumor-sd/rumor/agent"
	"github.com/rumor-sd/rumor/mdns"
)

// mdnsFlags are `rumor agent`'s mDNS flags. mDNS is on by default in the CLI (off in
// the Go API): with no flags, agents on one LAN find each other.
type mdnsFlags struct {
	enabled               bool
	ifaces, ifacesExclude []string
	announce              string
	imports               []string
}

func addMDNSFlags(fl *pflag.FlagSet, f *mdnsFlags) {
	fl.BoolVar(&f.enabled, "mdns", true, "mDNS/DNS-SD: find agents on the LAN and join them (zero-config join), announce local services, import --mdns-import types; never with a loopback --bind or --dev")
	fl.StringArrayVar(&f.ifaces, "mdns-iface", nil, "interfaces mDNS uses, glob (repeatable; default: every up, multicast interface but loopback, point-to-point, container and VPN ones)")
	fl.StringArrayVar(&f.ifacesExclude, "mdns-iface-exclude", nil, "interfaces mDNS never uses, glob (repeatable)")
	fl.StringVar(&f.announce, "mdns-announce", "all", "local services announced on mDNS: all, none, or tag:<tag>")
	fl.StringArrayVar(&f.imports, "mdns-import", nil, "DNS-SD type whose LAN instances go into the catalog, e.g. _ipp._tcp (repeatable)")
}

// apply sets cfg's mDNS settings from the flags.
func (m *mdnsFlags) apply(f *agentFlags, cfg *agent.Config) error {
	cfg.MDNS.Enabled = true // the CLI's default
	override(f, "mdns", &cfg.MDNS.Enabled, m.enabled)
	override(f, "mdns-iface", &cfg.MDNS.Ifaces, m.ifaces)
	override(f, "mdns-iface-exclude", &cfg.MDNS.IfacesExclude, m.ifacesExclude)
	override(f, "mdns-announce", &cfg.MDNS.Announce, m.announce)
	override(f, "mdns-import", &cfg.MDNS.Import, m.imports)
	if err := mdns.ValidateAnnounce(cmpOr(cfg.MDNS.Announce, mdns.AnnounceAll)); err != nil {
		return usagef("--mdns-announce: %v", err)
	}
	for _, t := range cfg.MDNS.Import {
		if err := mdns.ValidateType(t); err != nil {
			return usagef("--mdns-import: %v", err)
		}
	}
	for _, g := range [][]string{cfg.MDNS.Ifaces, cfg.MDNS.IfacesExclude} {
		if bad := mdns.ValidGlobs(g); bad != "" {
			return usagef("--mdns-iface %q: malformed pattern", bad)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func newBrowseCmd(c *cli) *cobra.Command {
	var (
		jsonOut               bool
		timeout               time.Duration
		ifaces, ifacesExclude []string
	)
	cmd := &cobra.Command{
		Use:   "browse [type]",
		Short: "List the LAN's mDNS/DNS-SD service types, or the instances of one type, live",
		Long: `Browse the LAN with multicast DNS. Without a type, list the service types
announced on the link (_services._dns-sd._udp.local). With a type such as
_http._tcp, list its instances with host, addresses, port and TXT, and print each
add, update and remove as it happens. It needs no agent.

Queries repeat with backoff, cached records are refreshed before they expire
and removed when their owner says goodbye or their TTL runs out. --timeout
prints what was found in that time and exits, for scripts; --json prints one
JSON event per line.`,
		Example: `  rumor browse                      # the service types on the LAN
  rumor browse _ipp._tcp            # printers, live
  rumor browse _http._tcp --timeout 3s --json`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			typ := ""
			if len(a) == 1 {
				typ = strings.TrimSuffix(strings.TrimSuffix(a[0], "."), ".local")
				if err := mdns.ValidateType(typ); err != nil {
					return usageErr(err)
				}
			}
			if timeout < 0 {
				return usagef("--timeout %s: must not be negative", timeout)
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			if timeout > 0 {
				t := time.AfterFunc(timeout, cancel) // a cancel, never a deadline, for the mDNS sockets
				defer t.Stop()
			}
			return mdns.Browse(ctx, mdns.BrowseConfig{Type: typ, Ifaces: ifaces, IfacesExclude: ifacesExclude},
				func(ev mdns.Event) { printEvent(c.stdout, ev, jsonOut) })
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON event per line")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "exit after this long (default: run until interrupted)")
	cmd.Flags().StringArrayVar(&ifaces, "iface", nil, "interfaces to browse, glob (repeatable; default as the agent's --mdns-iface)")
	cmd.Flags().StringArrayVar(&ifacesExclude, "iface-exclude", nil, "interfaces never browsed, glob (repeatable)")
	return cmd
}

// printEvent prints one browse event, as a JSON line or as text.
func printEvent(w io.Writer, ev mdns.Event, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(ev)
		fmt.Fprintln(w, string(b))
		return
	}
	if ev.Instance == nil {
		fmt.Fprintf(w, "%-6s %s\n", ev.Kind, ev.Type)
		return
	}
	in := ev.Instance
	addrs := make([]string, len(in.Addrs))
	for i, a := range in.Addrs {
		addrs[i] = a.String()
	}
	keys := make([]string, 0, len(in.Text))
	for k := range in.Text {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	txt := make([]string, len(keys))
	for i, k := range keys {
		txt[i] = k + "=" + in.Text[k]
	}
	fmt.Fprintf(w, "%-6s %s %q on %s: %s port %d [%s] txt [%s]\n", ev.Kind, in.Type, in.Name, in.Iface,
		in.Host, in.Port, strings.Join(addrs, " "), strings.Join(txt, " "))
}
