package dnsserver

import "syscall"

// soReusePort is Linux's SO_REUSEPORT (asm-generic/socket.h), which package syscall
// does not name; golang.org/x/sys is not an import of this package (layering_test.go).
const soReusePort = 0xf

// reusePort sets SO_REUSEPORT, so several sockets share the port and the kernel
// spreads packets among them by a hash of the sender.
func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1) })
	if err != nil {
		return err
	}
	return serr
}

// reusePortWorks reports whether several UDP sockets can share a port here.
const reusePortWorks = true
