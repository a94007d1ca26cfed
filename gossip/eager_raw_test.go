package gossip

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/internal/memnet"
)

// tapTransport records the packets a node writes.
type tapTransport struct {
	memberlist.NodeAwareTransport
	mu      sync.Mutex
	packets [][]byte
}

func (t *tapTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.mu.Lock()
	t.packets = append(t.packets, bytes.Clone(b))
	t.mu.Unlock()
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

// reset forgets the packets recorded so far.
func (t *tapTransport) reset() {
	t.mu.Lock()
	t.packets = nil
	t.mu.Unlock()
}

// count returns how many recorded packets satisfy pred.
func (t *tapTransport) count(pred func([]byte) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := 0
	for _, p := range t.packets {
		if pred(p) {
			k++
		}
	}
	return k
}

func plainEager(p []byte) bool { return len(p) > 2 && p[0] == mlUserMsg && p[1] == msgEager }

// A registration whose record LZW would shrink (a long repetitive tag) still goes to
// every peer as the plain user packet it was framed as, once per peer: memberlist's
// SendBestEffort would have compressed it for each peer. With encryption, the eager
// path goes through memberlist's send path (which encrypts) and still reaches all.
func TestEagerSendsPlainPacketsWithoutEncryption(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 16)
	cases := []struct {
		name      string
		keys      [][]byte
		wantPlain bool
	}{
		{"plain pool", nil, true},
		{"encrypted pool", [][]byte{key}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 6
				tap := &tapTransport{}
				c := newKeyedCluster(t, n, 1, tc.keys, func(cfg *Config) {
					if cfg.NodeName == "n00" {
						cfg.WrapTransport = func(in memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
							tap.NodeAwareTransport = in
							return tap, nil
						}
					}
				})
				defer c.shutdown()
				within(t, 60*time.Second, "all nodes know each other", converged(c.nodes))
				pass(30 * time.Second) // the piggyback queues drain
				c.net.SetDefaultLink(memnet.Link{Latency: 10 * time.Millisecond})
				src := c.nodes[0]
				tap.reset()
				tag := strings.Repeat("compressible", 20) // 240 bytes, under the 255 a tag may hold
				src.publish(src.w.PutService(catalogtest.Service("web-1", "web", 80, tag)))
				want := src.name + "/web-1=passing"
				// Within a few latencies: the eager path, not gossip ticks (200 ms).
				withinStep(t, 50*time.Millisecond, time.Millisecond, "registration visible on all",
					func() bool { return seeing(c.nodes, "web", want) == n })
				got := tap.count(plainEager)
				if tc.wantPlain && got != n-1 {
					t.Errorf("plain eager packets from the origin = %d, want %d (one per peer)", got, n-1)
				}
				if !tc.wantPlain && got != 0 {
					t.Errorf("plain eager packets in an encrypted pool = %d, want 0", got)
				}
			})
		})
	}
}

// The raw frame is what memberlist hands the receiver's delegate: a message decoded
// on the other side is the eager message sent.
func TestEagerRawFrame(t *testing.T) {
	w := catalog.NewWriter("n1", 1)
	recs := []catalog.Record{w.PutService(catalogtest.Service("web-1", "web", 80, "v1"))}
	msgs := chunkEager("n1", eagerForward, recs, maxBroadcastSize)
	if len(msgs) != 1 {
		t.Fatalf("chunks = %d, want 1", len(msgs))
	}
	sink := &frameSink{}
	e := &eager{g: &Gossip{transport: sink}}
	send := e.rawSender(msgs[0])
	for _, name := range []string{"n2", "n3"} {
		if err := send(&memberlist.Node{Name: name}, msgs[0]); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.got) != 2 {
		t.Fatalf("packets = %d, want 2", len(sink.got))
	}
	for _, got := range sink.got {
		if got[0] != mlUserMsg || !bytes.Equal(got[1:], msgs[0]) {
			t.Fatalf("frame = %x, want %x then the message %x", got, mlUserMsg, msgs[0])
		}
		sender, flags, back, err := decodeEager(got[1:])
		if err != nil || sender != "n1" || flags != eagerForward || len(back) != 1 || back[0].String() != recs[0].String() {
			t.Fatalf("decodeEager(frame) = %q, %d, %v, %v", sender, flags, back, err)
		}
	}
}

// frameSink is a transport whose WriteToAddress keeps the packets; nothing else of
// it is called.
type frameSink struct {
	memberlist.NodeAwareTransport
	got [][]byte
}

func (f *frameSink) WriteToAddress(b []byte, _ memberlist.Address) (time.Time, error) {
	f.got = append(f.got, bytes.Clone(b))
	return time.Time{}, nil
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var d dto.Metric
	if err := g.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetGauge().GetValue()
}

// The eager path's timestamps split a change's way into hops: the origin's last
// packet sent, then on each receiver the message received one network delay later
// and applied after it; a duplicate (nothing new) moves neither.
func TestEagerTimestamps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const latency = 10 * time.Millisecond
		c := eagerSettled(t, 4, 1, EagerConfig{})
		defer c.shutdown()
		c.net.SetDefaultLink(memnet.Link{Latency: latency})
		src := c.nodes[0]
		sent0 := gaugeValue(t, src.g.eager.m.lastSent)
		rec := src.w.PutService(catalogtest.Service("web-1", "web", 80))
		pass(time.Second) // the timestamps below are all after sent0
		src.publish(rec)
		want := src.name + "/web-1=passing"
		withinStep(t, 5*latency, time.Millisecond, "registration visible on all",
			func() bool { return seeing(c.nodes, "web", want) == len(c.nodes) })
		sent := gaugeValue(t, src.g.eager.m.lastSent)
		if sent <= sent0 {
			t.Fatalf("origin: sent timestamp %v did not move from %v", sent, sent0)
		}
		eager := 0
		for _, nd := range c.nodes[1:] {
			recv, applied := gaugeValue(t, nd.g.eager.m.lastReceived), gaugeValue(t, nd.g.eager.m.lastApplied)
			if recv < sent0 {
				continue // the piggyback path was first here (the origin queues the change for it too)
			}
			eager++
			if d := time.Duration((recv - sent) * 1e9); d < latency-time.Millisecond || d > 2*latency {
				t.Errorf("%s: received %s after the origin sent, want about %s", nd.name, d, latency)
			}
			if applied < recv {
				t.Errorf("%s: applied at %v before received at %v", nd.name, applied, recv)
			}
		}
		if eager == 0 {
			t.Fatal("no receiver timestamped the change's eager message")
		}
		// The same record again changes nothing: the timestamps stay.
		before := gaugeValue(t, c.nodes[1].g.eager.m.lastApplied)
		pass(time.Second)
		c.nodes[1].g.deliver(inboxMsg{data: chunkEager(src.name, 0, []catalog.Record{rec}, maxBroadcastSize)[0], at: time.Now()})
		synctest.Wait()
		if after := gaugeValue(t, c.nodes[1].g.eager.m.lastApplied); after != before {
			t.Errorf("an eager message that changed nothing moved applied from %v to %v", before, after)
		}
	})
}
