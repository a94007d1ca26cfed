//go:build !linux

package dnsserver

import (
	"net/netip"
	"syscall"
	"time"
)

// reusePort does nothing off Linux: one UDP socket is opened.
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }

// reusePortWorks reports whether several UDP sockets can share a port here.
const reusePortWorks = false

const oobSize = 0

// arrival returns now: no kernel timestamps here.
func arrival(_ []byte, now time.Time) time.Time { return now }

// readNow reads nothing off Linux: the socket's reader alone reads it.
func readNow(_ uintptr, _, _ []byte) (n, oobn int, from netip.AddrPort, ok bool) {
	return 0, 0, netip.AddrPort{}, false
}
