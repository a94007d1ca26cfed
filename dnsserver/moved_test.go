package dnsserver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// move publishes origin's pointer for its instance id (deleting the instance in the
// same batch, as an agent does).
func (f *fixture) move(origin, id, service, toNode, toID string) {
	f.t.Helper()
	now := time.Now()
	recs := []catalog.Record{{Key: catalog.Key{Kind: catalog.KindService, ID: id}, Deleted: true},
		{Key: catalog.Key{Kind: catalog.KindMove, ID: id}, Move: &catalog.Move{Service: service, ToNode: toNode,
			ToServiceID: toID, At: now, Until: now.Add(time.Hour)}}}
	for i := range recs {
		f.ver[origin]++
		recs[i].Origin, recs[i].Version = origin, catalog.Version{Gen: 1, Counter: f.ver[origin]}
	}
	if _, err := f.cat.Apply(recs...); err != nil {
		f.t.Fatalf("Apply: %v", err)
	}
}

// TestMovedInstanceCNAME: a moved instance's DNS-SD name is answered with a CNAME to
// its new name and the new instance's records (RFC 1034 §3.6.2); before the move,
// and for names that never existed, nothing changes.
func TestMovedInstanceCNAME(t *testing.T) {
	f := newFixture(t, Config{})
	f.node("n1", "10.0.0.1", nil)
	f.node("n2", "10.0.0.2", nil)
	f.service("n1", catalogtest.Service("api-1", "api", 9000), catalog.StatusPassing)
	const old = "api-1-n1._api._tcp.consul."
	if r := f.query("udp", old, dns.TypeSRV, 0); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSRV {
		t.Fatalf("before the move: %v", r.Answer)
	}
	f.move("n1", "api-1", "api", "n2", "api-1")
	f.service("n2", catalogtest.Service("api-1", "api", 9001), catalog.StatusPassing)
	want := []string{
		"api-1-n1._api._tcp.consul. 0 IN CNAME api-1-n2._api._tcp.consul.",
		"api-1-n2._api._tcp.consul. 0 IN SRV 1 1 9001 n2.node.dc1.consul.",
	}
	testkit.Poll(t, 5*time.Second, time.Millisecond, "the old name to answer a CNAME", func() error {
		r := f.query("udp", old, dns.TypeSRV, 0)
		if got := rrs(r.Answer); strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("answer %q, want %q", got, want)
		}
		if got := rrs(r.Extra); len(got) != 1 || !strings.Contains(got[0], "10.0.0.2") {
			return fmt.Errorf("additional %q, want n2's address", got)
		}
		return nil
	})
	if r := f.query("udp", old, dns.TypeA, 0); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME || r.Rcode != dns.RcodeSuccess {
		t.Errorf("A of the old name: %v, want the CNAME alone", r)
	}
	if r := f.query("udp", old, dns.TypeTXT, 0); len(r.Answer) != 2 || r.Answer[1].Header().Rrtype != dns.TypeTXT {
		t.Errorf("TXT of the old name: %v, want the CNAME and the new TXT", r.Answer)
	}
	// The new name answers as itself; an instance that never existed is unknown.
	if r := f.query("udp", "api-1-n2._api._tcp.consul.", dns.TypeSRV, 0); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSRV {
		t.Errorf("new name: %v", r.Answer)
	}
	if r := f.query("udp", "api-9-n1._api._tcp.consul.", dns.TypeSRV, 0); r.Rcode != dns.RcodeNameError {
		t.Errorf("unknown instance: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	// A target that is not answered (critical) gives no CNAME to nothing.
	f.apply("n2", catalog.Record{Check: catalogtest.Check("check:api-1", "api-1", catalog.StatusCritical)})
	testkit.Poll(t, 5*time.Second, time.Millisecond, "no CNAME to a critical instance", func() error {
		if r := f.query("udp", old, dns.TypeSRV, 0); r.Rcode != dns.RcodeNameError {
			return fmt.Errorf("rcode %s, answer %v", dns.RcodeToString[r.Rcode], r.Answer)
		}
		return nil
	})
}
