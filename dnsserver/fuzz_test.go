package dnsserver

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// FuzzHandle feeds arbitrary packets to the query handler as the UDP and TCP paths
// do: a packet either does not parse (FORMERR or dropped) or gets an answer that
// packs, within the size the transport allows; it never panics.
func FuzzHandle(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"web.service.consul.", dns.TypeSRV}, {"_web._tcp.service.dc1.consul.", dns.TypeSRV}, {"n1.node.consul.", dns.TypeTXT},
		{"0a000001.addr.consul.", dns.TypeA}, {"_services._dns-sd._udp.consul.", dns.TypePTR}, {"1.0.0.10.in-addr.arpa.", dns.TypePTR},
		{"consul.", dns.TypeANY}, {"example.com.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b)
		m.SetEdns0(4096, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x'})
	cat, _ := catalogtest.New(f, catalog.Config{})
	fx := &fixture{cat: cat, ver: map[string]uint64{}}
	srv, err := New(Config{Addr: "127.0.0.1:0", Catalog: cat, NodeName: "n1"})
	if err != nil {
		f.Fatal(err)
	}
	fx.srv = srv
	recs := func(origin string, rs ...catalog.Record) {
		for i := range rs {
			fx.ver[origin]++
			r := &rs[i]
			r.Origin, r.Version = origin, catalog.Version{Gen: 1, Counter: fx.ver[origin]}
			switch {
			case r.Node != nil:
				r.Key = catalog.Key{Kind: catalog.KindNode}
			case r.Service != nil:
				r.Key = catalog.Key{Kind: catalog.KindService, ID: r.Service.ID}
			}
		}
		if _, err := cat.Apply(rs...); err != nil {
			f.Fatal(err)
		}
	}
	recs("n1", catalog.Record{Node: catalogtest.Node("n1", "10.0.0.1")}, catalog.Record{Service: catalogtest.Service("web-1", "web", 80, "v1")})
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			if m := formErr(b); m != nil {
				if _, err := m.Pack(); err != nil {
					t.Fatalf("FORMERR does not pack: %v", err)
				}
			}
			return
		}
		for _, tcp := range []bool{false, true} {
			r, act := srv.handle(req, tcp)
			if act != actAnswer {
				continue
			}
			out, err := srv.pack(r, make([]byte, dns.MaxMsgSize), newScratch())
			if err != nil {
				t.Fatalf("answer does not pack: %v\n%v", err, r.m)
			}
			if want, err := r.m.PackBuffer(make([]byte, dns.MaxMsgSize)); err != nil || !bytes.Equal(out, want) {
				t.Fatalf("packMsg gave\n%x\nPackBuffer gave (%v)\n%x", out, err, want)
			}
			if !tcp && len(out) > DefaultMaxUDPSize {
				t.Fatalf("UDP answer of %d bytes", len(out))
			}
		}
	})
}
