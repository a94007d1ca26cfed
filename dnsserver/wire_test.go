package dnsserver

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"
)

// TestPackMsgMatchesMiekg: packMsg gives PackBuffer's bytes for the server's answers
// (compressed names, OPT, truncated and full answers, NXDOMAIN with an SOA), reusing
// one compression table across them. FuzzHandle checks the same for its inputs.
func TestPackMsgMatchesMiekg(t *testing.T) {
	srv := perfServer(t)
	sc := newScratch()
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		edns  uint16 // 0: none
		tcp   bool
	}{
		{"srv", "web.service.consul.", dns.TypeSRV, 0, false},
		{"srv upper case", "WEB.Service.Consul.", dns.TypeSRV, 0, false},
		{"srv edns0", "web.service.consul.", dns.TypeSRV, 1232, false},
		{"a", "web.service.consul.", dns.TypeA, 0, false},
		{"any over tcp", "web.service.consul.", dns.TypeANY, 0, true},
		{"rfc 2782", "_web._tcp.service.consul.", dns.TypeSRV, 4096, false},
		{"node txt", "node-001.node.consul.", dns.TypeTXT, 0, false},
		{"nxdomain", "nope.service.consul.", dns.TypeSRV, 0, false},
		{"nodata", "web.service.consul.", dns.TypeMX, 0, false},
		{"dns-sd", "_services._dns-sd._udp.consul.", dns.TypePTR, 0, false},
		{"refused", "example.com.", dns.TypeA, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := new(dns.Msg)
			req.SetQuestion(tc.qname, tc.qtype)
			if tc.edns > 0 {
				req.SetEdns0(tc.edns, false)
			}
			r, act := srv.handle(req, tc.tcp)
			if act != actAnswer {
				t.Fatalf("action %d, want an answer", act)
			}
			got, err := srv.pack(r, make([]byte, dns.MaxMsgSize), sc)
			if err != nil {
				t.Fatal(err)
			}
			want, err := r.m.PackBuffer(make([]byte, dns.MaxMsgSize))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("packMsg gave\n%x\nPackBuffer gave\n%x\n%v", got, want, r.m)
			}
		})
	}
}
