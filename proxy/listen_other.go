//go:build !linux

package proxy

import (
	"context"
	"net"
	"time"
)

// listen opens an upstream's listener. Whether accepted connections inherit a
// listener's keep-alive settings varies by system, so here each connection sets
// its own (inherits is false).
func listen(ctx context.Context, addr string, _ time.Duration) (ln *net.TCPListener, inherits bool, err error) {
	lc := net.ListenConfig{KeepAlive: -1} // keep-alive is set per connection
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return l.(*net.TCPListener), false, nil
}
