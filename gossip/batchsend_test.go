package gossip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// One frame goes to every IPv4 peer, once each, from the batch socket; an address
// of a family it has no socket for is left to the caller.
func TestBatchConnSendsToEveryPeer(t *testing.T) {
	b, err := openBatchConn("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if b.v4 == nil || b.v6 != nil {
		t.Fatalf("sockets v4 %v, v6 %v; want only v4 for a v4 bind", b.v4, b.v6)
	}
	var peers []*net.UDPConn
	var addrs []netip.AddrPort
	for range 5 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		peers = append(peers, c)
		addrs = append(addrs, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	v6 := netip.MustParseAddrPort("[::1]:9")
	frame := []byte{mlUserMsg, msgEager, 'x', 'y'}
	sent, err := b.send(frame, append(addrs, v6))
	if err != nil {
		t.Fatal(err)
	}
	for i := range addrs {
		if !sent[i] {
			t.Errorf("packet to %s not sent", addrs[i])
		}
	}
	if sent[len(addrs)] {
		t.Errorf("packet to %s reported sent without an IPv6 socket", v6)
	}
	buf := make([]byte, 64)
	for i, c := range peers {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], frame) || from != b.v4.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Errorf("peer %d got %x from %s, want %x from the batch socket", i, buf[:n], from, frame)
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _, err := c.ReadFromUDPAddrPort(buf); err == nil {
			t.Errorf("peer %d got a second packet %x", i, buf[:n])
		}
	}
}

func TestOpenBatchConnRefusesABadAddress(t *testing.T) {
	if _, err := openBatchConn("not-an-ip"); err == nil {
		t.Fatal("openBatchConn(not-an-ip) succeeded")
	}
}
