//go:build !linux

package proxy

// Off Linux there is no epoll: connections are served by goroutines.
const (
	engineDefault  = EngineGoroutines
	epollSupported = false
)

// loopListener is the event loops' listener, which only Linux has.
type loopListener struct{}

// newLoops is never called off Linux: Config refuses EngineEpoll there.
func newLoops(*Proxy, int) engine { panic("proxy: event loops need Linux") }
