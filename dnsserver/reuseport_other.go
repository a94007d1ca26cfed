//go:build !linux

package dnsserver

import (
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
