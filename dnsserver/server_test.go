package dnsserver

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// fixture is a catalog and a running server on it.
type fixture struct {
	t   testing.TB
	cat *catalog.Catalog
	srv *Server
	ver map[string]uint64
}

// newFixture starts a server on 127.0.0.1:0 over an empty catalog; cfg's Addr and
// Catalog are filled in.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	cat, _ := catalogtest.New(t, catalog.Config{})
	cfg.Addr, cfg.Catalog = "127.0.0.1:0", cat
	if cfg.NodeName == "" {
		cfg.NodeName = "n1"
	}
	if cfg.UDPReaders == 0 {
		cfg.UDPReaders = 2
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &fixture{t: t, cat: cat, srv: srv, ver: map[string]uint64{}}
}

// apply applies records of origin at its next version.
func (f *fixture) apply(origin string, recs ...catalog.Record) {
	f.t.Helper()
	for i := range recs {
		f.ver[origin]++
		r := &recs[i]
		r.Origin, r.Version = origin, catalog.Version{Gen: 1, Counter: f.ver[origin]}
		switch {
		case r.Node != nil:
			r.Key = catalog.Key{Kind: catalog.KindNode}
		case r.Service != nil:
			r.Key = catalog.Key{Kind: catalog.KindService, ID: r.Service.ID}
		case r.Check != nil:
			r.Key = catalog.Key{Kind: catalog.KindCheck, ID: r.Check.ID}
		}
	}
	if _, err := f.cat.Apply(recs...); err != nil {
		f.t.Fatalf("Apply: %v", err)
	}
}

func (f *fixture) node(name, addr string, meta map[string]string) {
	n := catalogtest.Node(name, addr)
	n.Meta = meta
	f.apply(name, catalog.Record{Node: n})
}

func (f *fixture) service(node string, s *catalog.Service, status catalog.Status) {
	f.apply(node, catalog.Record{Service: s}, catalog.Record{Check: catalogtest.Check("check:"+s.ID, s.ID, status)})
}

func (f *fixture) deregister(node, id string) {
	f.ver[node]++
	v := catalog.Version{Gen: 1, Counter: f.ver[node]}
	if _, err := f.cat.Apply(catalog.Record{Origin: node, Key: catalog.Key{Kind: catalog.KindService, ID: id}, Version: v, Deleted: true}); err != nil {
		f.t.Fatalf("Apply: %v", err)
	}
}

// query asks the server over net ("udp" or "tcp") and fails the test on a
// transport error.
func (f *fixture) query(net, name string, qtype uint16, edns int) *dns.Msg {
	f.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(uint16(edns), false)
	}
	c := &dns.Client{Net: net, Timeout: 5 * time.Second, UDPSize: uint16(max(edns, 512))}
	r, _, err := c.Exchange(m, f.srv.Addr().String())
	if err != nil {
		f.t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], net, err)
	}
	return r
}

// rrs returns a section as sorted zone-file lines.
func rrs(sec []dns.RR) []string {
	var out []string
	for _, rr := range sec {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

// standard registers: node n1 (10.0.0.1, meta rack=r1) with web-1 (tags v1, primary,
// port 8080, meta version=1) passing, node n2 (10.0.0.2) with web-2 (tag v2, own
// address 10.0.1.2) warning, node n3 (10.0.0.3) with web-3 critical, and db on n2
// passing with an IPv6 address.
func (f *fixture) standard() {
	f.node("n1", "10.0.0.1", map[string]string{"rack": "r1"})
	f.node("n2", "10.0.0.2", nil)
	f.node("n3", "10.0.0.3", nil)
	w1 := catalogtest.Service("web-1", "web", 8080, "v1", "primary")
	w1.Meta = map[string]string{"version": "1"}
	f.service("n1", w1, catalog.StatusPassing)
	w2 := catalogtest.Service("web-2", "web", 8081, "v2")
	w2.Address = "10.0.1.2"
	f.service("n2", w2, catalog.StatusWarning)
	f.service("n3", catalogtest.Service("web-3", "web", 8082, "v1"), catalog.StatusCritical)
	db := catalogtest.Service("db", "db", 5432)
	db.Address = "fd00::5"
	f.service("n2", db, catalog.StatusPassing)
}

func TestNames(t *testing.T) {
	f := newFixture(t, Config{})
	f.standard()
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
		ns     bool // an SOA in the authority section
	}{
		{"srv", "web.service.consul.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"web.service.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul.", "web.service.consul. 0 IN SRV 1 1 8081 0a000102.addr.dc1.consul."},
			[]string{"0a000102.addr.dc1.consul. 0 IN A 10.0.1.2", "n1.node.dc1.consul. 0 IN A 10.0.0.1"}, false},
		{"a", "web.service.consul.", dns.TypeA, dns.RcodeSuccess,
			[]string{"web.service.consul. 0 IN A 10.0.0.1", "web.service.consul. 0 IN A 10.0.1.2"}, nil, false},
		{"case-insensitive", "WeB.SeRvIcE.CoNsUl.", dns.TypeA, dns.RcodeSuccess,
			[]string{"web.service.consul. 0 IN A 10.0.0.1", "web.service.consul. 0 IN A 10.0.1.2"}, nil, false},
		{"with dc", "web.service.dc1.consul.", dns.TypeA, dns.RcodeSuccess,
			[]string{"web.service.dc1.consul. 0 IN A 10.0.0.1", "web.service.dc1.consul. 0 IN A 10.0.1.2"}, nil, false},
		{"other dc", "web.service.dc2.consul.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"tag", "v1.web.service.consul.", dns.TypeA, dns.RcodeSuccess,
			[]string{"v1.web.service.consul. 0 IN A 10.0.0.1"}, nil, false},
		{"tag of a critical instance only: NODATA", "v1.web.service.consul.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil, true},
		{"unknown tag", "v9.web.service.consul.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"rfc2782 tag", "_web._v2.service.consul.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"_web._v2.service.consul. 0 IN SRV 1 1 8081 0a000102.addr.dc1.consul."},
			[]string{"0a000102.addr.dc1.consul. 0 IN A 10.0.1.2"}, false},
		{"rfc2782 tcp", "_web._tcp.service.consul.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"_web._tcp.service.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul.", "_web._tcp.service.consul. 0 IN SRV 1 1 8081 0a000102.addr.dc1.consul."},
			[]string{"0a000102.addr.dc1.consul. 0 IN A 10.0.1.2", "n1.node.dc1.consul. 0 IN A 10.0.0.1"}, false},
		{"txt from service meta", "web.service.consul.", dns.TypeTXT, dns.RcodeSuccess,
			[]string{"web.service.consul. 0 IN TXT \"version=1\""}, nil, false},
		{"aaaa", "db.service.consul.", dns.TypeAAAA, dns.RcodeSuccess, []string{"db.service.consul. 0 IN AAAA fd00::5"}, nil, false},
		{"nodata", "db.service.consul.", dns.TypeA, dns.RcodeSuccess, nil, nil, true},
		{"any", "web.service.consul.", dns.TypeANY, dns.RcodeSuccess,
			[]string{"web.service.consul. 0 IN A 10.0.0.1", "web.service.consul. 0 IN A 10.0.1.2", "web.service.consul. 0 IN TXT \"version=1\""}, nil, false},
		{"unknown service", "nope.service.consul.", dns.TypeSRV, dns.RcodeNameError, nil, nil, true},
		{"node a", "n1.node.consul.", dns.TypeA, dns.RcodeSuccess, []string{"n1.node.consul. 0 IN A 10.0.0.1"}, nil, false},
		{"node txt", "n1.node.dc1.consul.", dns.TypeTXT, dns.RcodeSuccess, []string{"n1.node.dc1.consul. 0 IN TXT \"rack=r1\""}, nil, false},
		{"node case", "N1.NODE.consul.", dns.TypeA, dns.RcodeSuccess, []string{"n1.node.consul. 0 IN A 10.0.0.1"}, nil, false},
		{"unknown node", "n9.node.consul.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"addr v4", "0a000001.addr.consul.", dns.TypeA, dns.RcodeSuccess, []string{"0a000001.addr.consul. 0 IN A 10.0.0.1"}, nil, false},
		{"addr v6", "fd000000000000000000000000000005.addr.dc1.consul.", dns.TypeAAAA, dns.RcodeSuccess,
			[]string{"fd000000000000000000000000000005.addr.dc1.consul. 0 IN AAAA fd00::5"}, nil, false},
		{"addr bad hex", "zz000001.addr.consul.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"soa", "consul.", dns.TypeSOA, dns.RcodeSuccess, []string{"consul. 30 IN SOA ns.consul. hostmaster.consul. SERIAL 3600 600 86400 30"}, nil, false},
		{"ns", "consul.", dns.TypeNS, dns.RcodeSuccess, []string{"consul. 0 IN NS ns.consul."}, []string{"ns.consul. 0 IN A 10.0.0.1"}, false},
		{"ns host", "ns.consul.", dns.TypeA, dns.RcodeSuccess, []string{"ns.consul. 0 IN A 10.0.0.1"}, nil, false},
		{"unknown form", "foo.bar.consul.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"outside: refused", "example.com.", dns.TypeA, dns.RcodeRefused, nil, nil, false},
		{"ptr node", "1.0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"1.0.0.10.in-addr.arpa. 0 IN PTR n1.node.dc1.consul."}, nil, false},
		{"ptr service", "2.1.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"2.1.0.10.in-addr.arpa. 0 IN PTR web.service.dc1.consul."}, nil, false},
		{"ptr v6 service", "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess,
			[]string{"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 0 IN PTR db.service.dc1.consul."}, nil, false},
		{"ptr unknown", "9.9.9.9.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, nil, false},
		{"dns-sd services", "_services._dns-sd._udp.consul.", dns.TypePTR, dns.RcodeSuccess,
			[]string{"_services._dns-sd._udp.consul. 0 IN PTR _db._tcp.consul.", "_services._dns-sd._udp.consul. 0 IN PTR _web._tcp.consul."}, nil, false},
		{"dns-sd type", "_web._tcp.consul.", dns.TypePTR, dns.RcodeSuccess,
			[]string{"_web._tcp.consul. 0 IN PTR web-1-n1._web._tcp.consul.", "_web._tcp.consul. 0 IN PTR web-2-n2._web._tcp.consul."},
			[]string{"0a000102.addr.dc1.consul. 0 IN A 10.0.1.2", "n1.node.dc1.consul. 0 IN A 10.0.0.1",
				"web-1-n1._web._tcp.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul.", "web-1-n1._web._tcp.consul. 0 IN TXT \"version=1\"",
				"web-2-n2._web._tcp.consul. 0 IN SRV 1 1 8081 0a000102.addr.dc1.consul.", "web-2-n2._web._tcp.consul. 0 IN TXT \"\""}, false},
		{"dns-sd instance", "web-1-n1._web._tcp.consul.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"web-1-n1._web._tcp.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul."}, []string{"n1.node.dc1.consul. 0 IN A 10.0.0.1"}, false},
		{"dns-sd critical instance: NODATA", "web-3-n3._web._tcp.consul.", dns.TypeSRV, dns.RcodeSuccess, nil, nil, true},
		{"dns-sd unknown instance", "web-9-n1._web._tcp.consul.", dns.TypeSRV, dns.RcodeNameError, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, nw := range []string{"udp", "tcp"} {
				r := f.query(nw, tt.qname, tt.qtype, 0)
				if r.Rcode != tt.rcode {
					t.Fatalf("%s: rcode %s, want %s\n%v", nw, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], r)
				}
				got := rrs(r.Answer)
				for i := range got {
					got[i] = strings.Replace(got[i], " "+strconv.FormatUint(uint64(f.srv.serial), 10)+" ", " SERIAL ", 1)
				}
				if !slices.Equal(got, tt.answer) {
					t.Errorf("%s: answer\n%s\nwant\n%s", nw, strings.Join(got, "\n"), strings.Join(tt.answer, "\n"))
				}
				if got := rrs(r.Extra); !slices.Equal(got, tt.extra) {
					t.Errorf("%s: additional\n%s\nwant\n%s", nw, strings.Join(got, "\n"), strings.Join(tt.extra, "\n"))
				}
				hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
				if hasSOA != tt.ns {
					t.Errorf("%s: authority %v, want an SOA: %v", nw, r.Ns, tt.ns)
				}
				if tt.ns && r.Ns[0].Header().Ttl != 30 {
					t.Errorf("%s: SOA TTL %d, want the negative TTL 30", nw, r.Ns[0].Header().Ttl)
				}
			}
		})
	}
}
