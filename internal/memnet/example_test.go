package memnet_test

import (
	"fmt"
	"io"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/internal/memnet"
)

// Wiring memberlist to the network: one transport per node, the node's name
// and fake address in its config. Join is a synchronous state exchange, so
// the joiner sees both members when it returns. Tests that need time to pass
// (probes, suspicion) run the same code inside a testing/synctest bubble.
func ExampleNetwork() {
	network := memnet.NewNetwork(memnet.Config{Seed: 1})
	defer network.Close()

	start := func(name string) *memberlist.Memberlist {
		tr := network.NewTransport(name)
		cfg := memberlist.DefaultLANConfig()
		cfg.Name = name
		cfg.Transport = tr
		cfg.BindAddr, cfg.BindPort = tr.IP(), tr.Port()
		cfg.AdvertiseAddr, cfg.AdvertisePort = tr.IP(), tr.Port()
		cfg.LogOutput = io.Discard
		ml, err := memberlist.Create(cfg)
		if err != nil {
			panic(err)
		}
		return ml
	}
	a, b := start("a"), start("b")
	defer func() { _ = b.Shutdown(); _ = a.Shutdown() }()

	if _, err := b.Join([]string{a.LocalNode().Address()}); err != nil {
		panic(err)
	}
	for _, m := range b.Members() {
		fmt.Println(m.Name, m.Address())
	}
	// Unordered output:
	// a 10.0.0.1:7946
	// b 10.0.0.2:7946
}
