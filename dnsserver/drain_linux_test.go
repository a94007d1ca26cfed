package dnsserver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDrainQueuesWaitingDatagrams: drain, which workers call while a backlog waits,
// moves the datagrams waiting in a socket into the queue with their senders'
// addresses and kernel arrival times, and the answers reach those senders. No reader
// runs here: drain alone must get the queries out of the socket.
func TestDrainQueuesWaitingDatagrams(t *testing.T) {
	srv := perfServer(t) // its own readers are replaced below by a bare socket
	ln, err := listenBare(t)
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	const sent = drainMax + 3
	for i := range sent {
		m := new(dns.Msg)
		m.SetQuestion("web.service.consul.", dns.TypeSRV)
		m.Id = uint16(i + 1)
		b, _ := m.Pack()
		if _, err := client.WriteToUDP(b, ln.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	bare := &Server{cfg: srv.cfg, metrics: srv.metrics, udp: []*net.UDPConn{ln}}
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	bare.raw = append(bare.raw, rc)
	bare.q.init(64, 32)
	sc := newScratch()
	start := time.Now()
	bare.drain(sc)
	if bare.q.n != drainMax {
		t.Fatalf("first drain queued %d, want %d (drainMax)", bare.q.n, drainMax)
	}
	bare.drain(sc)
	if bare.q.n != sent {
		t.Fatalf("second drain queued %d in all, want %d", bare.q.n, sent)
	}
	bare.drain(sc) // nothing waits: returns at once
	want := client.LocalAddr().(*net.UDPAddr).AddrPort()
	for range sent {
		p, _, _ := bare.q.pop()
		if p.from != want || p.at.Before(start.Add(-time.Minute)) || p.at.After(time.Now()) {
			t.Errorf("queued packet from %v at %v, want from %v", p.from, p.at, want)
		}
		bare.serveUDP(p, sc)
		bufPool.Put(p.buf)
	}
	buf := make([]byte, dns.MaxMsgSize)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range sent {
		n, err := client.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil || m.Id == 0 || m.Id > sent || len(m.Answer) != 5 {
			t.Fatalf("answer %v: %v", err, m)
		}
	}
}

// listenBare opens a UDP socket on loopback with the server's socket options, read
// by nobody.
func listenBare(t *testing.T) (*net.UDPConn, error) {
	t.Helper()
	lc := net.ListenConfig{Control: reusePort}
	pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.(*net.UDPConn), nil
}
