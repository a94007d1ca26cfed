//go:build !(linux && (amd64 || arm64))

package gossip

import (
	"net"
	"net/netip"
)

// sendBatch sends frame to each address in turn, and returns how many went out
// before the first error.
func sendBatch(c *net.UDPConn, frame []byte, to []netip.AddrPort) (int, error) {
	for i, a := range to {
		if _, err := c.WriteToUDPAddrPort(frame, a); err != nil {
			return i, err
		}
	}
	return len(to), nil
}
