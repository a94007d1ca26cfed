package gossip

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// withIDs gives every node of a test cluster the node ID "id-<name>".
func withIDs(cfg *Config) { cfg.NodeID = "id-" + cfg.NodeName }

// startAs starts a node named name on a transport of its own (host), with node ID
// id, as a second agent using a taken name (or the same node moved) would.
func (c *testCluster) startAs(host, name, id string) *node {
	c.t.Helper()
	cat, err := catalog.New(catalog.Config{Clock: wallClock{}, ReapAfter: 30 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	tr := c.net.NewTransport(host)
	g, err := New(Config{NodeName: name, NodeID: id, BindAddr: tr.IP(), BindPort: tr.Port(), Transport: tr, Store: cat,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatal(err)
	}
	nd := &node{name: name, cat: cat, w: catalog.NewWriter(name, uint64(time.Now().UnixMilli())), g: g, tr: tr}
	nd.publish(nd.w.PutNode(catalogtest.Node(name, tr.IP())))
	return nd
}

// TestDuplicateNameRefused (issue 11 item 10): a second node using a live node's
// name with another node ID fails its join with ErrNameConflict, and the existing
// node's service never disappears from a peer's view.
func TestDuplicateNameRefused(t *testing.T) {
	// Node IDs in the text form of the meta ("id-n01") and in the compact one (UUIDs,
	// what the data dir generates).
	uuidIDs := func(cfg *Config) { cfg.NodeID = "00000000-0000-4000-8000-0000000000" + cfg.NodeName[1:] }
	for _, tc := range []struct {
		name     string
		ids      func(*Config)
		impostor string
	}{
		{"text", withIDs, "id-impostor"},
		{"uuid", uuidIDs, "ffffffff-0000-4000-8000-000000000001"},
	} {
		t.Run(tc.name, func(t *testing.T) { testDuplicateNameRefused(t, tc.ids, tc.impostor) })
	}
}

func testDuplicateNameRefused(t *testing.T, ids func(*Config), impostorID string) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, ids)
		defer c.shutdown()
		owner := c.nodes[1]
		owner.publish(owner.w.PutService(catalogtest.Service("web-1", "web", 80)))
		within(t, 5*time.Second, "web on n00", func() bool { return instances(c.nodes[0].cat, "web") == "n01/web-1=passing" })
		imp := c.startAs("impostor-host", "n01", impostorID)
		c.nodes = append(c.nodes, imp)
		imp.publish(imp.w.PutService(catalogtest.Service("web-1", "web", 6666)))
		_, err := imp.g.Join(context.Background(), []string{c.nodes[0].tr.Addr()})
		if !errors.Is(err, ErrNameConflict) {
			t.Fatalf("the impostor's join: %v, want ErrNameConflict", err)
		}
		t.Logf("join error: %v", err)
		for range 50 { // 5 s of protocol time, checked every 100 ms
			pass(100 * time.Millisecond)
			if got := instances(c.nodes[0].cat, "web"); got != "n01/web-1=passing" {
				t.Fatalf("n00 sees web = %q while the impostor runs", got)
			}
			if l := liveness(c.nodes[0], "n01"); l != catalog.LivenessAlive {
				t.Fatalf("n00 sees n01 %s while the impostor runs", l)
			}
		}
		if n := testutil.ToFloat64(c.nodes[0].g.metrics.conflicts); n == 0 {
			t.Error("the pool counted no name conflict")
		}
	})
}

// TestSameNodeNewAddress (issue 11 item 11): a node restarted at another address
// with the same node ID is alive at its new address everywhere within seconds, and
// no name conflict is reported.
func TestSameNodeNewAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, withIDs)
		defer c.shutdown()
		old := c.nodes[2]
		_ = old.g.Shutdown() // a crash, then a restart on another host with the data dir
		old.dead = true
		moved := c.startAs("n02-new-host", "n02", "id-n02")
		c.nodes = append(c.nodes, moved)
		if _, err := moved.g.Join(context.Background(), []string{c.nodes[0].tr.Addr()}); err != nil {
			t.Fatalf("join from the new address: %v", err)
		}
		took := within(t, 30*time.Second, "n02 alive at its new address everywhere", func() bool {
			for _, nd := range c.nodes[:2] {
				found := false
				for _, m := range nd.g.Members() {
					if m.Name == "n02" && m.State == catalog.LivenessAlive && m.Addr.String() == moved.tr.Addr() {
						found = true
					}
				}
				if !found {
					return false
				}
			}
			return true
		})
		t.Logf("alive at the new address after %s", took)
		if took > 5*time.Second {
			t.Errorf("took %s, want within 5s", took)
		}
		// And it stays so once memberlist has declared the old address dead and taken
		// the new one.
		pass(time.Minute)
		for _, nd := range c.nodes[:2] {
			for _, m := range nd.g.Members() {
				if m.Name == "n02" && (m.State != catalog.LivenessAlive || m.Addr.String() != moved.tr.Addr()) {
					t.Errorf("%s sees n02 %s at %s a minute later", nd.name, m.State, m.Addr)
				}
			}
			if l := liveness(nd, "n02"); l != catalog.LivenessAlive {
				t.Errorf("%s's catalog has n02 %s", nd.name, l)
			}
			if n := testutil.ToFloat64(nd.g.metrics.conflicts); n != 0 {
				t.Errorf("%s counted %v name conflicts for a node that moved", nd.name, n)
			}
		}
	})
}

// The node meta carries a canonical UUID in 17 bytes and any other ID as text; both
// read back as the ID sent, and the text form of agents before the compact one still
// reads.
func TestNodeMeta(t *testing.T) {
	for _, tc := range []struct {
		id      string
		compact bool
	}{
		{"6f1c2a4e-9b3d-4c5e-8f70-1a2b3c4d5e6f", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"6F1C2A4E-9B3D-4C5E-8F70-1A2B3C4D5E6F", false}, // upper case: sent as text, read back as is
		{"6f1c2a4e9b3d4c5e8f701a2b3c4d5e6f", false},
		{"6f1c2a4e-9b3d-4c5e-8f70-1a2b3c4d5e6g", false},
		{"id-n01", false},
	} {
		m := encodeMeta(tc.id)
		if got := metaID(m); got != tc.id {
			t.Errorf("metaID(encodeMeta(%q)) = %q", tc.id, got)
		}
		if compact := len(m) == 17 && m[0] == metaUUID; compact != tc.compact {
			t.Errorf("encodeMeta(%q) = %q: compact %v, want %v", tc.id, m, compact, tc.compact)
		}
	}
	if got := metaID([]byte(metaPrefix + "6f1c2a4e-9b3d-4c5e-8f70-1a2b3c4d5e6f")); got != "6f1c2a4e-9b3d-4c5e-8f70-1a2b3c4d5e6f" {
		t.Errorf("the text form of an older agent reads as %q", got)
	}
	for _, m := range [][]byte{nil, {metaUUID}, {metaUUID, 1, 2}, []byte("rumor"), make([]byte, 18)} {
		if got := metaID(m); got != "" {
			t.Errorf("metaID(%q) = %q, want none", m, got)
		}
	}
}
