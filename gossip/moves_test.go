package gossip

import (
	"encoding/binary"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// A forward pointer (catalog.KindMove) travels like any record: the fast path
// brings it to every node, and its deletion too.
func TestMoveRecordSpreads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, nil)
		defer c.shutdown()
		within(t, 30*time.Second, "all nodes know each other", converged(c.nodes))
		src := c.nodes[0]
		at := time.Now()
		src.publish(src.w.PutMove("web-1", &catalog.Move{Service: "web", ToNode: c.nodes[1].name, ToServiceID: "web-1",
			At: at, Until: at.Add(time.Hour)}))
		within(t, 5*time.Second, "the pointer on every node", func() bool {
			for _, nd := range c.nodes {
				if e, ok := nd.cat.MoveFrom(src.name, "web-1"); !ok || e.Move.ToNode != c.nodes[1].name {
					return false
				}
			}
			return true
		})
		src.publish(src.w.Delete(catalog.Key{Kind: catalog.KindMove, ID: "web-1"}))
		within(t, 5*time.Second, "the pointer gone from every node", func() bool {
			for _, nd := range c.nodes {
				if _, ok := nd.cat.MoveFrom(src.name, "web-1"); ok {
					return false
				}
			}
			return true
		})
	})
}

// A records message holding a record of an extension kind this version does not
// know decodes, and only that record is refused: the others apply.
func TestUnknownKindRefusedPerRecordInAMessage(t *testing.T) {
	w := catalog.NewWriter("n1", 1)
	good := []catalog.Record{w.PutNode(catalogtest.Node("n1", "10.0.0.1")), w.PutService(catalogtest.Service("web", "web", 80))}
	body := binary.AppendUvarint(nil, 3)
	body = catalog.AppendRecord(body, &good[0])
	body = append(body, 1, 2, 'n', '1', 200, 1, 'z', 1, 9, 0, 2, 0xde, 0xad) // kind 200, a 2-byte value
	body = catalog.AppendRecord(body, &good[1])
	recs, err := decodeRecords(append([]byte{msgRecords}, body...))
	if err != nil {
		t.Fatalf("decodeRecords = %v, want the unknown kind skipped", err)
	}
	cat, _ := catalogtest.New(t, catalog.Config{})
	changed, err := cat.Apply(recs...)
	if err == nil || len(changed) != 2 {
		t.Fatalf("Apply: %d changed, error %v; want the 2 known records applied and the other refused", len(changed), err)
	}
	if len(cat.ServiceInstances("web", catalog.Filter{})) != 1 {
		t.Error("the service after the unknown record is missing")
	}
}

// Batched messages (anti-entropy chunks, eager messages) carry extension-kind records
// apart from the others, so an agent from before moves, which refuses a whole
// message holding a kind it does not know, loses only the pointers.
func TestExtensionKindsTravelApart(t *testing.T) {
	w := catalog.NewWriter("n1", 1)
	at := time.Unix(1_700_000_000, 0)
	recs := []catalog.Record{
		w.PutService(catalogtest.Service("a", "a", 1)),
		w.PutMove("b", &catalog.Move{Service: "b", ToNode: "n2", ToServiceID: "b", At: at, Until: at.Add(time.Hour)}),
		w.PutService(catalogtest.Service("c", "c", 1)),
	}
	kinds := func(recs []catalog.Record) (base, ext int) {
		for _, r := range recs {
			if r.Key.Kind.Extension() {
				ext++
			} else {
				base++
			}
		}
		return base, ext
	}
	check := func(what string, msgs [][]byte, decode func([]byte) []catalog.Record) {
		t.Helper()
		total := 0
		for _, m := range msgs {
			got := decode(m)
			total += len(got)
			if b, e := kinds(got); b > 0 && e > 0 {
				t.Errorf("%s: a message mixes %d records of the first kinds with %d of extension kinds", what, b, e)
			}
		}
		if total != len(recs) {
			t.Errorf("%s: %d records in %d messages, want %d", what, total, len(msgs), len(recs))
		}
	}
	check("chunkRecords", chunkRecords(recs, 1<<20), func(b []byte) []catalog.Record {
		got, err := decodeRecords(b)
		if err != nil {
			t.Fatal(err)
		}
		return got
	})
	check("chunkEager", chunkEager("n1", 0, recs, 1<<20), func(b []byte) []catalog.Record {
		_, _, got, err := decodeEager(b)
		if err != nil {
			t.Fatal(err)
		}
		return got
	})
	if msgs := chunkRecords(recs[:1], 1<<20); len(msgs) != 1 {
		t.Errorf("without pointers: %d messages, want 1", len(msgs))
	}
}
