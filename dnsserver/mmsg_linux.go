//go:build linux

package dnsserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the UDP sockets' system-call layer on Linux: blocking sockets the
// runtime's netpoller never sees, read with recvmmsg(2) and written with
// sendmmsg(2) by threads of their own (udpthread.go). A datagram then wakes the
// thread blocked on its socket directly, instead of waiting for the runtime to poll
// epoll and schedule a parked goroutine; see the README's DNS section for what that
// changed.

// mmsghdr is struct mmsghdr (linux/socket.h): one datagram of a recvmmsg or
// sendmmsg batch. Go pads it to the alignment of Msghdr, as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgBatch is a batch of datagrams and the memory their headers point into. It is
// owned by one thread; the headers hold pointers into the batch's own slices, which
// the Go heap never moves.
type mmsgBatch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 too
	bufs  [][]byte
	oobs  [][]byte
}

// newMmsgBatch makes a batch of n datagrams of up to size bytes, each with oob
// bytes of control messages (0: none).
func newMmsgBatch(n, size, oob int) *mmsgBatch {
	b := &mmsgBatch{hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n), bufs: make([][]byte, n), oobs: make([][]byte, n)}
	data := make([]byte, n*size)
	var ctl []byte
	if oob > 0 {
		ctl = make([]byte, n*oob)
	}
	for i := range n {
		b.bufs[i] = data[i*size : (i+1)*size : (i+1)*size]
		if oob > 0 {
			b.oobs[i] = ctl[i*oob : (i+1)*oob : (i+1)*oob]
		}
		b.iovs[i].Base = &b.bufs[i][0]
		h := &b.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		if oob > 0 {
			h.Control = &b.oobs[i][0]
		}
	}
	return b
}

// prepareRecv readies the batch's headers for recvmmsg: full buffers, room for any
// address and control message.
func (b *mmsgBatch) prepareRecv() {
	for i := range b.hdrs {
		b.iovs[i].SetLen(len(b.bufs[i]))
		h := &b.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(len(b.oobs[i]))
		h.Flags = 0
		b.hdrs[i].n = 0
	}
}

// recvmmsg reads up to len(b.hdrs) datagrams from fd. With MSG_WAITFORONE on a
// blocking socket it waits for the first and then takes those already waiting. It
// enters the runtime's syscall state (syscall.Syscall6), so the thread's P is handed
// to other goroutines while it blocks.
func recvmmsg(fd int, b *mmsgBatch, flags int) (int, error) {
	b.prepareRecv()
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
		uintptr(len(b.hdrs)), uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// sendmmsg writes hdrs[:n] to fd, retrying after a partial send; it gives up on the
// datagram that fails (UDP: its client retries) and goes on with the rest.
func sendmmsg(fd int, hdrs []mmsghdr) {
	for len(hdrs) > 0 {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])),
			uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			n = 1 // the first failed: skip it
		case n == 0:
			return
		}
		hdrs = hdrs[n:]
	}
}

// sockaddrPort decodes the address a recvmmsg header holds.
func sockaddrPort(rsa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch rsa.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), port), true
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&rsa.Port))[:])
		ip := netip.AddrFrom16(rsa.Addr)
		return netip.AddrPortFrom(ip, port), true
	}
	return netip.AddrPort{}, false
}

// kernelTime reads the SO_TIMESTAMPNS control message of a datagram (Unix ns), or 0,
// without allocating (syscall.ParseSocketControlMessage allocates per message).
func kernelTime(oob []byte) int64 {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(16) {
			d := oob[unix.CmsgLen(0):]
			sec := int64(binary.NativeEndian.Uint64(d[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(d[8:16]))
			return sec*1e9 + nsec
		}
		oob = oob[unix.CmsgSpace(l-unix.CmsgLen(0)):]
	}
	return 0
}

// blockingUDP opens a blocking UDP socket bound to addr with SO_REUSEPORT and
// SO_TIMESTAMPNS, close-on-exec, and rcvbuf bytes of receive buffer (best effort).
func blockingUDP(addr netip.AddrPort, rcvbuf int) (fd int, bound netip.AddrPort, err error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if addr.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	}
	fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, bound, fmt.Errorf("socket: %w", err)
	}
	fail := func(op string, e error) (int, netip.AddrPort, error) {
		_ = unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("%s: %w", op, e)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("SO_REUSEPORT", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	if rcvbuf > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	if family == unix.AF_INET6 && addr.Addr().Is6() && !addr.Addr().IsUnspecified() {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		bound = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		bound = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	default:
		return fail("getsockname", errors.New("unexpected address family"))
	}
	return fd, bound, nil
}
