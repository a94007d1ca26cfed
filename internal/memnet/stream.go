package memnet

import (
	"net"
	"sync"
)

// stream is one established connection: a net.Pipe whose ends are wrapped to
// carry the nodes' addresses and to count bytes.
//
// net.Pipe is synchronous (a Write waits for the peer's Read), which is enough
// for memberlist's request/response exchanges and honours deadlines; unlike
// TCP it has no buffer, so a writer whose peer stops reading waits for its
// own deadline.
type stream struct {
	dialer, listener *Transport

	dialerEnd, listenerEnd *streamConn
	closeOnce              sync.Once
}

func newStream(dialer, listener *Transport) *stream {
	a, b := net.Pipe()
	s := &stream{dialer: dialer, listener: listener}
	s.dialerEnd = &streamConn{Conn: a, s: s, owner: dialer, local: dialer.tcpAddr, remote: listener.tcpAddr}
	s.listenerEnd = &streamConn{Conn: b, s: s, owner: listener, local: listener.tcpAddr, remote: dialer.tcpAddr}
	return s
}

// close closes both ends, so both sides' pending and future reads and writes
// fail at once. It does not take the network lock.
func (s *stream) close() {
	s.closeOnce.Do(func() {
		_ = s.dialerEnd.Conn.Close()
		_ = s.listenerEnd.Conn.Close()
	})
}

// streamConn is one end of a stream.
type streamConn struct {
	net.Conn // the pipe end: deadlines and Close come from it
	s        *stream
	owner    *Transport
	local    net.Addr
	remote   net.Addr
}

// Read counts received bytes against the owner.
func (c *streamConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.owner.stats.streamBytesReceived.Add(uint64(n))
	return n, err
}

// Write counts sent bytes against the owner.
func (c *streamConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.owner.stats.streamBytesSent.Add(uint64(n))
	return n, err
}

// Close closes this end (the peer then reads io.EOF) and unregisters the
// stream so later partitions need not look at it.
func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.owner.net.forget(c.s)
	return err
}

// LocalAddr returns the owner's address.
func (c *streamConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address.
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }
