package gossip

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
	"github.com/rumor-sd/rumor/gossip/gossiptest"
)

// attacker returns a gossiptest.Sender on the cluster's network, outside the pool.
func (c *testCluster) attacker(name string) *gossiptest.Sender {
	c.t.Helper()
	s, err := gossiptest.NewSender(name, c.net.NewTransport(name))
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (nd *node) addr() netip.AddrPort { return netip.MustParseAddrPort(nd.tr.Addr()) }

// TestGossiptestEncodings: the packets gossiptest crafts are what gossip decodes.
func TestGossiptestEncodings(t *testing.T) {
	w := catalog.NewWriter("n1", 5)
	recs := []catalog.Record{w.PutService(catalogtest.Service("web-1", "web", 80))}
	got, err := decodeRecords(gossiptest.Records(recs...))
	if err != nil || len(got) != 1 || got[0].String() != recs[0].String() {
		t.Errorf("records: %v, %v", got, err)
	}
	if !bytes.Equal(gossiptest.Records(recs...), encodeRecords(recs)) {
		t.Error("gossiptest.Records differs from encodeRecords")
	}
	if name, err := decodeLeave(gossiptest.Leave("n2")); err != nil || name != "n2" {
		t.Errorf("leave: %q, %v", name, err)
	}
}

// TestForgedGenerationRefused (issue 11 item 1): one packet carrying a record of a
// node at generation 2^64-1 (or far in the future) changes no catalog: the owner's
// service stays everywhere and its later writes still spread. On the old code the
// forged record replaced the owner's whole set on the node it reached.
func TestForgedGenerationRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		first := true
		c := newTestCluster(t, 3, func(cfg *Config) {
			if first {
				cfg.Registerer, first = reg, false
			}
		})
		defer c.shutdown()
		owner := c.nodes[1]
		owner.publish(owner.w.PutService(catalogtest.Service("web-1", "web", 80)))
		within(t, 5*time.Second, "web everywhere", func() bool {
			for _, nd := range c.nodes {
				if instances(nd.cat, "web") != "n01/web-1=passing" {
					return false
				}
			}
			return true
		})
		atk := c.attacker("mallory")
		defer func() { _ = atk.Close() }()
		for _, gen := range []uint64{math.MaxUint64, math.MaxUint64 - 1, uint64(time.Now().Add(48 * time.Hour).UnixMilli())} {
			forged := catalog.Record{Origin: "n01", Key: catalog.Key{Kind: catalog.KindService, ID: "web-1"},
				Version: catalog.Version{Gen: gen, Counter: 1}, Service: catalogtest.Service("web-1", "web", 6666)}
			if err := atk.SendPacket(c.nodes[0].addr(), gossiptest.Records(forged)); err != nil {
				t.Fatal(err)
			}
		}
		within(t, 5*time.Second, "the forged records counted", func() bool {
			return testutil.ToFloat64(c.nodes[0].g.metrics.dropped.WithLabelValues("future_generation")) == 3
		})
		pass(time.Second)
		for _, nd := range c.nodes {
			if got := instances(nd.cat, "web"); got != "n01/web-1=passing" {
				t.Errorf("%s: web = %q after the forged packets", nd.name, got)
			}
			if v := nd.cat.OriginVersion("n01"); v.Gen != owner.w.Generation() {
				t.Errorf("%s holds n01 at %s, want generation %d", nd.name, v, owner.w.Generation())
			}
		}
		owner.publish(owner.w.PutService(catalogtest.Service("api-1", "api", 81)))
		within(t, 5*time.Second, "the owner's next write everywhere", func() bool {
			for _, nd := range c.nodes {
				if instances(nd.cat, "api") != "n01/api-1=passing" {
					return false
				}
			}
			return true
		})
	})
}

// TestForgedGhostNotSpread (issue 11 item 3): records of an origin no member speaks
// for, sent to one node, are not re-broadcast by it, are dropped everywhere after the
// grace, and force-leave drops them at once.
func TestForgedGhostNotSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, func(cfg *Config) { cfg.UnknownOriginGrace = 5 * time.Second })
		defer c.shutdown()
		atk := c.attacker("mallory")
		defer func() { _ = atk.Close() }()
		gw := catalog.NewWriter("ghost", uint64(time.Now().UnixMilli()))
		if err := atk.SendPacket(c.nodes[0].addr(), gossiptest.Records(gw.PutService(catalogtest.Service("g-1", "ghostly", 1)))); err != nil {
			t.Fatal(err)
		}
		within(t, 5*time.Second, "the ghost on the node it was sent to", func() bool {
			return instances(c.nodes[0].cat, "ghostly") == "ghost/g-1=passing"
		})
		// The fast path would have carried it to the others within a second or two.
		pass(2 * time.Second)
		for _, nd := range c.nodes[1:] {
			if got := instances(nd.cat, "ghostly"); got != "" {
				t.Errorf("%s got the ghost by the fast path: %q", nd.name, got)
			}
		}
		within(t, 20*time.Second, "the ghost dropped everywhere", func() bool {
			for _, nd := range c.nodes {
				if instances(nd.cat, "ghostly") != "" {
					return false
				}
			}
			return true
		})
		// A second ghost, removed by force-leave before its grace.
		gw2 := catalog.NewWriter("ghost2", uint64(time.Now().UnixMilli()))
		if err := atk.SendPacket(c.nodes[1].addr(), gossiptest.Records(gw2.PutService(catalogtest.Service("g-2", "ghostly2", 1)))); err != nil {
			t.Fatal(err)
		}
		within(t, 5*time.Second, "ghost2 arrives", func() bool { return instances(c.nodes[1].cat, "ghostly2") != "" })
		if err := c.nodes[1].g.ForceLeave(context.Background(), "ghost2", false); err != nil {
			t.Fatalf("force-leave of an origin the catalog shows: %v", err)
		}
		if got := instances(c.nodes[1].cat, "ghostly2"); got != "" {
			t.Errorf("ghost2 after force-leave: %q", got)
		}
	})
}

// TestForgedLeave (issue 11 item 3): a forged leave intent for a live node does not
// make its later crash look graceful, and one for an unknown name leaves no state.
func TestForgedLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		defer c.shutdown()
		atk := c.attacker("mallory")
		defer func() { _ = atk.Close() }()
		for _, name := range []string{"n02", "nobody"} {
			if err := atk.SendStream(c.nodes[0].addr(), gossiptest.Leave(name)); err != nil {
				t.Fatal(err)
			}
		}
		g := c.nodes[0].g
		within(t, 5*time.Second, "the leave intents handled", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			_, ok := g.leaving["n02"]
			return ok
		})
		g.mu.Lock()
		_, ghost := g.leaving["nobody"]
		g.mu.Unlock()
		if ghost {
			t.Error("a leave intent for an unknown name was kept")
		}
		pass(DefaultLeaveIntentTTL)
		victim := c.nodes[2]
		_ = victim.g.Shutdown() // a crash: no goodbye
		victim.dead = true
		within(t, time.Minute, "the crash seen", func() bool {
			return liveness(c.nodes[0], "n02") != catalog.LivenessAlive &&
				liveness(c.nodes[0], "n02") != catalog.LivenessSuspect
		})
		if l := liveness(c.nodes[0], "n02"); l != catalog.LivenessFailed {
			t.Errorf("n02 crashed after a forged leave: %s, want failed", l)
		}
	})
}

// TestUnencryptedWarning (issue 11 item 4): an unencrypted node bound to a
// non-loopback address warns that gossip is unauthenticated.
func TestUnencryptedWarning(t *testing.T) {
	for _, tc := range []struct {
		bind string
		keys [][]byte
		warn bool
	}{
		{"0.0.0.0", nil, true},
		{"127.0.0.1", nil, false},
		{"0.0.0.0", [][]byte{bytes.Repeat([]byte{1}, 16)}, false},
	} {
		var buf bytes.Buffer
		cat, _ := catalog.New(catalog.Config{Clock: wallClock{}})
		g, err := New(Config{NodeName: "n1", BindAddr: tc.bind, BindPort: 0, Keys: tc.keys, Store: cat,
			Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		_ = g.Shutdown()
		if got := strings.Contains(buf.String(), "unauthenticated"); got != tc.warn {
			t.Errorf("bind %s, %d keys: warned %v, want %v:\n%s", tc.bind, len(tc.keys), got, tc.warn, buf.String())
		}
	}
}

// TestDropLogRateLimited (issue 11 item 5): a flood of junk writes a bounded number
// of log lines, while the metric counts every message.
func TestDropLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	cat, _ := catalog.New(catalog.Config{Clock: wallClock{}})
	g, err := New(Config{NodeName: "n1", BindAddr: "127.0.0.1", Store: cat,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Shutdown() }()
	before := strings.Count(buf.String(), "\n")
	for range 10000 {
		g.handle(inboxMsg{data: []byte{msgRecords, 0xff}})
	}
	bridge := newLogBridge(g.cfg.Logger, g.metrics)
	for i := range 10000 {
		_, _ = bridge.Write([]byte("[ERR] memberlist: Failed to decode packet from=10.0.0." + string(rune('0'+i%10)) + ":7946"))
	}
	if lines := strings.Count(buf.String(), "\n") - before; lines > 10 {
		t.Errorf("20,000 junk messages wrote %d log lines", lines)
	}
	if n := testutil.ToFloat64(g.metrics.dropped.WithLabelValues("malformed")); n != 10000 {
		t.Errorf("dropped{malformed} = %v, want 10000", n)
	}
}

// FuzzWireRoundTrip: every message gossip's decoders accept re-encodes to a message
// that decodes to the same value, and records it accepts either validate or are
// refused by the catalog (issue 11: accepted input must validate and round-trip).
func FuzzWireRoundTrip(f *testing.F) {
	w := catalog.NewWriter("n1", 1)
	f.Add(encodeRecords([]catalog.Record{w.PutService(catalogtest.Service("web", "web", 80)), w.PutNode(catalogtest.Node("n1", "10.0.0.1"))}))
	var s catalog.Summary
	f.Add(encodeState("peer", &s))
	d := catalog.Digest{Buckets: []int{1, 3}, Origins: []catalog.OriginDigest{{Origin: "a", Version: catalog.Version{Gen: 1, Counter: 2}}}}
	f.Add(encodeDigest("peer", &d))
	f.Add(encodeKeys(msgKeys, "peer", sampleKeys()))
	f.Add(encodeLeave("peer"))
	f.Add(encodeStateHash("peer", 42))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		switch b[0] {
		case msgRecords:
			recs, err := decodeRecords(b)
			if err != nil {
				return
			}
			again, err := decodeRecords(encodeRecords(recs))
			if err != nil || len(again) != len(recs) {
				t.Fatalf("records do not round-trip: %v", err)
			}
			cat, _ := catalogtest.New(t, catalog.Config{})
			for i := range recs {
				if !bytes.Equal(catalog.AppendRecord(nil, &recs[i]), catalog.AppendRecord(nil, &again[i])) {
					t.Fatalf("record %d re-encodes differently", i)
				}
				verr := recs[i].Validate()
				changed, aerr := cat.Apply(recs[i])
				if verr != nil && (aerr == nil || len(changed) != 0) {
					t.Fatalf("the catalog accepted invalid %v", &recs[i])
				}
				if verr == nil && aerr != nil {
					t.Fatalf("the catalog refused valid %v: %v", &recs[i], aerr)
				}
			}
		case msgLeave:
			name, err := decodeLeave(b)
			if err != nil {
				return
			}
			if again, err := decodeLeave(encodeLeave(name)); err != nil || again != name {
				t.Fatalf("leave does not round-trip: %q, %v", again, err)
			}
		case msgState:
			sender, sum, err := decodeState(b)
			if err != nil {
				return
			}
			s2, sum2, err := decodeState(encodeState(sender, &sum))
			if err != nil || s2 != sender || sum2 != sum {
				t.Fatalf("state does not round-trip: %v", err)
			}
		case msgStateHash:
			sender, h, err := decodeStateHash(b)
			if err != nil {
				return
			}
			if !bytes.Equal(encodeStateHash(sender, h), b) {
				t.Fatalf("state hash does not round-trip")
			}
		case msgDigest:
			sender, dg, err := decodeDigest(b)
			if err != nil {
				return
			}
			s2, dg2, err := decodeDigest(encodeDigest(sender, &dg))
			if err != nil || s2 != sender || !bytes.Equal(encodeDigest(sender, &dg), encodeDigest(s2, &dg2)) {
				t.Fatalf("digest does not round-trip: %v", err)
			}
		case msgKeys, msgKeysAck:
			sender, keys, err := decodeKeys(b[0], b)
			if err != nil {
				return
			}
			enc := encodeKeys(b[0], sender, keys)
			s2, keys2, err := decodeKeys(b[0], enc)
			if err != nil || s2 != sender || !bytes.Equal(enc, encodeKeys(b[0], s2, keys2)) {
				t.Fatalf("keys do not round-trip: %v", err)
			}
		}
	})
}

// BenchmarkCraftedFlood measures the worker's cost of a flood of crafted records
// messages (forged generations, junk, ghost origins): ns and bytes allocated per
// message. Allocation must stay proportional to the bytes received.
func BenchmarkCraftedFlood(b *testing.B) {
	cat, _ := catalog.New(catalog.Config{Clock: wallClock{}})
	g, err := New(Config{NodeName: "self", BindAddr: "127.0.0.1", Store: cat})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = g.Shutdown() }()
	w := catalog.NewWriter("victim", math.MaxUint64-1)
	// As many records as 8 KiB could hold (8 bytes each at least), then junk: a decoder
	// that trusted the count allocated 11 times the message before failing.
	junk := append([]byte{msgRecords}, binaryCount(1024)...)
	junk = append(junk, bytes.Repeat([]byte{0xee}, 8<<10)...)
	msgs := [][]byte{
		encodeRecords([]catalog.Record{w.PutService(catalogtest.Service("web", "web", 1))}), // future generation
		junk, // a count far beyond the bytes
		encodeRecords([]catalog.Record{catalog.NewWriter("ghost", 1).PutService(catalogtest.Service("g", "g", 1))}),
	}
	var in int64
	for _, m := range msgs {
		in += int64(len(m))
	}
	b.SetBytes(in / int64(len(msgs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		g.handle(inboxMsg{data: msgs[i%len(msgs)]})
	}
}

func binaryCount(n uint64) []byte {
	var b []byte
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

// TestQueuesBoundedByBytes (issue 11 item 5): the inbox and the parked messages hold
// at most their byte bounds, whatever the message count.
func TestQueuesBoundedByBytes(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &Gossip{cfg: Config{NodeName: "self", Logger: slog.New(slog.DiscardHandler)}, metrics: m,
		inbox: make(chan inboxMsg, inboxSize), members: map[string]*memberState{}}
	big := make([]byte, 1<<20)
	for range 100 {
		g.deliver(inboxMsg{data: big})
	}
	if n, want := len(g.inbox), inboxMaxBytes/len(big); n != want {
		t.Errorf("inbox holds %d MiB messages, want %d", n, want)
	}
	if got := g.inboxBytes.Load(); got > inboxMaxBytes {
		t.Errorf("inbox holds %d bytes, over %d", got, inboxMaxBytes)
	}
	for i := range 100 {
		g.parkIfUnknown(fmt.Sprintf("sender-%d", i), inboxMsg{data: append([]byte{msgState}, big...)})
	}
	if g.parkedBytes > parkMaxBytes {
		t.Errorf("parked %d bytes, over %d", g.parkedBytes, parkMaxBytes)
	}
	g.expireParked(time.Now().Add(time.Hour))
	if g.parkedBytes != 0 || len(g.parked) != 0 {
		t.Errorf("after expiry: %d bytes in %d queues", g.parkedBytes, len(g.parked))
	}
}
