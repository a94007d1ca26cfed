package dnsserver

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeUDP measures one UDP query's work in the server, from the packet's
// bytes to the answer written (to a socket nobody reads): SRV of web.service.consul,
// 5 of 100 instances.
func BenchmarkServeUDP(b *testing.B) {
	srv := perfServer(b)
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	q, _ := m.Pack()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	conn := srv.udp[0]
	out := make([]byte, 0, dns.MaxMsgSize)
	buf := make([]byte, dns.MaxMsgSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		n := copy(buf, q)
		out = srv.serveUDP(packet{buf: &buf, n: n, from: to, conn: conn}, out)
	}
}
