// Package netem emulates network latency, jitter and the reordering that jitter causes,
// for hosts whose kernel has no tc netem: it wraps a memberlist transport and delays
// what this node sends. It exists for tests and benchmarks (`rumor agent
// --debug-gossip-delay`); a production agent never uses it.
//
// Each outgoing packet waits Latency ± Jitter, drawn uniformly per packet, then goes to
// the wrapped transport; packets sent close together may therefore overtake each other,
// as on a real jittery path. A stream (memberlist's TCP path) waits one draw before it
// is dialled, as a connection handshake would, and each write on it waits one draw
// before it is written; writes on one stream keep their order, as TCP does. Incoming
// packets and streams are not delayed: emulate a path by wrapping the transport of
// every node on it, so each hop is delayed once, at its sender.
//
// # Concurrency
//
// A Transport is safe for concurrent use. WriteTo and WriteToAddress never block: each
// delayed packet is a timer owned by the Transport. Shutdown drops the packets still
// waiting (they were in flight when the host went away), waits for deliveries under
// way, and shuts the wrapped transport down.
package netem

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrClosed is returned by sends and dials after Shutdown.
var ErrClosed = errors.New("netem: transport shut down")

// Config says how much delay to add. The zero value adds none.
type Config struct {
	// Latency is the mean one-way delay added to every packet and stream write this
	// node sends. Default 0.
	Latency time.Duration
	// Jitter spreads each delay uniformly over [Latency-Jitter, Latency+Jitter],
	// clamped at zero, drawn independently per packet or write. Default 0.
	Jitter time.Duration
	// Seed seeds the delay draws, for reproducible tests. Default 0: a random seed.
	Seed uint64
}

// Enabled reports whether c adds any delay.
func (c Config) Enabled() bool { return c.Latency > 0 || c.Jitter > 0 }

// Validate returns an error naming the field that is out of range.
func (c Config) Validate() error {
	if c.Latency < 0 {
		return fmt.Errorf("netem: latency %s is negative", c.Latency)
	}
	if c.Jitter < 0 {
		return fmt.Errorf("netem: jitter %s is negative", c.Jitter)
	}
	return nil
}

// Wrapper returns cfg's Wrap as gossip.Config.WrapTransport takes it.
func Wrapper(cfg Config) func(memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
	return func(inner memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
		return Wrap(inner, cfg)
	}
}

// Transport is a memberlist.NodeAwareTransport that delays what it sends. Create one
// with Wrap.
type Transport struct {
	inner memberlist.NodeAwareTransport
	cfg   Config

	mu      sync.Mutex
	rng     *rand.Rand               // guarded by mu
	pending map[*time.Timer]struct{} // packets waiting for their delay; guarded by mu
	closed  bool                     // guarded by mu
	done    chan struct{}            // closed by Shutdown: wakes delayed dials and writes
	wg      sync.WaitGroup           // timer callbacks running or pending
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Wrap returns a Transport that sends through inner after cfg's delay. The Transport
// owns inner from now on: its Shutdown shuts inner down.
func Wrap(inner memberlist.NodeAwareTransport, cfg Config) (*Transport, error) {
	if inner == nil {
		return nil, errors.New("netem: no transport to wrap")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Transport{
		inner:   inner,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		pending: make(map[*time.Timer]struct{}),
		done:    make(chan struct{}),
	}, nil
}

// delay draws one delay from [Latency-Jitter, Latency+Jitter], clamped at zero.
func (t *Transport) delay() time.Duration {
	d := t.cfg.Latency
	if t.cfg.Jitter > 0 {
		t.mu.Lock()
		d += time.Duration(t.rng.Int64N(int64(2*t.cfg.Jitter)+1)) - t.cfg.Jitter
		t.mu.Unlock()
	}
	return max(d, 0)
}

// FinalAdvertiseAddr is the wrapped transport's.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo sends b to addr after a delay; see WriteToAddress.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress copies b and returns at once; the copy is handed to the wrapped
// transport when its delay has passed. An error of that later send is dropped, as a
// lost packet would be: packets are best effort.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	buf := append([]byte(nil), b...)
	d := t.delay()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return time.Time{}, ErrClosed
	}
	t.wg.Add(1)
	var timer *time.Timer
	timer = time.AfterFunc(d, func() {
		defer t.wg.Done()
		t.mu.Lock()
		delete(t.pending, timer) // timer is set: it was assigned before mu was released
		closed := t.closed
		t.mu.Unlock()
		if !closed {
			_, _ = t.inner.WriteToAddress(buf, a)
		}
	})
	t.pending[timer] = struct{}{}
	return time.Now(), nil
}

// PacketCh is the wrapped transport's: incoming packets are not delayed.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.inner.PacketCh() }

// StreamCh is the wrapped transport's: incoming streams are not delayed.
func (t *Transport) StreamCh() <-chan net.Conn { return t.inner.StreamCh() }

// DialTimeout dials addr after a delay; see DialAddressTimeout.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout waits one delay, counted against timeout, then dials through the
// wrapped transport. Writes on the returned connection are delayed too.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := t.delay()
	if timeout > 0 && d >= timeout {
		if err := t.wait(timeout); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("netem: dial %s: %w", a.Addr, errTimeout)
	}
	if err := t.wait(d); err != nil {
		return nil, err
	}
	if timeout > 0 {
		timeout -= d
	}
	c, err := t.inner.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, t: t}, nil
}

// wait sleeps d, or until Shutdown.
func (t *Transport) wait(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-t.done:
		return ErrClosed
	}
}

// Shutdown drops the packets still waiting, waits for deliveries under way, wakes
// delayed dials and writes (they fail with ErrClosed) and shuts the wrapped transport
// down. It is idempotent.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	for timer := range t.pending {
		if timer.Stop() {
			t.wg.Done() // its callback will never run
		}
	}
	clear(t.pending)
	t.mu.Unlock()
	t.wg.Wait()
	return t.inner.Shutdown()
}

// timeoutError is a net.Error that says it is a timeout, as a real dial's would.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errTimeout net.Error = timeoutError{}

// conn delays each write by one draw; reads and everything else pass through.
type conn struct {
	net.Conn
	t  *Transport
	mu sync.Mutex // serialises writes so that they keep their order
}

// Write waits one delay, then writes b. Concurrent writes are serialised, so the
// stream keeps the order in which they were made.
func (c *conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.t.wait(c.t.delay()); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
