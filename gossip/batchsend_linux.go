//go:build linux && (amd64 || arm64)

package gossip

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// mmsghdr is Linux's struct mmsghdr on 64-bit platforms.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [4]byte
}

// sendBatch sends frame to every address with sendmmsg(2), as many per call as the
// kernel takes, and returns how many went out.
func sendBatch(c *net.UDPConn, frame []byte, to []netip.AddrPort) (int, error) {
	if len(to) == 0 || len(frame) == 0 {
		return 0, nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("gossip: eager batch: %w", err)
	}
	iov := syscall.Iovec{Base: &frame[0]}
	iov.SetLen(len(frame))
	msgs := make([]mmsghdr, len(to))
	names4 := make([]syscall.RawSockaddrInet4, len(to))
	names6 := make([]syscall.RawSockaddrInet6, len(to))
	for i, a := range to {
		h := &msgs[i].hdr
		h.Iov, h.Iovlen = &iov, 1
		if a.Addr().Is4() {
			sa := &names4[i]
			sa.Family = syscall.AF_INET
			sa.Addr = a.Addr().As4()
			putPort(&sa.Port, a.Port())
			h.Name, h.Namelen = (*byte)(unsafe.Pointer(sa)), syscall.SizeofSockaddrInet4
		} else {
			sa := &names6[i]
			sa.Family = syscall.AF_INET6
			sa.Addr = a.Addr().As16()
			putPort(&sa.Port, a.Port())
			if z := a.Addr().Zone(); z != "" {
				if ifi, err := net.InterfaceByName(z); err == nil {
					sa.Scope_id = uint32(ifi.Index)
				}
			}
			h.Name, h.Namelen = (*byte)(unsafe.Pointer(sa)), syscall.SizeofSockaddrInet6
		}
	}
	sent := 0
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		for sent < len(msgs) {
			n, _, e := syscall.Syscall6(sysSendmmsg, fd, uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent), 0, 0, 0)
			switch {
			case e == syscall.EAGAIN:
				return false // wait until the socket is writable
			case e == syscall.EINTR:
				continue
			case e != 0:
				// The packet at sent failed (sendmmsg reports an error only when
				// none went out): stop; the caller sends the rest one by one.
				serr = fmt.Errorf("gossip: eager batch: sendmmsg to %s: %w", to[sent], e)
				return true
			}
			sent += int(n)
		}
		return true
	})
	if werr != nil {
		return sent, fmt.Errorf("gossip: eager batch: %w", werr)
	}
	return sent, serr
}

// putPort stores port in network byte order.
func putPort(dst *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}
