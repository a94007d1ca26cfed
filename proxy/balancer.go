package proxy

import (
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backend is one instance as an upstream uses it. Its counters live as long as the
// instance stays in the set, across rebuilds.
type backend struct {
	key       string // node/serviceID
	node      string
	serviceID string
	addr      string // ip:port
	host      string // the address and port addr is made of
	port      int
	ip        netip.Addr // host parsed, for the event loops' connects; invalid for a name
	// weight is the instance's weight for its current status; rtt its distance.
	weight atomic.Int64
	rtt    atomic.Int64 // ns; 0 when unknown
	added  time.Time    // for slow start

	active       atomic.Int64
	reported     atomic.Int64 // unix ns of the last success told to the Reporter; 0 after a failure
	fails        atomic.Int32 // consecutive connect failures
	ejectedUntil atomic.Int64 // unix ns; 0 when not ejected
	ejections    atomic.Int32
	draining     atomic.Bool

	mu     sync.Mutex
	conns  map[io.Closer]struct{} // open connections to the instance, made at the first
	closed bool                   // set by closeAll: no new connection starts

	// Draining, guarded by up.mu: the timer and context callback that end it, and
	// whether it ended.
	up         *upstream
	drainTimer *time.Timer
	drainStop  func() bool
	drained    bool

	// m is the instance's metrics, resolved at its first connect (an upstream of a
	// service with thousands of instances pays for the metrics of those it uses),
	// so that a connection does no label lookup.
	mOnce sync.Once
	m     backendMetrics
}

// reportEvery is how often a Reporter hears that an instance is still reachable:
// telling it at every connection would take its lock at the proxy's connection rate,
// and its trust window is seconds long. A failure is always told, and the success
// after it.
const reportEvery = time.Second

// reportDue reports whether a successful connect at now should be told, and if so
// notes that it is.
func (b *backend) reportDue(now time.Time) bool {
	last, ns := b.reported.Load(), now.UnixNano()
	return ns-last >= int64(reportEvery) && b.reported.CompareAndSwap(last, ns)
}

// failedNow makes the next successful connect due for reporting: it is news.
func (b *backend) failedNow() { b.reported.Store(0) }

// metrics returns the instance's metrics, resolving them on first use.
func (b *backend) metrics() *backendMetrics {
	b.mOnce.Do(func() { b.m = b.up.p.m.forInstance(b.up.def.Service, b.key) })
	return &b.m
}

type backendMetrics struct {
	conns, fails, ejections, bytesUp, bytesDown prometheus.Counter
	active                                      prometheus.Gauge
}

// track notes an open connection to the instance, which closeAll closes (for the
// event loops, Close asks the connection's loop to). It reports false, and notes
// nothing, once the instance is drained.
func (b *backend) track(c io.Closer) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed { // closed by a drain: do not start
		return false
	}
	if b.conns == nil {
		b.conns = make(map[io.Closer]struct{})
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *backend) untrack(c io.Closer) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// closeAll closes every open connection to the instance and refuses new ones.
func (b *backend) closeAll() {
	b.mu.Lock()
	conns := b.conns
	b.conns, b.closed = nil, true
	b.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// set is an upstream's instances at one moment: immutable once published.
type set struct {
	live []*backend // eligible instances (passing or warning, weight > 0)
}

// pick chooses an instance by power-of-two-choices least-connections, weighted, or nil
// if none is eligible. tried lists instances this connection already failed on.
func (s *set) pick(now time.Time, slow time.Duration, tried []*backend) *backend {
	n := len(s.live)
	if n == 0 {
		return nil
	}
	nowNs := now.UnixNano()
	ok := func(b *backend) bool {
		if b.draining.Load() || b.ejectedUntil.Load() > nowNs {
			return false
		}
		for _, t := range tried {
			if t == b {
				return false
			}
		}
		return true
	}
	if n == 1 {
		if b := s.live[0]; ok(b) {
			return b
		}
		return nil
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := s.live[i], s.live[j]
	switch okA, okB := ok(a), ok(b); {
	case okA && okB:
		return better(a, b, now, slow)
	case okA:
		return a
	case okB:
		return b
	}
	// Both out: the first eligible from a random start.
	for k := range n {
		if c := s.live[(i+k)%n]; ok(c) {
			return c
		}
	}
	return nil
}

// better returns the instance with fewer connections per unit of (slow-started)
// weight; on a tie, the nearer.
func better(a, b *backend, now time.Time, slow time.Duration) *backend {
	// Compare (active+1)/wa with (active+1)/wb without division.
	wa, wb := a.effWeight(now, slow), b.effWeight(now, slow)
	la, lb := (a.active.Load()+1)*wb, (b.active.Load()+1)*wa
	switch {
	case la < lb:
		return a
	case lb < la:
		return b
	}
	ra, rb := a.rtt.Load(), b.rtt.Load()
	if ra != 0 && rb != 0 && rb < ra {
		return b
	}
	return a
}

// effWeight is the weight scaled by slow start (×1000 so a tenth stays an integer).
func (b *backend) effWeight(now time.Time, slow time.Duration) int64 {
	w := b.weight.Load() * 1000
	if slow > 0 {
		if age := now.Sub(b.added); age < slow {
			f := max(int64(age*1000/slow), 100)
			w = w * f / 1000
		}
	}
	return max(w, 1)
}
