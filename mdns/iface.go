package mdns

import (
	"net"
	"path"
	"slices"
)

// DefaultExclude lists the interfaces never used unless explicitly allowed by name:
// container bridges and veths, overlays and VPNs. Hosts that announced a docker0
// address made peers connect to their own bridge.
var DefaultExclude = []string{"docker*", "br-*", "veth*", "cni*", "flannel*", "cali*",
	"vxlan*", "virbr*", "tailscale*", "wg*", "zt*", "podman*", "lxcbr*", "lxdbr*"}

// Iface is what Select needs to know about a network interface.
type Iface struct {
	Name  string
	Index int
	Flags net.Flags
}

// Select returns the names of the interfaces mDNS uses among ifs, in order: up,
// multicast-capable, not loopback nor point-to-point, matching a glob of include (all
// when include is empty) and none of exclude, nor DefaultExclude unless an include
// glob names the interface. Globs are path.Match patterns.
func Select(ifs []Iface, include, exclude []string) []string {
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagMulticast == 0 ||
			i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagPointToPoint != 0 {
			continue
		}
		if matchAny(exclude, i.Name) {
			continue
		}
		if len(include) > 0 {
			if !matchAny(include, i.Name) {
				continue
			}
		} else if matchAny(DefaultExclude, i.Name) {
			continue
		}
		out = append(out, i.Name)
	}
	return out
}

// ValidGlobs returns the first malformed pattern of globs, or "" if all are valid.
func ValidGlobs(globs []string) string {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return g
		}
	}
	return ""
}

func matchAny(globs []string, name string) bool {
	return slices.ContainsFunc(globs, func(g string) bool {
		ok, err := path.Match(g, name)
		return err == nil && ok
	})
}

// systemIfaces lists the machine's interfaces as Select takes them.
func systemIfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Iface, len(ifs))
	for k, i := range ifs {
		out[k] = Iface{Name: i.Name, Index: i.Index, Flags: i.Flags}
	}
	return out, nil
}
