package memnet_test

import (
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/memnet"
)

// BenchmarkWriteTo measures the packet path the simulator pays for on every
// gossip message: the routing decision plus a queue send, or a timer.
func BenchmarkWriteTo(b *testing.B) {
	for _, bc := range []struct {
		name string
		link memnet.Link
	}{
		{"instant", memnet.Link{}},
		{"lossy", memnet.Link{Loss: 0.1}},
		{"delayed", memnet.Link{Latency: time.Millisecond, Jitter: time.Millisecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := memnet.NewNetwork(memnet.Config{Link: bc.link})
			defer n.Close()
			src, dst := n.NewTransport("src"), n.NewTransport("dst")
			done := make(chan struct{})
			go func() { // the receiver memberlist would be
				for {
					select {
					case <-dst.PacketCh():
					case <-done:
						return
					}
				}
			}()
			defer close(done)
			buf := make([]byte, 1400)
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				_, _ = src.WriteTo(buf, dst.Addr())
			}
		})
	}
}
