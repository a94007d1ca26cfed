package proxy

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"
)

// listen opens an upstream's listener with TCP keep-alive on, the first probe after
// period of silence. Linux copies a listening socket's options to the connections it
// accepts, so they need no system call of their own for it (two per connection
// otherwise); inherits says so.
func listen(ctx context.Context, addr string, period time.Duration) (ln *net.TCPListener, inherits bool, err error) {
	lc := net.ListenConfig{KeepAlive: -1} // not per connection: inherited
	if period > 0 {
		secs := int((period + time.Second - 1) / time.Second)
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1); serr == nil {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, secs)
				}
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("set keep-alive: %w", serr)
			}
			return nil
		}
	}
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return l.(*net.TCPListener), true, nil
}
