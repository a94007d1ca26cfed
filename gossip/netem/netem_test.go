package netem

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
)

// fakeTransport records what reaches it and when (fake time inside a synctest bubble).
type fakeTransport struct {
	mu       sync.Mutex
	arrivals []arrival
	dials    []time.Time
	shutdown bool
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	conns    []net.Conn // the far ends of dialled pipes
}

type arrival struct {
	at   time.Time
	data string
	addr string
}

func newFake() *fakeTransport {
	return &fakeTransport{packetCh: make(chan *memberlist.Packet), streamCh: make(chan net.Conn)}
}

func (f *fakeTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return net.IPv4(10, 0, 0, 1), 7946, nil
}
func (f *fakeTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return f.WriteToAddress(b, memberlist.Address{Addr: addr})
}
func (f *fakeTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arrivals = append(f.arrivals, arrival{time.Now(), string(b), a.Addr})
	return time.Now(), nil
}
func (f *fakeTransport) PacketCh() <-chan *memberlist.Packet { return f.packetCh }
func (f *fakeTransport) StreamCh() <-chan net.Conn           { return f.streamCh }
func (f *fakeTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	return f.DialAddressTimeout(memberlist.Address{Addr: addr}, d)
}
func (f *fakeTransport) DialAddressTimeout(memberlist.Address, time.Duration) (net.Conn, error) {
	a, b := net.Pipe()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials = append(f.dials, time.Now())
	f.conns = append(f.conns, b)
	return a, nil
}
func (f *fakeTransport) Shutdown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutdown = true
	return nil
}

func (f *fakeTransport) got() []arrival {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.arrivals)
}

func wrap(t *testing.T, inner memberlist.NodeAwareTransport, cfg Config) *Transport {
	t.Helper()
	tr, err := Wrap(inner, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	return tr
}

// TestPacketDelayWithinBoundsAndReordered sends a burst of packets at one instant and
// checks that each arrives within Latency ± Jitter, that the delays vary, and that
// the burst arrives in another order than it was sent.
func TestPacketDelayWithinBoundsAndReordered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr := wrap(t, f, Config{Latency: 30 * time.Millisecond, Jitter: 20 * time.Millisecond, Seed: 7})
		start := time.Now()
		const n = 200
		for i := range n {
			if _, err := tr.WriteTo(fmt.Appendf(nil, "%03d", i), "10.0.0.2:7946"); err != nil {
				t.Fatal(err)
			}
		}
		if len(f.got()) != 0 {
			t.Fatal("a packet arrived before any time passed")
		}
		time.Sleep(51 * time.Millisecond) // fake time: past the largest possible delay
		got := f.got()
		if len(got) != n {
			t.Fatalf("%d of %d packets arrived", len(got), n)
		}
		var minD, maxD time.Duration = time.Hour, 0
		inOrder := true
		for i, a := range got {
			d := a.at.Sub(start)
			minD, maxD = min(minD, d), max(maxD, d)
			if d < 10*time.Millisecond || d > 50*time.Millisecond {
				t.Errorf("packet %s delayed %s, want 10ms–50ms", a.data, d)
			}
			if a.addr != "10.0.0.2:7946" {
				t.Errorf("packet %s went to %q", a.data, a.addr)
			}
			if i > 0 && a.data < got[i-1].data {
				inOrder = false
			}
		}
		if maxD-minD < 20*time.Millisecond {
			t.Errorf("delays span only %s–%s: jitter not applied", minD, maxD)
		}
		if inOrder {
			t.Error("200 jittered packets arrived in send order: no reordering")
		}
	})
}

// TestNoJitterKeepsOrder checks a fixed delay: exact, and order preserved.
func TestNoJitterKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr := wrap(t, f, Config{Latency: 25 * time.Millisecond})
		start := time.Now()
		for i := range 10 {
			if _, err := tr.WriteTo([]byte{byte(i)}, "a:1"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		got := f.got()
		if len(got) != 10 {
			t.Fatalf("%d of 10 packets arrived", len(got))
		}
		for i, a := range got {
			if a.data != string([]byte{byte(i)}) {
				t.Errorf("arrival %d is packet %d: order changed without jitter", i, a.data[0])
			}
			if want := start.Add(time.Duration(i)*time.Millisecond + 25*time.Millisecond); !a.at.Equal(want) {
				t.Errorf("packet %d arrived at +%s, want +%s", i, a.at.Sub(start), want.Sub(start))
			}
		}
	})
}

// TestJitterLargerThanLatencyClampsAtZero: no negative delays.
func TestJitterLargerThanLatencyClampsAtZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr := wrap(t, f, Config{Latency: time.Millisecond, Jitter: 10 * time.Millisecond, Seed: 3})
		start := time.Now()
		for range 100 {
			if _, err := tr.WriteTo([]byte("x"), "a:1"); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		atOnce := len(f.got())
		time.Sleep(12 * time.Millisecond)
		got := f.got()
		if len(got) != 100 {
			t.Fatalf("%d of 100 packets arrived", len(got))
		}
		if atOnce == 0 {
			t.Error("no packet drew a zero delay, though Latency-Jitter < 0")
		}
		for _, a := range got {
			if d := a.at.Sub(start); d > 11*time.Millisecond {
				t.Errorf("delay %s beyond Latency+Jitter", d)
			}
		}
	})
}

// TestWriteCopiesBuffer: memberlist reuses its buffers once WriteTo returns.
func TestWriteCopiesBuffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr := wrap(t, f, Config{Latency: 10 * time.Millisecond})
		b := []byte("hello")
		if _, err := tr.WriteTo(b, "a:1"); err != nil {
			t.Fatal(err)
		}
		copy(b, "XXXXX")
		time.Sleep(20 * time.Millisecond)
		if got := f.got(); len(got) != 1 || got[0].data != "hello" {
			t.Errorf("delivered %+v, want one packet \"hello\"", got)
		}
	})
}

// TestShutdownDropsPending: packets still waiting are dropped, nothing is delivered
// after Shutdown returns, the wrapped transport is shut down, and later sends fail.
func TestShutdownDropsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr, err := Wrap(f, Config{Latency: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := tr.WriteTo([]byte("x"), "a:1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.Shutdown(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if n := len(f.got()); n != 0 {
			t.Errorf("%d packets delivered after Shutdown", n)
		}
		if !f.shutdown {
			t.Error("wrapped transport not shut down")
		}
		if _, err := tr.WriteTo([]byte("x"), "a:1"); !errors.Is(err, ErrClosed) {
			t.Errorf("WriteTo after Shutdown: %v, want ErrClosed", err)
		}
		if err := tr.Shutdown(); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
	})
}

// TestStreamDelayed: the dial waits one delay, each write another, in order; reads
// are not delayed.
func TestStreamDelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr := wrap(t, f, Config{Latency: 40 * time.Millisecond})
		start := time.Now()
		c, err := tr.DialTimeout("a:1", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := f.dials[0].Sub(start); got != 40*time.Millisecond {
			t.Errorf("dialled after %s, want 40ms", got)
		}
		far := f.conns[0]
		defer far.Close()
		read := make(chan time.Time, 1)
		var buf bytes.Buffer
		go func() {
			_, _ = io.CopyN(&buf, far, 4)
			read <- time.Now()
		}()
		written := time.Now()
		if _, err := c.Write([]byte("ab")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("cd")); err != nil {
			t.Fatal(err)
		}
		if got := (<-read).Sub(written); got != 80*time.Millisecond {
			t.Errorf("two writes arrived after %s, want 80ms (one delay each)", got)
		}
		if buf.String() != "abcd" {
			t.Errorf("stream carried %q, want \"abcd\"", buf.String())
		}
		// Reads pass straight through.
		go func() { _, _ = far.Write([]byte("z")) }()
		before := time.Now()
		one := make([]byte, 1)
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(before); d != 0 {
			t.Errorf("read delayed %s", d)
		}
	})
}

// TestDialTimeoutShorterThanDelay: the dial fails as a timeout, after the timeout.
func TestDialTimeoutShorterThanDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr := wrap(t, f, Config{Latency: time.Second})
		start := time.Now()
		_, err := tr.DialTimeout("a:1", 100*time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("dial: %v, want a timeout", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("timed out after %s, want 100ms", d)
		}
		if len(f.dials) != 0 {
			t.Error("the wrapped transport was dialled")
		}
	})
}

// TestShutdownWakesDelayedDial: a dial waiting for its delay fails at once on Shutdown.
func TestShutdownWakesDelayedDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tr, err := Wrap(f, Config{Latency: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := tr.DialTimeout("a:1", 2*time.Hour)
			errc <- err
		}()
		synctest.Wait()
		if err := tr.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("delayed dial after Shutdown: %v, want ErrClosed", err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative latency", Config{Latency: -time.Millisecond}, "latency -1ms is negative"},
		{"negative jitter", Config{Jitter: -time.Millisecond}, "jitter -1ms is negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Wrap(newFake(), c.cfg)
			if err == nil || err.Error() != "netem: "+c.want {
				t.Errorf("Wrap: %v, want %q", err, c.want)
			}
		})
	}
	if _, err := Wrap(nil, Config{}); err == nil {
		t.Error("Wrap(nil) succeeded")
	}
	if (Config{}).Enabled() || !(Config{Jitter: 1}).Enabled() {
		t.Error("Enabled wrong")
	}
}
