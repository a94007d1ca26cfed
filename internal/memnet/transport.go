package memnet

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Transport is one node's attachment to a [Network]. It implements
// memberlist.NodeAwareTransport; create it with [Network.NewTransport] and set
// it as memberlist.Config.Transport. Its methods are safe for concurrent use
// and never block.
type Transport struct {
	net  *Network
	name string
	addr string // "ip:port", the key of every per-node setting
	ip   net.IP
	port int

	// Packets and connections carry real address types, so code that
	// inspects From or RemoteAddr sees what NetTransport would give it.
	udpAddr *net.UDPAddr
	tcpAddr *net.TCPAddr

	// packetCh is the bounded receive queue; streamCh the accept backlog.
	// Neither is ever closed (see Network.shutdown).
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	down   bool // guarded by net.mu
	closed bool // guarded by net.mu

	stats counters
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

func newTransport(n *Network, name string, ip net.IP, port int) *Transport {
	return &Transport{
		net:      n,
		name:     name,
		addr:     net.JoinHostPort(ip.String(), strconv.Itoa(port)),
		ip:       ip,
		port:     port,
		udpAddr:  &net.UDPAddr{IP: ip, Port: port},
		tcpAddr:  &net.TCPAddr{IP: ip, Port: port},
		packetCh: make(chan *memberlist.Packet, n.queueLen),
		streamCh: make(chan net.Conn, n.backlog),
	}
}

// Name returns the node name the transport was created for.
func (t *Transport) Name() string { return t.name }

// Addr returns the node's address, "ip:port": what memberlist advertises and
// what other nodes pass to Join.
func (t *Transport) Addr() string { return t.addr }

// IP returns the IP of the node's address, for memberlist.Config.AdvertiseAddr
// and BindAddr.
func (t *Transport) IP() string { return t.ip.String() }

// Port returns the port of the node's address, for
// memberlist.Config.AdvertisePort and BindPort.
func (t *Transport) Port() int { return t.port }

// Stats returns a snapshot of the node's counters.
func (t *Transport) Stats() Stats { return t.stats.snapshot() }

// FinalAdvertiseAddr returns the node's fake address. With ip empty (as in
// memberlist.DefaultLANConfig) the requested port is ignored, as NetTransport
// ignores it in favour of the bound port. An explicit ip and port must match
// the node's address: advertising anything else would make the node
// unreachable on this network, so it is a configuration error.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		return t.ip, t.port, nil
	}
	if want := net.ParseIP(ip); want == nil || !want.Equal(t.ip) || port != t.port {
		return nil, 0, fmt.Errorf("memnet: node %s has address %s, cannot advertise %s",
			t.name, t.addr, net.JoinHostPort(ip, strconv.Itoa(port)))
	}
	return t.ip, t.port, nil
}

// WriteTo sends a packet to addr and returns the send time. It never blocks and,
// like UDP, reports no error for a packet that is lost; it fails only once the
// transport is shut down.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	return now, t.net.send(t, b, addr)
}

// WriteToAddress is WriteTo for memberlist.NodeAwareTransport. Packets are
// routed by address; the name is not needed.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh returns the node's receive queue. It is never closed.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a stream to addr. It returns at once: with an error
// wrapping ErrUnreachable if the node cannot be reached, ErrRefused if its
// backlog is full, or net.ErrClosed if t is shut down. timeout is therefore
// unused. The connection honours deadlines.
func (t *Transport) DialTimeout(addr string, _ time.Duration) (net.Conn, error) {
	return t.net.dial(t, addr)
}

// DialAddressTimeout is DialTimeout for memberlist.NodeAwareTransport.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh returns the node's queue of accepted streams. It is never closed.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown takes the node off the network for good: everything sent to or
// from it is dropped and its streams are closed. It is idempotent, starts
// nothing and leaves nothing running: the timers of packets in flight to it
// are stopped and those packets counted as dropped.
func (t *Transport) Shutdown() error {
	t.net.shutdown(t)
	return nil
}
