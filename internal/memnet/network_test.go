package memnet_test

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/internal/memnet"
)

// The unit tests run inside synctest bubbles even when they need no fake
// time: a send or dial that blocked would then fail the test as a deadlock at
// once instead of hanging until the test binary's timeout.

// newNodes creates a network and one transport per name.
func newNodes(t *testing.T, cfg memnet.Config, names ...string) (*memnet.Network, []*memnet.Transport) {
	t.Helper()
	n := memnet.NewNetwork(cfg)
	t.Cleanup(n.Close)
	trs := make([]*memnet.Transport, len(names))
	for i, name := range names {
		trs[i] = n.NewTransport(name)
	}
	return n, trs
}

// drain returns the packets waiting in tr's queue without blocking.
func drain(tr *memnet.Transport) []*memberlist.Packet {
	var ps []*memberlist.Packet
	for {
		select {
		case p := <-tr.PacketCh():
			ps = append(ps, p)
		default:
			return ps
		}
	}
}

// send writes count one-byte packets (0, 1, …) from src to dst.
func send(t *testing.T, src, dst *memnet.Transport, count int) {
	t.Helper()
	for i := range count {
		if _, err := src.WriteTo([]byte{byte(i)}, dst.Addr()); err != nil {
			t.Fatalf("WriteTo %s: %v", dst.Addr(), err)
		}
	}
}

// TestAddresses runs outside a bubble: t.Run is not allowed inside one, and
// nothing here sends or waits.
func TestAddresses(t *testing.T) {
	_, trs := newNodes(t, memnet.Config{}, "a", "b")
	if got, want := trs[0].Addr(), "10.0.0.1:7946"; got != want {
		t.Errorf("a.Addr() = %q, want %q", got, want)
	}
	if got, want := trs[1].Addr(), "10.0.0.2:7946"; got != want {
		t.Errorf("b.Addr() = %q, want %q", got, want)
	}
	if got, want := trs[1].Name(), "b"; got != want {
		t.Errorf("b.Name() = %q, want %q", got, want)
	}

	tests := []struct {
		name    string
		ip      string
		port    int
		wantErr bool
	}{
		{"empty ip ignores port", "", 1234, false},
		{"own address", "10.0.0.1", 7946, false},
		{"other ip", "10.0.0.9", 7946, true},
		{"other port", "10.0.0.1", 7000, true},
		{"not an ip", "node-a", 7946, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip, port, err := trs[0].FinalAdvertiseAddr(tc.ip, tc.port)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("FinalAdvertiseAddr(%q, %d) error = %v, want error %v", tc.ip, tc.port, err, tc.wantErr)
			}
			if err == nil && (ip.String() != "10.0.0.1" || port != 7946) {
				t.Errorf("FinalAdvertiseAddr(%q, %d) = %v, %d, want 10.0.0.1, 7946", tc.ip, tc.port, ip, port)
			}
		})
	}
}

func TestRestartReusesAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.NewNetwork(memnet.Config{})
		a := n.NewTransport("a")
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewTransport(%q) while open: no panic", "a")
				}
			}()
			n.NewTransport("a")
		}()
		_ = a.Shutdown()
		a2 := n.NewTransport("a")
		defer func() { _ = a2.Shutdown() }()
		if got, want := a2.Addr(), a.Addr(); got != want {
			t.Errorf("restarted a.Addr() = %q, want %q", got, want)
		}
		b := n.NewTransport("b")
		defer func() { _ = b.Shutdown() }()
		send(t, b, a2, 1)
		if got := len(drain(a2)); got != 1 {
			t.Errorf("restarted a received %d packets, want 1", got)
		}
	})
}

func TestLoss(t *testing.T) {
	const count = 1000
	tests := []struct {
		name     string
		loss     float64
		min, max int // bounds on delivered packets
	}{
		{"none", 0, count, count},
		{"all", 1, 0, 0},
		// Binomial(1000, 0.5): ±100 is more than 6 standard deviations, and
		// the seed is fixed anyway.
		{"half", 0.5, 400, 600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := memnet.Config{Seed: 42, Link: memnet.Link{Loss: tc.loss}, QueueLen: count}
				n, trs := newNodes(t, cfg, "a", "b")
				a, b := trs[0], trs[1]
				send(t, a, b, count)
				got := len(drain(b))
				if got < tc.min || got > tc.max {
					t.Fatalf("delivered %d of %d packets at loss %v, want [%d, %d]", got, count, tc.loss, tc.min, tc.max)
				}
				sa, sb := a.Stats(), b.Stats()
				if sa.PacketsSent != count || sa.BytesSent != count {
					t.Errorf("a sent %d packets, %d bytes, want %d, %d", sa.PacketsSent, sa.BytesSent, count, count)
				}
				if sb.PacketsReceived != uint64(got) || sb.BytesReceived != uint64(got) {
					t.Errorf("b counted %d packets, %d bytes received, want %d", sb.PacketsReceived, sb.BytesReceived, got)
				}
				if want := uint64(count - got); sa.Dropped.Loss != want || sa.Dropped.Total() != want {
					t.Errorf("a.Dropped = %+v, want Loss = Total = %d", sa.Dropped, want)
				}
				if tot := n.Stats(); tot.PacketsSent != tot.PacketsReceived+tot.Dropped.Total() {
					t.Errorf("network stats %+v: sent != received + dropped", tot)
				}
			})
		})
	}
}

func TestSeedReproducible(t *testing.T) {
	run := func(seed uint64) []byte {
		var got []byte
		synctest.Test(t, func(t *testing.T) {
			_, trs := newNodes(t, memnet.Config{Seed: seed, Link: memnet.Link{Loss: 0.5}}, "a", "b")
			send(t, trs[0], trs[1], 200)
			for _, p := range drain(trs[1]) {
				got = append(got, p.Buf[0])
			}
		})
		return got
	}
	first, again, other := run(7), run(7), run(8)
	if !slices.Equal(first, again) {
		t.Errorf("seed 7 delivered different packets on two runs:\n%v\n%v", first, again)
	}
	if slices.Equal(first, other) {
		t.Errorf("seeds 7 and 8 delivered the same packets: %v", first)
	}
}

func TestPerLinkLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{}, "a", "b")
		a, b := trs[0], trs[1]
		n.SetLink("a", b.Addr(), memnet.Link{Loss: 1}) // by name and by address
		send(t, a, b, 3)
		send(t, b, a, 3)
		if got := len(drain(b)); got != 0 {
			t.Errorf("a→b with loss 1 delivered %d packets, want 0", got)
		}
		if got := len(drain(a)); got != 3 {
			t.Errorf("b→a (default link) delivered %d packets, want 3", got)
		}
		n.ClearLink("a", "b")
		send(t, a, b, 3)
		if got := len(drain(b)); got != 3 {
			t.Errorf("a→b after ClearLink delivered %d packets, want 3", got)
		}
	})
}

func TestPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{}, "a", "b", "c")
		a, b, c := trs[0], trs[1], trs[2]

		n.Partition([]string{"a"}, []string{"b", c.Addr()})
		send(t, a, b, 1)
		send(t, c, a, 1)
		send(t, b, c, 1) // same side
		if got := len(drain(a)) + len(drain(b)); got != 0 {
			t.Errorf("across the partition %d packets arrived, want 0", got)
		}
		if got := len(drain(c)); got != 1 {
			t.Errorf("within a side %d packets arrived, want 1", got)
		}
		if got := a.Stats().Dropped.Partition + c.Stats().Dropped.Partition; got != 2 {
			t.Errorf("partition drops = %d, want 2", got)
		}
		if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, memnet.ErrUnreachable) {
			t.Errorf("dial across the partition: err = %v, want ErrUnreachable", err)
		}

		n.Heal()
		send(t, a, b, 1)
		if got := len(drain(b)); got != 1 {
			t.Errorf("after Heal %d packets arrived, want 1", got)
		}
	})
}

func TestCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{}, "a", "b")
		a, b := trs[0], trs[1]
		n.Cut("b")
		send(t, a, b, 1)
		send(t, b, a, 1)
		send(t, b, b, 1) // a cut node still reaches itself
		if got := len(drain(a)); got != 0 {
			t.Errorf("from a cut node %d packets arrived, want 0", got)
		}
		if got := len(drain(b)); got != 1 {
			t.Errorf("a cut node received %d packets, want only its own 1", got)
		}
		n.Heal() // does not undo a cut
		send(t, a, b, 1)
		if got := len(drain(b)); got != 0 {
			t.Errorf("after Heal a cut node received %d packets, want 0", got)
		}
		n.Restore("b")
		send(t, a, b, 1)
		if got := len(drain(b)); got != 1 {
			t.Errorf("after Restore %d packets arrived, want 1", got)
		}
	})
}

func TestDownNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{}, "a", "b")
		a, b := trs[0], trs[1]

		n.SetDown("b", true)
		send(t, a, b, 2)
		send(t, b, a, 3) // a down node's sends succeed and vanish, like a dead NIC's
		if got := len(drain(a)) + len(drain(b)); got != 0 {
			t.Errorf("with b down %d packets arrived, want 0", got)
		}
		if got := a.Stats().Dropped.Down; got != 2 {
			t.Errorf("a.Dropped.Down = %d, want 2", got)
		}
		if got := b.Stats().Dropped.Down; got != 3 {
			t.Errorf("b.Dropped.Down = %d, want 3", got)
		}

		n.SetDown("b", false)
		send(t, a, b, 1)
		if got := len(drain(b)); got != 1 {
			t.Errorf("after SetDown(false) %d packets arrived, want 1", got)
		}

		// A shut-down transport is down for good and says so to its user.
		_ = b.Shutdown()
		_ = b.Shutdown() // idempotent
		n.SetDown("b", false)
		send(t, a, b, 1)
		if got := len(drain(b)); got != 0 {
			t.Errorf("after Shutdown %d packets arrived, want 0", got)
		}
		if _, err := b.WriteTo([]byte{1}, a.Addr()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("WriteTo after Shutdown: err = %v, want net.ErrClosed", err)
		}
		if _, err := b.DialTimeout(a.Addr(), time.Second); !errors.Is(err, net.ErrClosed) {
			t.Errorf("DialTimeout after Shutdown: err = %v, want net.ErrClosed", err)
		}

		// No node at all at an address behaves like a down one.
		if _, err := a.WriteTo([]byte{1}, "10.9.9.9:7946"); err != nil {
			t.Errorf("WriteTo unknown address: err = %v, want nil (UDP)", err)
		}
	})
}

func TestQueueFullDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queue = 4
		_, trs := newNodes(t, memnet.Config{QueueLen: queue}, "a", "b")
		a, b := trs[0], trs[1]
		// Nobody reads b's queue. If WriteTo blocked, the bubble would
		// deadlock and synctest would fail the test.
		send(t, a, b, 10)
		if got := len(drain(b)); got != queue {
			t.Errorf("queue held %d packets, want %d", got, queue)
		}
		if got := a.Stats().Dropped.QueueFull; got != 10-queue {
			t.Errorf("a.Dropped.QueueFull = %d, want %d", got, 10-queue)
		}
		send(t, a, b, 1)
		if got := len(drain(b)); got != 1 {
			t.Errorf("after draining %d packets arrived, want 1", got)
		}
	})
}

func TestDialFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{Backlog: 1}, "a", "b", "c")
		a, b, c := trs[0], trs[1], trs[2]
		n.SetDown("b", true)

		tests := []struct {
			name string
			addr string
			want error
		}{
			{"down", b.Addr(), memnet.ErrUnreachable},
			{"unknown", "10.9.9.9:7946", memnet.ErrUnreachable},
		}
		for _, tc := range tests {
			start := time.Now()
			conn, err := a.DialTimeout(tc.addr, 10*time.Second)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: DialTimeout err = %v, want %v", tc.name, err, tc.want)
			}
			if conn != nil {
				t.Errorf("%s: DialTimeout returned a conn", tc.name)
			}
			// Fake time: any wait on the timeout would show here.
			if d := time.Since(start); d != 0 {
				t.Errorf("%s: DialTimeout took %v, want no wait", tc.name, d)
			}
		}

		// c never accepts: the first dial fills its backlog of 1.
		conn, err := a.DialTimeout(c.Addr(), time.Second)
		if err != nil {
			t.Fatalf("first dial to c: %v", err)
		}
		defer conn.Close()
		if _, err := a.DialTimeout(c.Addr(), time.Second); !errors.Is(err, memnet.ErrRefused) {
			t.Errorf("dial to a full backlog: err = %v, want ErrRefused", err)
		}
		if got := a.Stats(); got.Dials != 1 || got.DialsFailed != 3 {
			t.Errorf("a.Stats() Dials, DialsFailed = %d, %d, want 1, 3", got.Dials, got.DialsFailed)
		}
	})
}

// accept takes the stream waiting at tr.
func accept(t *testing.T, tr *memnet.Transport) net.Conn {
	t.Helper()
	select {
	case c := <-tr.StreamCh():
		return c
	default:
		t.Fatalf("no stream waiting at %s", tr.Name())
		return nil
	}
}

func TestStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{}, "a", "b", "c")
		a, b := trs[0], trs[1]

		ca, err := a.DialTimeout(b.Addr(), time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		cb := accept(t, b)
		if got, want := cb.RemoteAddr().String(), a.Addr(); got != want {
			t.Errorf("accepted RemoteAddr = %q, want %q", got, want)
		}
		if got, want := ca.RemoteAddr().String(), b.Addr(); got != want {
			t.Errorf("dialed RemoteAddr = %q, want %q", got, want)
		}

		go func() { _, _ = ca.Write([]byte("hello")) }()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(cb, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("read %q, %v, want hello", buf, err)
		}
		synctest.Wait() // the writer has returned and counted
		if got := a.Stats().StreamBytesSent; got != 5 {
			t.Errorf("a.StreamBytesSent = %d, want 5", got)
		}
		if got := b.Stats().StreamBytesReceived; got != 5 {
			t.Errorf("b.StreamBytesReceived = %d, want 5", got)
		}

		// Deadlines are honoured: a read with nothing to read times out
		// (in fake time) rather than hanging.
		start := time.Now()
		_ = cb.SetReadDeadline(start.Add(3 * time.Second))
		if _, err := cb.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past deadline: err = %v, want os.ErrDeadlineExceeded", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("read returned after %v, want 3s", d)
		}
		_ = cb.SetReadDeadline(time.Time{})

		// A partition that starts later resets the stream: a blocked reader
		// is released at once, and neither end can be used again.
		errc := make(chan error, 1)
		go func() {
			_, err := cb.Read(buf)
			errc <- err
		}()
		synctest.Wait() // the reader is blocked
		n.Partition([]string{"a"}, []string{"b"})
		if err := <-errc; err == nil {
			t.Errorf("read across a new partition: err = nil, want an error")
		}
		if _, err := ca.Write([]byte("x")); err == nil {
			t.Errorf("write across a new partition: err = nil, want an error")
		}
		_ = ca.Close()
		_ = cb.Close()

		// A stream to a node that then goes down is reset the same way.
		n.Heal()
		ca, err = a.DialTimeout(b.Addr(), time.Second)
		if err != nil {
			t.Fatalf("dial after Heal: %v", err)
		}
		cb = accept(t, b)
		n.SetDown("b", true)
		if _, err := ca.Read(buf); err == nil {
			t.Errorf("read from a down node: err = nil, want an error")
		}
		_ = ca.Close()
		_ = cb.Close()
	})
}

func TestLatencyOrdering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{}, "slow", "fast", "dst")
		slow, fast, dst := trs[0], trs[1], trs[2]
		n.SetLink("slow", "dst", memnet.Link{Latency: 50 * time.Millisecond})
		n.SetLink("fast", "dst", memnet.Link{Latency: 10 * time.Millisecond})

		start := time.Now()
		send(t, slow, dst, 1)
		send(t, fast, dst, 1)
		synctest.Wait() // let any wrongly immediate delivery happen
		if got := len(drain(dst)); got != 0 {
			t.Fatalf("%d packets arrived before any latency passed, want 0", got)
		}
		var from []string
		var at []time.Duration
		for range 2 {
			p := <-dst.PacketCh()
			from = append(from, p.From.String())
			at = append(at, p.Timestamp.Sub(start))
		}
		if want := []string{fast.Addr(), slow.Addr()}; !slices.Equal(from, want) {
			t.Errorf("arrival order %v, want %v (the later, faster packet first)", from, want)
		}
		if want := []time.Duration{10 * time.Millisecond, 50 * time.Millisecond}; !slices.Equal(at, want) {
			t.Errorf("arrival times %v, want %v", at, want)
		}
	})
}

func TestJitterReorders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count, lat, jitter = 100, 20 * time.Millisecond, 30 * time.Millisecond
		cfg := memnet.Config{Seed: 1, Link: memnet.Link{Latency: lat, Jitter: jitter}}
		_, trs := newNodes(t, cfg, "a", "b")
		a, b := trs[0], trs[1]
		start := time.Now()
		send(t, a, b, count)
		time.Sleep(lat + jitter)
		synctest.Wait()
		ps := drain(b)
		if len(ps) != count {
			t.Fatalf("%d of %d packets arrived within latency + jitter", len(ps), count)
		}
		var seq []int
		for _, p := range ps {
			seq = append(seq, int(p.Buf[0]))
			if d := p.Timestamp.Sub(start); d < lat || d > lat+jitter {
				t.Errorf("packet %d arrived after %v, want [%v, %v]", p.Buf[0], d, lat, lat+jitter)
			}
		}
		if slices.IsSorted(seq) {
			t.Errorf("jitter of %v did not reorder %d packets", jitter, count)
		}
	})
}

func TestInFlightPacketToDownNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{Link: memnet.Link{Latency: time.Second}}, "a", "b")
		a, b := trs[0], trs[1]
		send(t, a, b, 1)
		n.SetDown("b", true) // while the packet is in flight
		time.Sleep(2 * time.Second)
		n.SetDown("b", false)
		if got := len(drain(b)); got != 0 {
			t.Errorf("%d packets reached a node that was down when they arrived, want 0", got)
		}
		if got := a.Stats().Dropped.Down; got != 1 {
			t.Errorf("a.Dropped.Down = %d, want 1", got)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{QueueLen: 8, Link: memnet.Link{Loss: 0.1, Jitter: time.Millisecond}},
			"a", "b", "c", "d")
		done := make(chan struct{})
		for _, src := range trs {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := range 200 {
					dst := trs[i%len(trs)]
					_, _ = src.WriteTo([]byte{byte(i)}, dst.Addr())
					if i%50 == 0 {
						n.Partition([]string{"a"}, []string{"b"})
						n.SetDown("c", i%100 == 0)
						_ = n.Stats()
						n.Heal()
					}
				}
			}()
		}
		for range trs {
			<-done
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		for _, tr := range trs {
			drain(tr)
		}
		if s := n.Stats(); s.PacketsSent != 800 || s.PacketsSent != s.PacketsReceived+s.Dropped.Total() {
			t.Errorf("network stats %+v: want 800 sent = received + dropped", s)
		}
	})
}

func TestShutdownStopsPacketsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{Link: memnet.Link{Latency: time.Second}}, "a", "b", "c")
		a, b, c := trs[0], trs[1], trs[2]
		send(t, a, b, 2)
		send(t, b, c, 1) // leaves b before b shuts down: still arrives
		_ = b.Shutdown()
		if got := a.Stats().Dropped.Down; got != 2 {
			t.Errorf("a.Dropped.Down right after b's Shutdown = %d, want 2", got)
		}
		time.Sleep(2 * time.Second)
		if got := len(drain(c)); got != 1 {
			t.Errorf("c received %d packets sent before b's Shutdown, want 1", got)
		}

		send(t, a, c, 1)
		n.Close()
		n.Close() // idempotent
		if got := a.Stats().Dropped.Down; got != 3 {
			t.Errorf("a.Dropped.Down after Close = %d, want 3", got)
		}
		if s := n.Stats(); s.PacketsSent != s.PacketsReceived+s.Dropped.Total() {
			t.Errorf("network stats %+v after Close: sent != received + dropped", s)
		}
	})
}

func TestBadArgumentsPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, trs := newNodes(t, memnet.Config{}, "a", "b")
		tests := []struct {
			name string
			f    func()
		}{
			{"unknown node", func() { n.Cut("nobody") }},
			{"node in both groups", func() { n.Partition([]string{"a"}, []string{"b", "a"}) }},
			{"loss above 1", func() { n.SetDefaultLink(memnet.Link{Loss: 1.5}) }},
			{"negative latency", func() { n.SetLink("a", "b", memnet.Link{Latency: -1}) }},
			{"duplicate above 1", func() { n.SetDefaultLink(memnet.Link{Duplicate: 2}) }},
			{"negative bandwidth", func() { n.SetLink("a", "b", memnet.Link{Bandwidth: -1}) }},
			{"empty name", func() { n.NewTransport("") }},
		}
		for _, tc := range tests {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s: no panic", tc.name)
					}
				}()
				tc.f()
			}()
		}
		// A panic leaves the network unlocked and unchanged.
		send(t, trs[0], trs[1], 1)
		if got := len(drain(trs[1])); got != 1 {
			t.Errorf("after the panics %d packets arrived, want 1", got)
		}
	})
}

// TestDuplicate measures duplication against its setting: with Duplicate p, about
// p of the packets arrive twice, and the stats count every copy.
func TestDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count, p = 2000, 0.25
		n, trs := newNodes(t, memnet.Config{Seed: 3, QueueLen: 2 * count,
			Link: memnet.Link{Duplicate: p, Latency: time.Millisecond, Jitter: time.Millisecond}}, "a", "b")
		a, b := trs[0], trs[1]
		for i := range count {
			if _, err := a.WriteTo([]byte{byte(i >> 8), byte(i)}, b.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * time.Millisecond)
		synctest.Wait()
		ps := drain(b)
		seen := map[int]int{}
		for _, pk := range ps {
			seen[int(pk.Buf[0])<<8|int(pk.Buf[1])]++
		}
		dups := len(ps) - count
		// Binomial(2000, 0.25): mean 500, standard deviation 19; ±100 is over 5.
		if dups < 400 || dups > 600 {
			t.Errorf("%d of %d packets duplicated at Duplicate %v, want about %v", dups, count, p, p*count)
		}
		for v, c := range seen {
			if c > 2 {
				t.Errorf("packet %d arrived %d times", v, c)
			}
		}
		if s := a.Stats(); s.Duplicated != uint64(dups) {
			t.Errorf("a.Duplicated = %d, want %d", s.Duplicated, dups)
		}
		if tot := n.Stats(); tot.PacketsSent+tot.Duplicated != tot.PacketsReceived+tot.Dropped.Total() {
			t.Errorf("network stats %+v: sent + duplicated != received + dropped", tot)
		}
	})
}

// TestBandwidth measures a capped link against its setting: packets queue behind
// each other and leave at the link's rate, so a burst takes its size over the rate,
// and another link is not slowed.
func TestBandwidth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count, size, rate, lat = 100, 1000, 100_000.0, 5 * time.Millisecond // 10 ms a packet
		n, trs := newNodes(t, memnet.Config{QueueLen: count}, "a", "b", "c")
		a, b, c := trs[0], trs[1], trs[2]
		n.SetLink("a", "b", memnet.Link{Bandwidth: rate, Latency: lat})
		start := time.Now()
		buf := make([]byte, size)
		for i := range count {
			buf[0] = byte(i)
			if _, err := a.WriteTo(buf, b.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.WriteTo(buf, c.Addr()); err != nil {
			t.Fatal(err)
		}
		if got := len(drain(c)); got != 1 {
			t.Errorf("uncapped link a → c delivered %d packets at once, want 1", got)
		}
		for i := range count {
			p := <-b.PacketCh()
			want := lat + time.Duration(i+1)*time.Duration(size/rate*float64(time.Second))
			if got := p.Timestamp.Sub(start); got != want || int(p.Buf[0]) != i {
				t.Fatalf("packet %d (of %d) arrived after %v, want packet %d after %v", p.Buf[0], count, got, i, want)
			}
		}
		// count × size bytes over rate: 1 s, plus the latency.
		if el := time.Since(start); el != time.Second+lat {
			t.Errorf("burst of %d × %d bytes at %v B/s took %v, want %v", count, size, rate, el, time.Second+lat)
		}
	})
}
