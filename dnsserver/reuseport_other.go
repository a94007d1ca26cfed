//go:build !linux

package dnsserver

import "syscall"

// reusePort does nothing off Linux: one UDP socket is opened.
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }

// reusePortWorks reports whether several UDP sockets can share a port here.
const reusePortWorks = false
