//go:build !linux

package dnsserver

import "net/netip"

// threadsUDP reports whether UDP is served by threads blocked in recvmmsg: only on
// Linux.
func (s *Server) threadsUDP() bool { return false }

func (s *Server) listenThreads(netip.AddrPort) (netip.AddrPort, error) {
	panic("dnsserver: UDP threads need Linux")
}

func (s *Server) startThreads() {}
func (s *Server) stopThreads()  {}
func (s *Server) closeFDs()     {}
