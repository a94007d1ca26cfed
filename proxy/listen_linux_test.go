package proxy

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
)

// The connections a listener accepts have its keep-alive settings (the kernel copies
// them), which is what lets serve skip setting them per connection.
func TestAcceptedInheritKeepAlive(t *testing.T) {
	ln, inherits, err := listen(context.Background(), "127.0.0.1:0", 17*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !inherits {
		t.Fatal("listen on Linux says accepted connections do not inherit keep-alive")
	}
	client, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on, idle int
	var err1, err2 error
	if err := rc.Control(func(fd uintptr) {
		on, err1 = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle, err2 = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
	}); err != nil || err1 != nil || err2 != nil {
		t.Fatal(err, err1, err2)
	}
	if on != 1 || idle != 17 {
		t.Errorf("accepted connection: SO_KEEPALIVE %d, TCP_KEEPIDLE %d s; want 1 and 17", on, idle)
	}
}
