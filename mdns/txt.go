package mdns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/rumor-sd/rumor/catalog"
)

// TXT record keys with a meaning to rumor.
const (
	// MarkerKey marks an instance announced by a rumor agent; its value is the node
	// name. Importers skip marked instances: they are in the catalog already.
	MarkerKey = "rumor"
	// TagsKey holds a service's tags, comma-separated.
	TagsKey = "tags"
	// ImportTag is the tag of every service imported from mDNS.
	ImportTag = "mdns"
)

// DNS-SD size limits (RFC 6763 §6.1–6.2): a TXT string holds at most 255 bytes, and
// the whole record should stay under 1300 bytes so that a response fits a packet.
const (
	maxTXTString = 255
	maxTXTTotal  = 1300
)

// InstanceName is the DNS-SD instance name of a local service: "<service ID>-<node>",
// the same name rumor's DNS server uses, so both views agree.
func InstanceName(serviceID, node string) string { return serviceID + "-" + node }

// ServiceType is the DNS-SD type of a rumor service name: "_<name>._tcp".
func ServiceType(name string) string { return "_" + strings.ToLower(name) + "._tcp" }

// ServiceText is the TXT record of a local service: the rumor marker, its tags and its
// meta entries (as key=value), within DNS-SD's limits. Entries that do not fit are
// left out, tags last-first and meta keys in reverse order, so the result is
// deterministic.
func ServiceText(node string, s catalog.Service) map[string]string {
	out := map[string]string{MarkerKey: node}
	total := len(MarkerKey) + 2 + len(node)
	add := func(k, v string) {
		n := len(k) + 1 + len(v)
		if n > maxTXTString || total+n+1 > maxTXTTotal {
			return
		}
		out[k] = v
		total += n + 1
	}
	tags := slices.Clone(s.Tags)
	for len(tags) > 0 {
		v := strings.Join(tags, ",")
		if len(TagsKey)+1+len(v) <= maxTXTString && total+len(TagsKey)+2+len(v) <= maxTXTTotal {
			add(TagsKey, v)
			break
		}
		tags = tags[:len(tags)-1]
	}
	keys := make([]string, 0, len(s.Meta))
	for k := range s.Meta {
		if lk := strings.ToLower(k); lk != MarkerKey && lk != TagsKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(k, s.Meta[k])
	}
	return out
}

// ParseText turns TXT strings into a map: "k=v" gives k → v, a lone "k" gives k → "".
// Keys compare case-insensitively (RFC 6763 §6.4) and are lower-cased; the first
// occurrence of a key wins; empty keys are dropped.
func ParseText(txt []string) map[string]string {
	m := make(map[string]string, len(txt))
	for _, s := range txt {
		k, v, _ := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if k == "" {
			continue
		}
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// Instance is one DNS-SD service instance as the querier sees it on one interface.
type Instance struct {
	Name  string            `json:"name"`  // instance label, e.g. "HP LaserJet (2)"
	Type  string            `json:"type"`  // service type, e.g. "_ipp._tcp"
	Iface string            `json:"iface"` // the interface it was seen on
	Host  string            `json:"host"`  // SRV target, e.g. "printer.local."
	Port  int               `json:"port"`  // SRV port
	Addrs []netip.Addr      `json:"addrs"` // the host's addresses on Iface (IPv6 link-local with zone)
	Text  map[string]string `json:"txt"`   // parsed TXT record
}

// Equal reports whether two instances hold the same data.
func (i Instance) Equal(j Instance) bool {
	if i.Name != j.Name || i.Type != j.Type || i.Iface != j.Iface || i.Host != j.Host ||
		i.Port != j.Port || !slices.Equal(i.Addrs, j.Addrs) || len(i.Text) != len(j.Text) {
		return false
	}
	for k, v := range i.Text {
		if w, ok := j.Text[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// FullName is the instance's DNS name, "<name>.<type>.local.", unescaped.
func (i Instance) FullName() string { return i.Name + "." + i.Type + ".local." }

// Imported turns an instance the LAN announced into the catalog service an importer
// publishes: named after the type ("_ipp._tcp" → "ipp"), tagged ImportTag and the
// transport, with the TXT entries that are valid meta, the instance and host names in
// meta (mdns-instance, mdns-host), and the first address that other hosts can reach
// (never a link-local IPv6 one: its zone means nothing elsewhere). It refuses, with
// an error naming what was wrong, an instance that carries the rumor marker (an
// agent announced it: it is in the catalog already) or that gives no valid service.
func Imported(inst Instance) (catalog.Service, error) {
	if _, ok := inst.Text[MarkerKey]; ok {
		return catalog.Service{}, fmt.Errorf("mdns: %s is announced by rumor agent %q, not imported", inst.FullName(), inst.Text[MarkerKey])
	}
	labels := strings.Split(inst.Type, ".")
	if len(labels) != 2 || len(labels[0]) < 2 || labels[0][0] != '_' || (labels[1] != "_tcp" && labels[1] != "_udp") {
		return catalog.Service{}, fmt.Errorf("mdns: %q is not a DNS-SD service type (_name._tcp or _name._udp)", inst.Type)
	}
	name := strings.ToLower(labels[0][1:])
	s := catalog.Service{
		ID:      name + "-" + sanitize(inst.Name),
		Name:    name,
		Tags:    []string{ImportTag, strings.TrimPrefix(labels[1], "_")},
		Weights: catalog.DefaultWeights,
		Port:    inst.Port,
		Meta: map[string]string{"mdns-instance": clip(inst.Name, catalog.MaxMetaValueLen),
			"mdns-host": clip(inst.Host, catalog.MaxMetaValueLen)},
	}
	for _, a := range inst.Addrs {
		if a.Is6() && a.IsLinkLocalUnicast() {
			continue
		}
		s.Address = a.WithZone("").String()
		break
	}
	keys := make([]string, 0, len(inst.Text))
	for k := range inst.Text {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := inst.Text[k]
		if len(s.Meta) >= catalog.MaxMetaKeys || !metaKey(k) || len(v) > catalog.MaxMetaValueLen || !utf8.ValidString(v) {
			continue
		}
		if _, taken := s.Meta[k]; !taken {
			s.Meta[k] = v
		}
	}
	if err := s.Validate(); err != nil {
		return catalog.Service{}, fmt.Errorf("mdns: import %s: %w", inst.FullName(), err)
	}
	return s, nil
}

// sanitize turns an instance label into something valid in a service ID: spaces and
// control characters become '-', and it is cut to fit.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			r = '-'
		}
		b.WriteRune(r)
	}
	return clip(b.String(), 200)
}

// clip cuts s to at most n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func metaKey(k string) bool {
	if k == "" || len(k) > catalog.MaxMetaKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
