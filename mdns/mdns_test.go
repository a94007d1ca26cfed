package mdns

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
)

func TestSelect(t *testing.T) {
	up := net.FlagUp | net.FlagMulticast
	ifs := []Iface{{Name: "lo", Flags: up | net.FlagLoopback}, {Name: "eth0", Flags: up}, {Name: "docker0", Flags: up},
		{Name: "br-1a2b", Flags: up}, {Name: "veth12", Flags: up}, {Name: "wg0", Flags: up}, {Name: "tun0", Flags: up | net.FlagPointToPoint},
		{Name: "eth1", Flags: net.FlagMulticast}, {Name: "eth2", Flags: net.FlagUp}, {Name: "wlan0", Flags: up}}
	cases := []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"default", nil, nil, []string{"eth0", "wlan0"}},
		{"exclude", nil, []string{"wl*"}, []string{"eth0"}},
		{"include", []string{"eth*"}, nil, []string{"eth0"}},
		{"include names a container bridge", []string{"docker0"}, nil, []string{"docker0"}},
		{"include never loopback", []string{"*"}, nil, []string{"eth0", "docker0", "br-1a2b", "veth12", "wg0", "wlan0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Select(ifs, c.include, c.exclude); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	if g := ValidGlobs([]string{"eth*", "[x"}); g != "[x" {
		t.Errorf("ValidGlobs: got %q, want [x", g)
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint("dc1", []byte("k1")), Fingerprint("dc1", []byte("k2"))
	c, d := Fingerprint("dc2", []byte("k1")), Fingerprint("dc1", nil)
	if a == b || a == c || a == d || len(a) != 16 || a != Fingerprint("dc1", []byte("k1")) {
		t.Errorf("fingerprints %s %s %s %s: want distinct, 16 hex digits, stable", a, b, c, d)
	}
}

func TestServiceText(t *testing.T) {
	s := catalog.Service{ID: "web1", Name: "web", Tags: []string{"a", "b"}, Meta: map[string]string{"path": "/x", "tags": "no", "rumor": "no"}}
	got := ServiceText("h1", s)
	want := map[string]string{"rumor": "h1", "tags": "a,b", "path": "/x"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	// DNS-SD limits: no string over 255 bytes, the whole under 1300.
	big := catalog.Service{Meta: map[string]string{}}
	for i := range 60 {
		big.Meta[string(rune('a'+i%26))+string(rune('a'+i/26))] = string(make([]byte, 100))
	}
	big.Meta["huge"] = string(make([]byte, 300))
	total := 0
	for k, v := range ServiceText("h1", big) {
		if len(k)+1+len(v) > 255 {
			t.Errorf("entry %s is %d bytes", k, len(k)+1+len(v))
		}
		total += len(k) + 2 + len(v)
	}
	if total > 1300 {
		t.Errorf("TXT is %d bytes, more than 1300", total)
	}
}

func TestImported(t *testing.T) {
	inst := Instance{Name: "HP LaserJet (2)", Type: "_ipp._tcp", Iface: "eth0", Host: "hp.local.", Port: 631,
		Addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("10.0.0.7")},
		Text:  map[string]string{"rp": "ipp/print", "bad key": "x", "ty": "HP"}}
	s, err := Imported(inst)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "ipp-HP-LaserJet-(2)" || s.Name != "ipp" || s.Address != "10.0.0.7" || s.Port != 631 ||
		!s.HasTag("mdns") || s.Meta["rp"] != "ipp/print" || s.Meta["mdns-instance"] != "HP LaserJet (2)" {
		t.Errorf("got %+v", s)
	}
	if _, ok := s.Meta["bad key"]; ok {
		t.Error("an invalid meta key was imported")
	}
	inst.Text["rumor"] = "h2"
	if _, err := Imported(inst); err == nil {
		t.Error("an instance with the rumor marker was imported")
	}
	if _, err := Imported(Instance{Name: "x", Type: "nope"}); err == nil {
		t.Error("a bad type was imported")
	}
}

func TestValidate(t *testing.T) {
	for _, ok := range []string{"_ipp._tcp", "_http._tcp", "_rumor._udp"} {
		if err := ValidateType(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ipp._tcp", "_ipp", "_ipp._sctp", "_a.b._tcp", "_waytoolongservicename._tcp", "_x y._tcp"} {
		if err := ValidateType(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, m := range []string{"all", "none", "tag:web"} {
		if err := ValidateAnnounce(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	for _, m := range []string{"some", "tag:", ""} {
		if err := ValidateAnnounce(m); err == nil {
			t.Errorf("%q accepted", m)
		}
	}
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCacheLifecycle follows one instance through the cache: assembled from PTR,
// SRV, TXT and A; refreshed at 80 % of its TTL (RFC 6762 §5.2); removed one second
// after a goodbye (§10.1); older data flushed by the cache-flush bit (§10.2).
func TestCacheLifecycle(t *testing.T) {
	c := newCache()
	t0 := time.Unix(1000, 0)
	for _, s := range []string{
		`_http._tcp.local. 4500 IN PTR web\ 1._http._tcp.local.`,
		`web\ 1._http._tcp.local. 120 IN SRV 0 0 8080 h1.local.`,
		`web\ 1._http._tcp.local. 4500 IN TXT "tags=a" "path=/"`,
		`h1.local. 120 IN A 10.0.0.1`,
	} {
		c.add(rr(t, s), t0)
	}
	insts, missing := c.instances("_http._tcp", "eth0")
	if len(insts) != 1 || len(missing) != 0 {
		t.Fatalf("got %+v missing %v", insts, missing)
	}
	in := insts[0]
	if in.Name != "web 1" || in.Port != 8080 || in.Host != "h1.local." || in.Text["path"] != "/" ||
		!slices.Equal(in.Addrs, []netip.Addr{netip.MustParseAddr("10.0.0.1")}) {
		t.Errorf("got %+v", in)
	}
	if qs := c.dueRefreshes(t0.Add(95 * time.Second)); len(qs) != 0 {
		t.Errorf("refresh before 80%%: %v", qs)
	}
	qs := c.dueRefreshes(t0.Add(99 * time.Second))
	if len(qs) != 2 { // the SRV and the A, at 120 s TTL
		t.Errorf("refreshes at 82%%: got %v, want SRV and A", qs)
	}
	// Cache flush: a new address for h1 two seconds later flushes the old one a second after.
	a2 := rr(t, `h1.local. 120 IN A 10.0.0.2`)
	a2.Header().Class |= cacheFlushBit
	t1 := t0.Add(2 * time.Second)
	c.add(a2, t1)
	c.expire(t1.Add(time.Second))
	insts, _ = c.instances("_http._tcp", "eth0")
	if got := insts[0].Addrs; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.0.0.2")}) {
		t.Errorf("after cache flush: addrs %v, want only 10.0.0.2", got)
	}
	// Goodbye: gone one second later, not before.
	bye := rr(t, `_http._tcp.local. 0 IN PTR web\ 1._http._tcp.local.`)
	t2 := t0.Add(10 * time.Second)
	c.add(bye, t2)
	c.expire(t2.Add(999 * time.Millisecond))
	if insts, _ := c.instances("_http._tcp", "eth0"); len(insts) != 1 {
		t.Errorf("removed before the goodbye's second: %v", insts)
	}
	if next := c.next(); next.After(t2.Add(time.Second)) {
		t.Errorf("next timer at %v, after the goodbye's expiry", next)
	}
	c.expire(t2.Add(time.Second))
	if insts, _ := c.instances("_http._tcp", "eth0"); len(insts) != 0 {
		t.Errorf("still there after the goodbye: %v", insts)
	}
}

func TestCacheMissing(t *testing.T) {
	c := newCache()
	c.add(rr(t, `_ipp._tcp.local. 4500 IN PTR p._ipp._tcp.local.`), time.Unix(0, 0))
	_, missing := c.instances("_ipp._tcp", "eth0")
	if len(missing) != 2 || missing[0].Qtype != dns.TypeSRV || missing[1].Qtype != dns.TypeTXT {
		t.Errorf("missing %v, want SRV and TXT of p", missing)
	}
}

func TestDiff(t *testing.T) {
	a := Instance{Name: "a", Port: 1}
	b := Instance{Name: "b", Port: 1}
	b2 := Instance{Name: "b", Port: 2}
	evs := diff("_x._tcp", []Instance{a, b}, []Instance{b2})
	if len(evs) != 2 || evs[0].Kind != EventUpdate || evs[1].Kind != EventRemove || evs[1].Instance.Name != "a" {
		t.Errorf("got %+v", evs)
	}
}

func TestJoinAddrs(t *testing.T) {
	in := Instance{Port: 7946, Addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("10.0.0.1")}}
	want := []string{"10.0.0.1:7946", "[2001:db8::1]:7946", "[fe80::1%eth0]:7946"}
	if got := joinAddrs(in); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// FuzzParseResponse: no packet crashes the parser, and what it returns is only
// records of the types the cache holds, which the cache takes without panicking.
func FuzzParseResponse(f *testing.F) {
	m := new(dns.Msg)
	m.Response = true
	m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: "_http._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 10}, Ptr: "x._http._tcp.local."}}
	b, _ := m.Pack()
	f.Add(b)
	f.Add([]byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c})
	f.Fuzz(func(t *testing.T, b []byte) {
		rrs, err := parseResponse(b)
		if err != nil {
			return
		}
		c := newCache()
		for _, r := range rrs {
			if _, ok := rdata(r); !ok {
				t.Fatalf("parser returned a record the cache cannot hold: %v", r)
			}
			c.add(r, time.Unix(0, 0))
		}
		insts, _ := c.instances("_http._tcp", "eth0")
		for _, in := range insts {
			if s, err := Imported(in); err == nil {
				if err := s.Validate(); err != nil {
					t.Fatalf("imported an invalid service: %v", err)
				}
			}
		}
	})
}

// TestCacheIPv6LinkLocal: a link-local IPv6 address keeps the zone of the interface
// it was seen on (issue 19 item 5), and imports never use it as the address.
func TestCacheIPv6LinkLocal(t *testing.T) {
	c := newCache()
	now := time.Unix(0, 0)
	for _, s := range []string{
		`_http._tcp.local. 4500 IN PTR w._http._tcp.local.`,
		`w._http._tcp.local. 120 IN SRV 0 0 80 h.local.`,
		`w._http._tcp.local. 4500 IN TXT "x=1"`,
		`h.local. 120 IN AAAA fe80::1`,
	} {
		c.add(rr(t, s), now)
	}
	insts, _ := c.instances("_http._tcp", "eth1")
	if len(insts) != 1 || len(insts[0].Addrs) != 1 || insts[0].Addrs[0].String() != "fe80::1%eth1" {
		t.Fatalf("got %+v", insts)
	}
	s, err := Imported(insts[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.Address != "" {
		t.Errorf("imported address %q: a link-local address must not leave the link", s.Address)
	}
}
