package testnet

import (
	"context"
	"encoding/json"
	"fmt"
)

// BytesSent returns, in Hosts() order, how many bytes each host has sent onto the
// bridge since the testbed was built: what its bridge port received, whole Ethernet
// frames (headers, ARP and multicast included). Frames a host sends while Cut are not
// counted; frames the bridge then drops (CutPair, Split) are. Take two readings and
// subtract to measure a window.
func (tb *Testbed) BytesSent(ctx context.Context) ([]uint64, error) {
	if err := tb.checkOpen(); err != nil {
		return nil, err
	}
	out, err := output(ctx, "ip", "-n", tb.bridgeNS, "-s", "-j", "link", "show", "master", bridgeName)
	if err != nil {
		return nil, fmt.Errorf("testnet: read bridge port counters: %w", err)
	}
	var links []struct {
		IfName string `json:"ifname"`
		Stats  *struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("testnet: read bridge port counters: ip -j: %w", err)
	}
	rx := make(map[string]uint64, len(links))
	for _, l := range links {
		if l.Stats != nil {
			rx[l.IfName] = l.Stats.RX.Bytes
		}
	}
	sent := make([]uint64, len(tb.hosts))
	for i, h := range tb.hosts {
		b, ok := rx[h.port()]
		if !ok {
			return nil, fmt.Errorf("testnet: read bridge port counters: no counters for %s's port %s", h.name, h.port())
		}
		sent[i] = b
	}
	return sent, nil
}
