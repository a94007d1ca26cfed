package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestMDNSUsable: mDNS runs only when on and when gossip is reachable from the LAN
// (issue 19 item 7: never with a loopback bind or --dev).
func TestMDNSUsable(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"off by default", Config{BindAddr: "0.0.0.0"}, false},
		{"on", Config{BindAddr: "0.0.0.0", MDNS: MDNSConfig{Enabled: true}}, true},
		{"loopback bind", Config{BindAddr: "127.0.0.1", MDNS: MDNSConfig{Enabled: true}}, false},
		{"ipv6 loopback bind", Config{BindAddr: "::1", MDNS: MDNSConfig{Enabled: true}}, false},
		{"dev", Config{BindAddr: "0.0.0.0", Dev: true, MDNS: MDNSConfig{Enabled: true}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := (&Agent{cfg: c.cfg}).mdnsUsable(); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestMDNSConfigRefused: bad mDNS settings are refused by New with an error naming them.
func TestMDNSConfigRefused(t *testing.T) {
	for _, m := range []MDNSConfig{{Announce: "some"}, {Import: []string{"ipp"}}, {Ifaces: []string{"[eth"}}} {
		if _, err := New(Config{NodeName: "n1", Dev: true, MDNS: m}); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}

// TestMDNSImportSink: what the adapter imports becomes records of origin
// mdns:<iface>@<node>, updated and withdrawn as the LAN changes.
func TestMDNSImportSink(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	am := &agentMDNS{a: a, writers: map[string]*catalog.Writer{}, held: map[string]map[string]catalog.Service{}}
	p := catalog.Service{ID: "ipp-p1", Name: "ipp", Tags: []string{"mdns"}, Address: "10.0.0.9", Port: 631, Weights: catalog.DefaultWeights}
	am.SetImported("eth0", []catalog.Service{p})
	insts := a.Catalog().ServiceInstances("ipp", catalog.Filter{})
	if len(insts) != 1 || insts[0].Node.Node.Name != "mdns:eth0@n1" || insts[0].Service.Port != 631 {
		t.Fatalf("after import: %+v", insts)
	}
	p.Port = 632
	am.SetImported("eth0", []catalog.Service{p})
	if insts := a.Catalog().ServiceInstances("ipp", catalog.Filter{}); len(insts) != 1 || insts[0].Service.Port != 632 {
		t.Fatalf("after update: %+v", insts)
	}
	am.SetImported("eth0", nil)
	if insts := a.Catalog().ServiceInstances("ipp", catalog.Filter{}); len(insts) != 0 {
		t.Fatalf("after withdrawal: %+v", insts)
	}
}

// TestMDNSOriginFollowsItsNode: the liveness of an mdns:<iface>@<node> origin
// follows its importing node's, so what a failed agent imported goes with it.
func TestMDNSOriginFollowsItsNode(t *testing.T) {
	a := startAgent(t, testConfig(t, "n1", "", nil))
	cat := a.Catalog()
	n2, imp := catalog.NewWriter("n2", 1), catalog.NewWriter("mdns:eth0@n2", 1)
	p := catalog.Service{ID: "ipp-p1", Name: "ipp", Address: "10.0.0.9", Port: 631, Weights: catalog.DefaultWeights}
	if _, err := cat.Apply(n2.PutNode(catalogtest.Node("n2", "10.0.0.2")),
		imp.PutNode(catalogtest.Node("mdns:eth0@n2", "10.0.0.2")), imp.PutService(&p)); err != nil {
		t.Fatal(err)
	}
	cat.SetLiveness("n2", catalog.LivenessFailed)
	a.wg.Go(a.mdnsFollow) // started with mDNS, which unit tests never run
	testkit.Poll(t, 10*time.Second, testkit.PollInterval, "the import's origin failed with its node", func() error {
		if st, _ := cat.Liveness("mdns:eth0@n2"); st != catalog.LivenessFailed {
			return fmt.Errorf("mdns:eth0@n2 is %s", st)
		}
		return nil
	})
}
