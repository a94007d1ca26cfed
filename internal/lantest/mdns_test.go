package lantest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestZeroConfigJoin: three agents with no join flags, on one link, form one pool
// (issue 19 item 1).
func TestZeroConfigJoin(t *testing.T) {
	l := newLAN(t, 3)
	for i, n := range []string{"h1", "h2", "h3"} {
		l.agent(i, n)
	}
	took := poll(t, 15*time.Second, "one pool of three", all(l.sees(0, "h1", "h2", "h3"), l.sees(1, "h1", "h2", "h3"), l.sees(2, "h1", "h2", "h3")))
	t.Logf("pool formed %s after the last start", took)
}

// TestPoolsNeverMerge: pools with different keys or datacenters on one bridge never
// merge, and never even try (no decryption errors in the logs).
func TestPoolsNeverMerge(t *testing.T) {
	l := newLAN(t, 5)
	keyA, keyB := "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=", "6yp5lZ0dC5kcpUWz6tZrqgGlSMmPkF9vAzPq/tS1ms4="
	l.agent(0, "a1", "--encrypt", keyA)
	l.agent(1, "a2", "--encrypt", keyA)
	l.agent(2, "b1", "--encrypt", keyB)
	l.agent(3, "b2", "--encrypt", keyB)
	l.agent(4, "c1", "--encrypt", keyA, "--datacenter", "dc2")
	poll(t, 15*time.Second, "two pairs", all(l.sees(0, "a1", "a2"), l.sees(1, "a1", "a2"), l.sees(2, "b1", "b2"), l.sees(3, "b1", "b2")))
	// The pairs found each other by mDNS; give the others as long again to (wrongly)
	// find them too, re-checking all the while.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range []func() error{l.sees(0, "a1", "a2"), l.sees(2, "b1", "b2"), l.sees(4, "c1")} {
			if err := c(); err != nil {
				t.Fatalf("pools merged: %v", err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, p := range l.agents {
		if out := p.Output(); strings.Contains(out, "decrypt") || strings.Contains(out, "No installed keys") {
			t.Errorf("agent on host %d tried a peer of another pool:\n%s", i, out)
		}
	}
}

// TestAvahiSeesRegistration: a registration is listed by a real avahi-browse, with
// its tags and meta in TXT, and disappears after deregistration (goodbye); Avahi and
// the agent share UDP 5353 on one host (issue 19 items 2 and 6).
func TestAvahiSeesRegistration(t *testing.T) {
	l := newLAN(t, 2, avahiTools...)
	av := l.avahi(1, "av2")
	l.agent(0, "h1")
	l.agent(1, "h2") // beside Avahi, on the same port
	poll(t, 15*time.Second, "one pool", l.sees(0, "h1", "h2"))
	if _, err := l.do(0, "PUT", "/v1/agent/service/register",
		`{"ID": "web1", "Name": "web", "Port": 8080, "Tags": ["v1", "blue"], "Meta": {"path": "/x"}}`); err != nil {
		t.Fatal(err)
	}
	want := []string{"web1-h1", "_web._tcp", "h1.local", l.host(0).IP().String(), "8080", `"tags=v1,blue"`, `"path=/x"`, `"rumor=h1"`}
	poll(t, 10*time.Second, "avahi-browse lists web1-h1 with its TXT", func() error {
		lines, err := av.browse("_web._tcp")
		if err != nil {
			return err
		}
		for _, line := range lines {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("got %q, want a line with %q", lines, want)
	})
	// h2's own services are visible beside Avahi too.
	if _, err := l.do(1, "PUT", "/v1/agent/service/register", `{"ID": "api", "Name": "api", "Port": 9000}`); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "avahi-browse lists api-h2", func() error {
		lines, err := av.browse("_api._tcp")
		if err != nil || len(lines) == 0 || !strings.Contains(lines[0], "api-h2") {
			return fmt.Errorf("got %q, %v", lines, err)
		}
		return nil
	})
	if _, err := l.do(0, "PUT", "/v1/agent/service/deregister/web1", ""); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "avahi-browse no longer lists web1-h1", func() error {
		lines, err := av.browse("_web._tcp")
		if err != nil || len(lines) > 0 {
			return fmt.Errorf("got %q, %v", lines, err)
		}
		return nil
	})
}

// TestAvahiPublishImported: a service published with avahi-publish appears in
// `rumor browse`, and, its type imported, once in the HTTP API of every agent of the
// pool; it leaves when Avahi withdraws it (issue 19 items 3 and 4).
func TestAvahiPublishImported(t *testing.T) {
	l := newLAN(t, 3, avahiTools...)
	av := l.avahi(2, "printer")
	l.agent(0, "h1", "--mdns-import", "_ipp._tcp")
	l.agent(1, "h2", "--mdns-import", "_ipp._tcp")
	l.agent(2, "h3")
	poll(t, 15*time.Second, "one pool", all(l.sees(0, "h1", "h2", "h3"), l.sees(2, "h1", "h2", "h3")))
	pub := av.publish("Printer One", "_ipp._tcp", 631, "rp=ipp/print", "ty=HP")

	out, err := l.rumor(0, "browse", "_ipp._tcp", "--timeout", "3s")
	if err != nil || !strings.Contains(out, `"Printer One"`) || !strings.Contains(out, "port 631") || !strings.Contains(out, "rp=ipp/print") {
		t.Errorf("rumor browse _ipp._tcp: %v\n%s", err, out)
	}
	out, err = l.rumor(1, "browse", "--timeout", "3s")
	if err != nil || !strings.Contains(out, "_ipp._tcp") || !strings.Contains(out, "_rumor._udp") {
		t.Errorf("rumor browse (types): %v\n%s", err, out)
	}

	// Imported once (by h1, the lowest node name on the link), seen by everyone.
	want := "mdns:eth0@h1/ipp-Printer-One:631"
	for i := range 3 {
		poll(t, 10*time.Second, fmt.Sprintf("host %d lists the printer once", i), func() error {
			got, metas, err := l.catalogService(i, "ipp")
			if err != nil {
				return err
			}
			if len(got) != 1 || got[0] != want || metas[0]["rp"] != "ipp/print" {
				return fmt.Errorf("got %v %v, want [%s] with rp=ipp/print", got, metas, want)
			}
			return nil
		})
	}
	if err := pub.Kill(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		poll(t, 10*time.Second, fmt.Sprintf("host %d no longer lists the printer", i), func() error {
			got, _, err := l.catalogService(i, "ipp")
			if err != nil || len(got) > 0 {
				return fmt.Errorf("got %v, %v", got, err)
			}
			return nil
		})
	}
}

// TestConflictRename: two agents announcing the same instance name: one is renamed
// (RFC 6762 §9), both stay visible (issue 19 item 2).
func TestConflictRename(t *testing.T) {
	l := newLAN(t, 3, avahiTools...)
	av := l.avahi(2, "av3")
	// The same node name in two datacenters (two pools), the same service ID: the
	// same instance name, "web-dup".
	l.agent(0, "dup", "--datacenter", "east")
	l.agent(1, "dup", "--datacenter", "west")
	for i := range 2 {
		poll(t, 15*time.Second, "agent up", func() error { _, err := l.members(i); return err })
		if _, err := l.do(i, "PUT", "/v1/agent/service/register", `{"ID": "web", "Name": "web", "Port": 80}`); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, 20*time.Second, "two instances, one renamed", func() error {
		lines, err := av.browse("_web._tcp")
		if err != nil {
			return err
		}
		var plain, renamed bool
		for _, line := range lines {
			f := strings.Split(line, ";")
			if len(f) < 4 {
				continue
			}
			switch avahiUnescape(f[3]) {
			case "web-dup":
				plain = true
			case "web-dup (2)":
				renamed = true
			}
		}
		if !plain || !renamed {
			return fmt.Errorf("got %q, want web-dup and web-dup (2)", lines)
		}
		return nil
	})
}

// TestContainerBridgeNeverUsed: a docker-like bridge is never announced on nor
// multicast to (issue 19 item 5).
func TestContainerBridgeNeverUsed(t *testing.T) {
	l := newLAN(t, 2, avahiTools...)
	h := l.host(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, args := range [][]string{{"link", "add", "docker0", "type", "bridge"}, {"addr", "add", "172.17.0.1/16", "dev", "docker0"},
		{"link", "set", "docker0", "up"}} {
		if out, err := h.Command(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// Count the mDNS packets host 0 sends, by interface, with nftables in its namespace.
	nft := h.Command(ctx, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(`table inet mdnscount {
	chain out { type filter hook output priority 0; policy accept;
		oifname "docker0" udp dport 5353 counter comment "docker0"
		oifname "eth0" udp dport 5353 counter comment "eth0"
	}
}`)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	av := l.avahi(1, "av2")
	l.agent(0, "h1")
	poll(t, 15*time.Second, "agent up", func() error { _, err := l.members(0); return err })
	if _, err := l.do(0, "PUT", "/v1/agent/service/register", `{"ID": "web1", "Name": "web", "Port": 8080}`); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "avahi-browse lists web1-h1 at eth0's address only", func() error {
		lines, err := av.browse("_web._tcp")
		if err != nil {
			return err
		}
		if len(lines) != 1 || !strings.Contains(lines[0], l.host(0).IP().String()) {
			return fmt.Errorf("got %q", lines)
		}
		return nil
	})
	lines, _ := av.browse("_web._tcp")
	if strings.Contains(strings.Join(lines, "\n"), "172.17.") {
		t.Errorf("the container bridge's address was announced: %q", lines)
	}
	out, err := h.Command(ctx, "nft", "list", "table", "inet", "mdnscount").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	counts := map[string]string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		for k := range f {
			if f[k] == "packets" && k+1 < len(f) {
				counts[strings.Trim(f[len(f)-1], `"`)] = f[k+1]
			}
		}
	}
	if counts["eth0"] == "" || counts["eth0"] == "0" || counts["docker0"] != "0" {
		t.Errorf("mDNS packets sent: %v, want some on eth0 and none on docker0\n%s", counts, out)
	}
}

// TestHostilePackets: malformed and hostile mDNS packets neither crash an agent nor
// create catalog records (issue 19, tests).
func TestHostilePackets(t *testing.T) {
	l := newLAN(t, 2)
	p := l.agent(0, "h1", "--mdns-import", "_ipp._tcp")
	poll(t, 15*time.Second, "agent up", func() error { _, err := l.members(0); return err })
	var pkts [][]byte
	// Garbage, a truncated header, a response whose records lie about lengths.
	pkts = append(pkts, []byte("not dns at all"), []byte{0, 0, 0x84}, []byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0, 10, 0xff, 0xff})
	// A well-formed response whose instance is invalid everywhere it can be: an
	// instance pointing outside the type, an SRV to nowhere, a huge TXT.
	m := new(dns.Msg)
	m.Response = true
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: "_ipp._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: "evil.example.com."},
		&dns.PTR{Hdr: dns.RR_Header{Name: "_ipp._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: "x\\000y._ipp._tcp.local."},
		&dns.SRV{Hdr: dns.RR_Header{Name: "x\\000y._ipp._tcp.local.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 120}, Target: "-.local.", Port: 1},
		&dns.TXT{Hdr: dns.RR_Header{Name: "x\\000y._ipp._tcp.local.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 120}, Txt: []string{"rumor=spoof"}},
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	pkts = append(pkts, b)
	err = l.host(1).Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: l.host(1).IP().AsSlice(), Port: 5353})
		if err != nil {
			return err
		}
		defer c.Close()
		for range 20 {
			for _, pkt := range pkts {
				if _, err := c.WriteToUDP(pkt, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The agent still answers, and its catalog holds no ipp service: poll for a while,
	// so a record created late would be seen.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		got, _, err := l.catalogService(0, "ipp")
		if err != nil {
			t.Fatalf("agent stopped answering: %v\n%s", err, p.Output())
		}
		if len(got) > 0 {
			t.Fatalf("hostile packets created records: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p.Exited() {
		t.Fatal(errors.New("agent exited"))
	}
}

// avahiUnescape undoes avahi-browse -p's escapes (\DDD, decimal).
func avahiUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var n int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03d", &n); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestTwoInterfacesOneLink: an agent with two interfaces on one bridge hears its own
// announcements on the other interface; that echo is not a conflict, and it never
// renames itself (RFC 6762 §9; issue 19 item 2).
func TestTwoInterfacesOneLink(t *testing.T) {
	l := newLAN(t, 2, avahiTools...)
	var brNS string
	for _, ns := range l.tb.Namespaces() {
		if strings.HasSuffix(ns, "-br") {
			brNS = ns
		}
	}
	if brNS == "" {
		t.Fatalf("no bridge namespace among %v", l.tb.Namespaces())
	}
	h := l.host(0)
	second := l.tb.Subnet().Addr().Next().Next().Next().Next().Next().Next().Next().Next().Next().Next() // .10
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"link", "add", "v99", "netns", brNS, "type", "veth", "peer", "name", "eth1", "netns", h.Name()},
		{"-n", brNS, "link", "set", "v99", "master", "br0"}, {"-n", brNS, "link", "set", "v99", "up"},
		{"-n", h.Name(), "addr", "add", second.String() + "/24", "dev", "eth1"}, {"-n", h.Name(), "link", "set", "eth1", "up"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	av := l.avahi(1, "av2")
	p := l.agent(0, "h1")
	poll(t, 15*time.Second, "agent up", func() error { _, err := l.members(0); return err })
	if _, err := l.do(0, "PUT", "/v1/agent/service/register", `{"ID": "web1", "Name": "web", "Port": 8080}`); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "avahi-browse lists web1-h1", func() error {
		lines, err := av.browse("_web._tcp")
		if err != nil || len(lines) == 0 {
			return fmt.Errorf("got %q, %v", lines, err)
		}
		return nil
	})
	// Long enough for a rename to happen (probing takes about a second).
	settle := time.NewTimer(3 * time.Second)
	<-settle.C
	lines, err := av.browse("_web._tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range lines {
		if f := strings.Split(line, ";"); len(f) > 3 && avahiUnescape(f[3]) != "web1-h1" {
			t.Errorf("the agent renamed its own instance: %q", line)
		}
	}
	if out := p.Output(); !strings.Contains(out, `ifaces="[eth0 eth1]"`) {
		t.Errorf("the agent does not use both interfaces:\n%s", out)
	}
	if out := p.Output(); strings.Contains(out, "renamed") {
		t.Errorf("the agent saw a conflict with itself:\n%s", out)
	}
}

// TestInterfacesComeAndGo: an interface that appears after the start is used, and
// one that goes is dropped (issue 19 item 5).
func TestInterfacesComeAndGo(t *testing.T) {
	l := newLAN(t, 1)
	p := l.agent(0, "h1")
	poll(t, 15*time.Second, "agent up", func() error { _, err := l.members(0); return err })
	h := l.host(0)
	ip := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := h.Command(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// A veth pair inside the host: eth1 is multicast-capable and up, its peer too.
	ip("link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
	ip("addr", "add", "192.168.77.1/24", "dev", "eth1")
	ip("link", "set", "eth1p", "up")
	ip("link", "set", "eth1", "up")
	poll(t, 20*time.Second, "eth1 used", func() error {
		if strings.Contains(p.Output(), `msg="mdns: using interface" node=h1 component=mdns iface=eth1`) {
			return nil
		}
		return errors.New("not yet")
	})
	ip("link", "del", "eth1")
	poll(t, 20*time.Second, "eth1 dropped", func() error {
		if strings.Contains(p.Output(), `msg="mdns: interface dropped" node=h1 component=mdns iface=eth1`) {
			return nil
		}
		return errors.New("not yet")
	})
}

// TestConflictWithAvahi: probing against a real Avahi: a name Avahi holds already is
// defended by it and the agent renames its instance (RFC 6762 §8.1, §9); a name the
// agent holds is defended by the agent, and Avahi renames its own.
func TestConflictWithAvahi(t *testing.T) {
	l := newLAN(t, 2, avahiTools...)
	av := l.avahi(1, "av2")
	av.publish("web1-h1", "_web._tcp", 9999)
	poll(t, 10*time.Second, "Avahi's web1-h1", func() error {
		lines, err := av.browse("_web._tcp")
		if err != nil || len(lines) != 1 {
			return fmt.Errorf("got %q, %v", lines, err)
		}
		return nil
	})
	p := l.agent(0, "h1")
	poll(t, 15*time.Second, "agent up", func() error { _, err := l.members(0); return err })
	for _, body := range []string{`{"ID": "web1", "Name": "web", "Port": 8080}`, `{"ID": "api1", "Name": "api", "Port": 9000}`} {
		if _, err := l.do(0, "PUT", "/v1/agent/service/register", body); err != nil {
			t.Fatal(err)
		}
	}
	// Avahi publishes the agent's api1-h1 name after the agent announced it.
	poll(t, 10*time.Second, "the agent's api1-h1", func() error {
		lines, err := av.browse("_api._tcp")
		if err != nil || len(lines) != 1 || !strings.Contains(lines[0], ";9000;") {
			return fmt.Errorf("got %q, %v", lines, err)
		}
		return nil
	})
	av.publish("api1-h1", "_api._tcp", 7777)
	names := func(typ string) (map[string]string, error) {
		lines, err := av.browse(typ)
		if err != nil {
			return nil, err
		}
		out := map[string]string{} // name → port
		for _, line := range lines {
			if f := strings.Split(line, ";"); len(f) > 8 {
				out[avahiUnescape(f[3])] = f[8]
			}
		}
		return out, nil
	}
	poll(t, 20*time.Second, "the agent renamed web1-h1, Avahi renamed api1-h1", func() error {
		web, err := names("_web._tcp")
		if err != nil {
			return err
		}
		api, err := names("_api._tcp")
		if err != nil {
			return err
		}
		if web["web1-h1"] != "9999" || web["web1-h1 (2)"] != "8080" {
			return fmt.Errorf("_web._tcp: %v, want web1-h1 on 9999 (Avahi) and web1-h1 (2) on 8080 (the agent)", web)
		}
		if api["api1-h1"] != "9000" || len(api) != 2 {
			return fmt.Errorf("_api._tcp: %v, want api1-h1 on 9000 (the agent) and Avahi's renamed", api)
		}
		return nil
	})
	if out := p.Output(); !strings.Contains(out, "renamed after a conflict") {
		t.Errorf("the agent did not log its rename:\n%s", out)
	}
}
