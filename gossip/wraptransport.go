package gossip

import (
	"fmt"
	"log"
	"strings"

	"github.com/hashicorp/memberlist"
)

// wrapTransport sets mc.Transport to wrap(the transport memberlist would use):
// mc.Transport if set, else a UDP/TCP NetTransport bound as memberlist would bind it
// (binding here, so a port of 0 is resolved before memberlist advertises it).
func wrapTransport(mc *memberlist.Config, wrap func(memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error)) error {
	inner, ok := mc.Transport.(memberlist.NodeAwareTransport)
	if mc.Transport != nil && !ok {
		return fmt.Errorf("gossip: wrap transport: %T is not node-aware", mc.Transport)
	}
	if mc.Transport == nil {
		nt, err := bindNetTransport(mc)
		if err != nil {
			return err
		}
		inner = nt
	}
	tr, err := wrap(inner)
	if err != nil {
		_ = inner.Shutdown()
		return fmt.Errorf("gossip: wrap transport: %w", err)
	}
	mc.Transport = tr
	return nil
}

// bindNetTransport binds memberlist's own transport as memberlist.Create would,
// retrying a dynamic port that turned out to be taken on one protocol.
func bindNetTransport(mc *memberlist.Config) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr},
		BindPort:  mc.BindPort,
		Logger:    log.New(mc.LogOutput, "", log.LstdFlags),
		// As memberlist.Create sets them: they route the transport's metrics to this
		// node's registry.
		MetricLabels: mc.MetricLabels,
	}
	attempts := 1
	if mc.BindPort == 0 {
		attempts = 10
	}
	var err error
	for range attempts {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			if mc.BindPort == 0 {
				mc.BindPort = nt.GetAutoBindPort()
				mc.AdvertisePort = mc.BindPort
			}
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("gossip: bind %s:%d: %w", mc.BindAddr, mc.BindPort, err)
}
