package netem_test

import (
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/gossip/netem"
	"github.com/rumor-sd/rumor/internal/memnet"
)

// TestMemberlistOverNetem runs two memberlist nodes whose transports both add 30 ms:
// they join (over the delayed stream path), and a ping's round trip is the two
// one-way delays, 60 ms, on the fake clock.
func TestMemberlistOverNetem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := memnet.NewNetwork(memnet.Config{Seed: 1})
		defer network.Close()
		start := func(name string) *memberlist.Memberlist {
			inner := network.NewTransport(name)
			tr, err := netem.Wrap(inner, netem.Config{Latency: 30 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			cfg := memberlist.DefaultLANConfig()
			cfg.Name = name
			cfg.Transport = tr
			cfg.BindAddr, cfg.BindPort = inner.IP(), inner.Port()
			cfg.AdvertiseAddr, cfg.AdvertisePort = inner.IP(), inner.Port()
			cfg.LogOutput = io.Discard
			ml, err := memberlist.Create(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return ml
		}
		a, b := start("a"), start("b")
		defer func() { _ = b.Shutdown(); _ = a.Shutdown() }()
		if _, err := b.Join([]string{a.LocalNode().Address()}); err != nil {
			t.Fatal(err)
		}
		// b's Join returns once b has merged a's state; a merges b's state after
		// sending its reply, so it may still be doing so. Give it fake time, bounded.
		for deadline := time.Now().Add(time.Second); a.NumMembers() != 2; {
			if time.Now().After(deadline) {
				t.Fatalf("a sees %d members 1s after b joined, want 2", a.NumMembers())
			}
			time.Sleep(time.Millisecond)
		}
		rtt, err := b.Ping("a", &net.UDPAddr{IP: a.LocalNode().Addr, Port: int(a.LocalNode().Port)})
		if err != nil {
			t.Fatal(err)
		}
		if rtt < 60*time.Millisecond || rtt > 61*time.Millisecond {
			t.Errorf("ping round trip %s, want 60ms (two 30ms hops)", rtt)
		}
	})
}
