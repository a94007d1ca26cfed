package agent

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The HTTP server's bounds on what a client can hold (issue: a request with a
// Content-Length and no body, on an endpoint that never reads its body, was never
// answered nor closed, and 200 of them exhausted the agent's file descriptors).
//
// The server has no ReadTimeout: net/http's background read would hit it while a
// blocking query waits and cancel the request's context, cutting the query. Nor a
// WriteTimeout, for the same reason: httpapi sets each request's write deadline from
// its wait. Instead: ReadHeaderTimeout bounds the headers (and the TLS handshake),
// IdleTimeout an idle keep-alive connection, boundBodies the body, and limitListener
// the number of connections.
const (
	// DefaultHTTPBodyTimeout is Config.HTTPBodyTimeout's default.
	DefaultHTTPBodyTimeout = 30 * time.Second
	// DefaultHTTPMaxConns is Config.HTTPMaxConns's default.
	DefaultHTTPMaxConns = 512
	// httpHeaderTimeout bounds reading a request's headers, and the TLS handshake.
	httpHeaderTimeout = 10 * time.Second
	// httpIdleTimeout closes a keep-alive connection idle this long.
	httpIdleTimeout = 2 * time.Minute
	// maxHTTPBody refuses, before reading, a body declared larger than any endpoint
	// takes (httpapi.MaxBodyBytes is 1 MiB; the UI's forms are smaller). Chunked
	// bodies are capped by each handler's reader.
	maxHTTPBody = 1 << 20
)

// boundBodies gives each request's body a read deadline of timeout from the moment
// its headers arrive, so a client that declares a body and never sends it is cut
// off whether or not the handler reads the body (net/http reads what the handler
// left before it answers). The deadline is lifted once the body has been read, so a
// long request (a blocking query, a watch stream) is not cut by it. A declared
// Content-Length over maxHTTPBody gets 413 at once.
func boundBodies(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxHTTPBody {
			w.Header().Set("Connection", "close")
			http.Error(w, "Request body too large: the limit is 1048576 bytes", http.StatusRequestEntityTooLarge)
			return
		}
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(timeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the connection's read deadline when the body ends.
type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// limitListener accepts at most max connections at a time; beyond that it closes
// new connections at once (counting them), rather than letting them pile up and
// use the file descriptors gossip needs.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused prometheus.Counter
	log     *slog.Logger
	logged  atomic.Int64 // unix seconds of the last "refused" log line: one a minute
}

func newLimitListener(ln net.Listener, max int, reg prometheus.Registerer, log *slog.Logger) *limitListener {
	l := &limitListener{Listener: ln, max: int64(max), log: log,
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "rumor_http_connections_refused_total",
			Help: "HTTP connections closed at once because the agent already had --http-max-conns open."})}
	reg.MustRegister(l.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rumor_http_connections_open",
		Help: "HTTP connections open now."}, func() float64 { return float64(l.open.Load()) }))
	return l
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.open.Add(-1)
		_ = c.Close()
		l.refused.Inc()
		now := time.Now().Unix()
		if last := l.logged.Load(); now-last >= 60 && l.logged.CompareAndSwap(last, now) {
			l.log.Warn("HTTP connection refused: too many open", "max", l.max, "remote", c.RemoteAddr().String())
		}
	}
}

// limitConn gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
