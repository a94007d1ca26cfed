package testnet

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The kernel's IPv4 neighbour (ARP) table is one table for all network namespaces,
// and its hard limit, net.ipv4.neigh.default.gc_thresh3 (default 1024), counts every
// namespace's entries. A testbed of n chatty hosts holds about n² entries (each host
// resolves every other), so 50 hosts overflow the default: new hosts then cannot
// resolve anyone ("neighbor table overflow" in the kernel log) and look cut off for
// minutes. Open therefore raises the limits, never lowers them.

// neighSysctl is where the limits live; a variable so tests can point it elsewhere.
var neighSysctl = "/proc/sys/net/ipv4/neigh/default/"

// neighHeadroom is room left for the rest of the machine (other testbeds, the host).
const neighHeadroom = 1024

// raiseNeighLimits makes the kernel's neighbour table hold a testbed of hosts hosts,
// raising gc_thresh2 (where garbage collection becomes eager) and gc_thresh3 (the hard
// limit) when they are lower than it needs.
func raiseNeighLimits(hosts int) error {
	need := hosts*hosts + neighHeadroom
	for _, l := range []struct {
		name string
		want int
	}{{"gc_thresh3", 2 * need}, {"gc_thresh2", need}} {
		p := neighSysctl + l.name
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("testnet: read neighbour table limit: %w", err)
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("testnet: read neighbour table limit %s: %q is not a number", p, b)
		}
		if cur >= l.want {
			continue
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(l.want)), 0o644); err != nil {
			return fmt.Errorf("testnet: raise neighbour table limit %s from %d to %d for %d hosts: %w", p, cur, l.want, hosts, err)
		}
	}
	return nil
}
