package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// soReusePort is Linux's SO_REUSEPORT (asm-generic/socket.h), which package syscall
// does not name (the UDP threads use golang.org/x/sys/unix; the NetpollUDP sockets
// keep to package syscall).
const soReusePort = 0xf

// reusePort sets SO_REUSEPORT, so several sockets share the port and the kernel
// spreads packets among them by a hash of the sender, and SO_TIMESTAMPNS, so each
// datagram carries the time the kernel received it (its wait in the socket's queue
// counts in its age).
func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		if serr == nil {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1) // best effort
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// reusePortWorks reports whether several UDP sockets can share a port here.
const reusePortWorks = true

// oobSize is room for one SCM_TIMESTAMPNS control message.
const oobSize = 64

// arrival reads the kernel's receive time from a datagram's control messages, or
// returns now.
func arrival(oob []byte, now time.Time) time.Time {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return now
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			if t := time.Unix(sec, nsec); t.Before(now) {
				return t
			}
			return now
		}
	}
	return now
}

// readNow reads one datagram that already waits in the socket fd into buf, without
// waiting and without the net package's read lock (which the socket's reader holds
// while it is parked); ok is false when none waits. Only the sender's address
// allocates.
func readNow(fd uintptr, buf, oob []byte) (n, oobn int, from netip.AddrPort, ok bool) {
	n, oobn, _, sa, err := syscall.Recvmsg(int(fd), buf, oob, syscall.MSG_DONTWAIT)
	if err != nil {
		return 0, 0, netip.AddrPort{}, false
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return n, oobn, netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *syscall.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr)
		if a.ZoneId != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(a.ZoneId), 10)) // net resolves numeric zones
		}
		return n, oobn, netip.AddrPortFrom(ip, uint16(a.Port)), true
	}
	return 0, 0, netip.AddrPort{}, false
}
