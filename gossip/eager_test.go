package gossip

import (
	"bytes"
	"fmt"
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

// These tests check the eager path's protocol properties over memnet in synctest
// bubbles: a change reaches every node within a few network delays (not gossip
// ticks), under loss, latency, reordering, duplicated packets and partitions every
// node still converges (the repair path delivers what the eager path misses), a
// record is forwarded at most once per node, and bursts are coalesced.

// withinStep is within with a finer step, for times of a few milliseconds.
func withinStep(t *testing.T, d, step time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		pass(step)
	}
	return time.Since(start)
}

func collectorSum(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue()
	}
	return sum
}

// eagerSettled starts a cluster with the given eager config, waits until every
// catalog agrees, then lets the piggyback queues drain so that what follows is
// carried by the path under test.
func eagerSettled(t *testing.T, n int, seed uint64, ec EagerConfig) *testCluster {
	t.Helper()
	c := newKeyedCluster(t, n, seed, nil, func(cfg *Config) { cfg.Eager = ec })
	within(t, 60*time.Second, "all nodes know each other", converged(c.nodes))
	pass(30 * time.Second)
	return c
}

// seeing counts the nodes whose catalog shows exactly want for svc.
func seeing(nodes []*node, svc, want string) int {
	k := 0
	for _, nd := range nodes {
		if instances(nd.cat, svc) == want {
			k++
		}
	}
	return k
}

func TestEagerReachesEveryNodeInOneNetworkDelay(t *testing.T) {
	cases := []struct {
		name    string
		nodes   int
		ec      EagerConfig
		latency time.Duration
		bound   time.Duration // in fake time, from the change to visible on (all but slack) nodes
		slack   int           // nodes the eager path may miss (the repair path reaches them)
	}{
		// One hop: the origin sends to every member; a delivery takes one latency.
		{"direct", 10, EagerConfig{}, 10 * time.Millisecond, 30 * time.Millisecond, 0},
		// Fan-out 6 with forwarding over 16 nodes: about log6(16) ≈ 2 hops. A node is
		// missed with probability about e^-6, two with about (16·e^-6)²/2 < 0.1 %.
		{"forward", 16, EagerConfig{DirectMax: 2, Fanout: 6}, 10 * time.Millisecond, 100 * time.Millisecond, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := eagerSettled(t, tc.nodes, 1, tc.ec)
				defer c.shutdown()
				c.net.SetDefaultLink(memnet.Link{Latency: tc.latency})
				src := c.nodes[0]
				want := src.name + "/web-1=passing"
				src.publish(src.w.PutService(catalogtest.Service("web-1", "web", 80, "v1")))
				took := withinStep(t, tc.bound, time.Millisecond, "registration visible on all",
					func() bool { return seeing(c.nodes, "web", want) >= tc.nodes-tc.slack })
				t.Logf("registration on %d of %d nodes after %s (latency %s)", seeing(c.nodes, "web", want), tc.nodes, took, tc.latency)
				within(t, 30*time.Second, "registration visible on all", allSee(c.nodes, "web", want))

				// A deregistration (like a check going critical) rides the same path.
				src.publish(src.w.Delete(catalog.Key{Kind: catalog.KindService, ID: "web-1"}))
				withinStep(t, tc.bound, time.Millisecond, "deregistration visible on all",
					func() bool { return seeing(c.nodes, "web", "") >= tc.nodes-tc.slack })
				within(t, 30*time.Second, "deregistration visible on all", allSee(c.nodes, "web", ""))
			})
		})
	}
}

// The same registration without the eager path waits for gossip ticks: this is what
// the eager path saves, and shows the test above can fail.
func TestWithoutEagerARegistrationWaitsForGossipTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := eagerSettled(t, 10, 1, EagerConfig{Disabled: true})
		defer c.shutdown()
		c.net.SetDefaultLink(memnet.Link{Latency: 10 * time.Millisecond})
		src := c.nodes[0]
		src.publish(src.w.PutService(catalogtest.Service("web-1", "web", 80, "v1")))
		took := withinStep(t, 30*time.Second, time.Millisecond, "registration visible on all",
			allSee(c.nodes, "web", src.name+"/web-1=passing"))
		if took < 100*time.Millisecond {
			t.Errorf("without the eager path the registration was on all nodes after %s: want at least a gossip tick", took)
		}
	})
}

// dupTransport sends every packet twice: the duplicates the eager path must drop.
type dupTransport struct{ memberlist.NodeAwareTransport }

func (d dupTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	_, _ = d.NodeAwareTransport.WriteTo(b, addr)
	return d.NodeAwareTransport.WriteTo(b, addr)
}

func (d dupTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	_, _ = d.NodeAwareTransport.WriteToAddress(b, a)
	return d.NodeAwareTransport.WriteToAddress(b, a)
}

func TestEagerConvergesUnderLossReorderingDuplicatesAndPartitions(t *testing.T) {
	cases := []struct {
		name string
		ec   EagerConfig
	}{
		{"direct", EagerConfig{}},
		{"forward", EagerConfig{DirectMax: 2, Fanout: 2}},
		{"eager path off", EagerConfig{Disabled: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 8
				c := newKeyedCluster(t, n, 7, nil, func(cfg *Config) {
					cfg.Eager = tc.ec
					cfg.WrapTransport = func(tr memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
						return dupTransport{tr}, nil
					}
				})
				defer c.shutdown()
				within(t, 60*time.Second, "all nodes know each other", converged(c.nodes))

				// 20% loss, 30 ± 20 ms (reordering), and one node cut off from two others.
				c.net.SetDefaultLink(memnet.Link{Loss: 0.2, Latency: 30 * time.Millisecond, Jitter: 20 * time.Millisecond})
				c.net.Partition([]string{"n00", "n01"}, []string{"n07"})
				for i, nd := range c.nodes {
					for j := range 5 {
						nd.publish(nd.w.PutService(catalogtest.Service(fmt.Sprintf("s%d-%d", i, j), "svc", 80+j, "v1")))
					}
				}
				c.nodes[3].publish(c.nodes[3].w.Delete(catalog.Key{Kind: catalog.KindService, ID: "s3-0"}))
				pass(10 * time.Second)
				c.net.Heal()
				within(t, 2*time.Minute, "catalogs converge", converged(c.nodes))
				if got, want := len(c.nodes[7].cat.ServiceInstances("svc", catalog.Filter{})), n*5-1; got != want {
					t.Errorf("n07 sees %d instances of svc, want %d", got, want)
				}
			})
		})
	}
}

func TestEagerForwardsARecordAtMostOncePerNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 12
		c := eagerSettled(t, n, 3, EagerConfig{DirectMax: 2, Fanout: 4})
		defer c.shutdown()
		before := make([]float64, n)
		for i, nd := range c.nodes {
			before[i] = collectorSum(t, nd.g.eager.m.recordsForwarded)
		}
		src := c.nodes[5]
		const recs = 3
		for j := range recs {
			src.publish(src.w.PutService(catalogtest.Service(fmt.Sprintf("web-%d", j), "web", 80, "v1")))
		}
		within(t, 10*time.Second, "registrations visible on all", func() bool {
			for _, nd := range c.nodes {
				if len(nd.cat.ServiceInstances("web", catalog.Filter{})) != recs {
					return false
				}
			}
			return true
		})
		pass(30 * time.Second) // let every forward and duplicate arrive
		var total float64
		for i, nd := range c.nodes {
			got := collectorSum(t, nd.g.eager.m.recordsForwarded) - before[i]
			if got > recs {
				t.Errorf("%s forwarded %v records, want at most %d (once per record)", nd.name, got, recs)
			}
			total += got
		}
		if total == 0 {
			t.Error("no node forwarded anything: the forwarding mode did not run")
		}
	})
}

func TestEagerCoalescesABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, burst = 5, 1000
		c := eagerSettled(t, n, 4, EagerConfig{})
		defer c.shutdown()
		src := c.nodes[0]
		b0 := collectorSum(t, src.g.eager.m.batches)
		m0 := collectorSum(t, src.g.eager.m.messages)
		for j := range burst {
			src.publish(src.w.PutService(catalogtest.Service(fmt.Sprintf("web-%d", j), "web", 80, "v1")))
		}
		within(t, 10*time.Second, "burst visible on all", func() bool {
			for _, nd := range c.nodes {
				if len(nd.cat.ServiceInstances("web", catalog.Filter{})) != burst {
					return false
				}
			}
			return true
		})
		batches := collectorSum(t, src.g.eager.m.batches) - b0
		msgs := collectorSum(t, src.g.eager.m.messages) - m0
		// The first change goes alone; the rest wait for the window: a handful of
		// batches, each a few chunks per peer, never one flood per registration.
		if batches > 10 || msgs > 10*(n-1)*3 {
			t.Errorf("%d registrations took %v batches and %v messages: want them coalesced (≤ 10 batches)", burst, batches, msgs)
		}
		t.Logf("%d registrations: %v batches, %v eager messages to %d peers", burst, batches, msgs, n-1)
	})
}

func TestEagerWire(t *testing.T) {
	var recs []catalog.Record
	w := catalog.NewWriter("n1", 1)
	for j := range 50 {
		recs = append(recs, w.PutService(catalogtest.Service(fmt.Sprintf("web-%d", j), "web", 80, "v1")))
	}
	msgs := chunkEager("n1", eagerForward, recs, maxBroadcastSize)
	if len(msgs) < 2 {
		t.Fatalf("50 records in %d messages: want several of ≤ %d bytes", len(msgs), maxBroadcastSize)
	}
	var got []catalog.Record
	for _, m := range msgs {
		if len(m) > maxBroadcastSize {
			t.Errorf("message of %d bytes, want ≤ %d", len(m), maxBroadcastSize)
		}
		sender, flags, rs, err := decodeEager(m)
		if err != nil || sender != "n1" || flags != eagerForward {
			t.Fatalf("decode: sender %q flags %d err %v", sender, flags, err)
		}
		got = append(got, rs...)
	}
	if !bytes.Equal(catalog.AppendRecords(nil, got), catalog.AppendRecords(nil, recs)) {
		t.Error("records changed in a round trip")
	}
	bad := map[string][]byte{
		"empty":          {},
		"wrong type":     {msgRecords, 2, 'n', '1', 0, 0},
		"no flags":       appendSender(nil, msgEager, "n1"),
		"unknown flag":   append(appendSender(nil, msgEager, "n1"), 0x80, 0),
		"trailing bytes": append(append(appendSender(nil, msgEager, "n1"), 0, 0), 1),
	}
	for name, b := range bad {
		if _, _, _, err := decodeEager(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestEagerConfigRefusesNegatives(t *testing.T) {
	for _, ec := range []EagerConfig{{Delay: -1}, {DirectMax: -1}, {Fanout: -1}} {
		if _, err := ec.withDefaults(); err == nil {
			t.Errorf("%+v accepted", ec)
		}
	}
	if got := (EagerConfig{}).fanoutFor(500); got != 9 {
		t.Errorf("fanout at 500 = %d, want 9 (⌈ln 500⌉ + 2)", got)
	}
}

func FuzzDecodeEager(f *testing.F) {
	w := catalog.NewWriter("n1", 1)
	f.Add(chunkEager("n1", 0, []catalog.Record{w.PutService(catalogtest.Service("web-1", "web", 80, "v1"))}, maxBroadcastSize)[0])
	f.Add([]byte{msgEager})
	f.Fuzz(func(t *testing.T, b []byte) {
		sender, flags, recs, err := decodeEager(b)
		if err != nil {
			return
		}
		again := chunkEager(sender, flags, recs, 1<<30)
		if len(again) == 1 && !bytes.Equal(again[0], b) && len(recs) > 0 {
			// Re-encoding need not be byte-identical (varint forms), but must decode the same.
			s2, f2, r2, err := decodeEager(again[0])
			if err != nil || s2 != sender || f2 != flags || len(r2) != len(recs) {
				t.Fatalf("re-encoded message decodes differently: %v", err)
			}
		}
	})
}

// A forward leaves out only the nodes that hold every record of its batch: when
// records of several origins travel together, none of those origins may be left out
// for all of them, or it misses the others' records until anti-entropy.
func TestEagerForwardLeavesOutOnlyWhoHasAll(t *testing.T) {
	rec := func(origin string) catalog.Record { return catalog.Record{Origin: origin} }
	cases := []struct {
		name string
		fwd  []catalog.Record
		from []string
		want []string
	}{
		{"one origin, one sender", []catalog.Record{rec("a"), rec("a")}, []string{"x", "x"}, []string{"a", "x"}},
		{"one origin, two senders", []catalog.Record{rec("a"), rec("a")}, []string{"x", "y"}, []string{"a"}},
		{"from the origin itself", []catalog.Record{rec("a")}, []string{"a"}, []string{"a"}},
		{"several origins at once", []catalog.Record{rec("a"), rec("b"), rec("c")}, []string{"a", "b", "c"}, nil},
		{"several origins, one relay", []catalog.Record{rec("a"), rec("b")}, []string{"x", "x"}, []string{"x"}},
		{"nothing", nil, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := haveAll(tc.fwd, tc.from)
			if len(got) != len(tc.want) {
				t.Fatalf("haveAll = %v, want %v", got, tc.want)
			}
			for _, n := range tc.want {
				if !got[n] {
					t.Fatalf("haveAll = %v, want %v", got, tc.want)
				}
			}
		})
	}
}
