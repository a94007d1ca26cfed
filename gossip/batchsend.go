package gossip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// batchConn sends one packet to many peers in as few system calls as the platform
// allows (sendmmsg on Linux): the eager path's direct send of a change to every
// member. Sent one sendto at a time, the 49 packets of a change at 50 agents left
// the origin over 20–40 ms on a loaded host (netbench --trace, 3 December): each
// packet woke its receiver, whose process then took the CPU from the origin before
// the next sendto. Handed to the kernel in one call, every packet is queued to its
// receiver before the origin can be preempted.
//
// Its sockets are its own, bound to the gossip address with an ephemeral port:
// memberlist's transport does not expose its socket. Receivers take a user packet
// from any source port (memberlist answers only pings, which this never sends).
// Used only where the packets are plain (Gossip.rawPackets) and gossip bound
// memberlist's own transport, not a test's or a wrapper's (which must see every
// packet).
//
// # Concurrency
//
// send is called by the eager loop alone; close after it stopped.
type batchConn struct {
	v4, v6 *net.UDPConn // nil where that family cannot be sent from
}

// openBatchConn opens the sockets for a node bound to bindAddr (an IP; empty or
// unspecified: every family).
func openBatchConn(bindAddr string) (*batchConn, error) {
	var bind netip.Addr
	if bindAddr != "" {
		a, err := netip.ParseAddr(bindAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip: eager batch socket: bind address %q: %w", bindAddr, err)
		}
		bind = a.Unmap()
	}
	b := &batchConn{}
	var errs []error
	if !bind.IsValid() || bind.IsUnspecified() || bind.Is4() {
		ip := net.IPv4zero
		if bind.Is4() {
			ip = bind.AsSlice()
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
		b.v4, errs = c, append(errs, err)
	}
	if !bind.IsValid() || bind.IsUnspecified() || bind.Is6() {
		ip := net.IPv6unspecified
		if bind.Is6() && !bind.IsUnspecified() {
			ip = bind.AsSlice()
		}
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: ip, Zone: bind.Zone()})
		b.v6, errs = c, append(errs, err)
	}
	if b.v4 == nil && b.v6 == nil {
		return nil, fmt.Errorf("gossip: eager batch socket on %q: %w", bindAddr, errors.Join(errs...))
	}
	return b, nil
}

// send sends frame to every address it has a socket for, and reports which packets
// went out; the rest (a family without a socket, or after an error) are the
// caller's to send another way.
func (b *batchConn) send(frame []byte, to []netip.AddrPort) (sent []bool, err error) {
	sent = make([]bool, len(to))
	var v4, v6 []int
	for i, a := range to {
		if a.Addr().Unmap().Is4() {
			v4 = append(v4, i)
		} else {
			v6 = append(v6, i)
		}
	}
	var errs []error
	for _, fam := range []struct {
		c   *net.UDPConn
		idx []int
	}{{b.v4, v4}, {b.v6, v6}} {
		if fam.c == nil || len(fam.idx) == 0 {
			continue
		}
		addrs := make([]netip.AddrPort, len(fam.idx))
		for j, i := range fam.idx {
			addrs[j] = to[i]
			if fam.c == b.v4 {
				addrs[j] = netip.AddrPortFrom(to[i].Addr().Unmap(), to[i].Port())
			}
		}
		n, err := sendBatch(fam.c, frame, addrs)
		for _, i := range fam.idx[:n] {
			sent[i] = true
		}
		errs = append(errs, err)
	}
	return sent, errors.Join(errs...)
}

// close closes the sockets.
func (b *batchConn) close() error {
	var errs []error
	for _, c := range []*net.UDPConn{b.v4, b.v6} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
