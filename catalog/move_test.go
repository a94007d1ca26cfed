package catalog_test

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

func move(service, toNode, toID string, at time.Time, keep time.Duration) *catalog.Move {
	return &catalog.Move{Service: service, ToNode: toNode, ToServiceID: toID, At: at, Until: at.Add(keep)}
}

func TestMoveValidate(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	w := catalog.NewWriter("a", 1)
	cases := []struct {
		name  string
		rec   catalog.Record
		field string // "" means valid
	}{
		{"valid", w.PutMove("web-1", move("web", "b", "web-1", at, time.Hour)), ""},
		{"tombstone", w.Delete(catalog.Key{Kind: catalog.KindMove, ID: "web-1"}), ""},
		{"no service", w.PutMove("web-1", move("", "b", "web-1", at, time.Hour)), "move.service"},
		{"no target node", w.PutMove("web-1", move("web", "", "web-1", at, time.Hour)), "move.to_node"},
		{"no target id", w.PutMove("web-1", move("web", "b", "", at, time.Hour)), "move.to_service_id"},
		{"no time", w.PutMove("web-1", move("web", "b", "web-1", time.Time{}, time.Hour)), "move.at"},
		{"until before at", w.PutMove("web-1", move("web", "b", "web-1", at, -time.Second)), "move.until"},
		{"to its own node", w.PutMove("web-1", move("web", "a", "web-2", at, time.Hour)), "move.to_node"},
		{"no id", w.PutMove("", move("web", "b", "web-1", at, time.Hour)), "record.key.id"},
		{"wrong value", catalog.Record{Origin: "a", Key: catalog.Key{Kind: catalog.KindMove, ID: "x"}, Version: catalog.Version{Gen: 1, Counter: 1},
			Service: catalogtest.Service("x", "x", 1)}, "record"},
		{"move value in a service record", catalog.Record{Origin: "a", Key: catalog.Key{Kind: catalog.KindService, ID: "x"}, Version: catalog.Version{Gen: 1, Counter: 1},
			Move: move("web", "b", "web-1", at, time.Hour)}, "record"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rec.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *catalog.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("Validate() = %v, want a FieldError", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("Validate() = %v, want it to name %s", err, tc.field)
			}
		})
	}
}

// A record of an extension kind this version does not know (here kind 9) is
// skipped by the decoder and refused by Apply alone: the other records of the same
// message still apply.
func TestUnknownExtensionKindRefusedPerRecord(t *testing.T) {
	w := catalog.NewWriter("a", 1)
	good := w.PutService(catalogtest.Service("web-1", "web", 80))
	var msg []byte
	msg = binary.AppendUvarint(msg, 3)
	msg = catalog.AppendRecord(msg, &good)
	// format, origin "a", kind 9, id "z", gen 1, counter 9, flags 0, ext of 3 bytes.
	msg = append(msg, 1, 1, 'a', 9, 1, 'z', 1, 9, 0, 3, 0xff, 0xfe, 0xfd)
	mv := w.PutMove("old-1", move("old", "b", "old-1", time.Unix(1_700_000_000, 0), time.Hour))
	msg = catalog.AppendRecord(msg, &mv)
	recs, err := catalog.DecodeRecords(msg)
	if err != nil {
		t.Fatalf("DecodeRecords = %v, want the unknown kind skipped", err)
	}
	if len(recs) != 3 || recs[1].Key.Kind != 9 || recs[1].Move != nil || recs[1].Service != nil {
		t.Fatalf("decoded %+v, want 3 records, the second of kind 9 without a value", recs)
	}
	cat, _ := catalogtest.New(t, catalog.Config{})
	changed, err := cat.Apply(recs...)
	if err == nil || !strings.Contains(err.Error(), "unknown kind 9") {
		t.Errorf("Apply error = %v, want the kind-9 record refused", err)
	}
	if len(changed) != 2 {
		t.Errorf("Apply changed %d records, want the 2 known ones", len(changed))
	}
	// Kinds below the extension range keep the strict rule.
	bad := []byte{1, 1, 'a', 0, 1, 'z', 1, 9, 0}
	if _, _, err := catalog.DecodeRecord(bad); !errors.Is(err, catalog.ErrMalformed) {
		t.Errorf("kind 0: DecodeRecord = %v, want ErrMalformed", err)
	}
	// A truncated extension body is malformed, not skipped.
	trunc := []byte{1, 1, 'a', 9, 1, 'z', 1, 9, 0, 5, 0xff}
	if _, _, err := catalog.DecodeRecord(trunc); !errors.Is(err, catalog.ErrMalformed) {
		t.Errorf("truncated ext: DecodeRecord = %v, want ErrMalformed", err)
	}
}

// Bytes after the fields a version knows in a move body are ignored, so a later
// version can append fields.
func TestMoveBodyToleratesAppendedFields(t *testing.T) {
	w := catalog.NewWriter("a", 1)
	r := w.PutMove("web-1", move("web", "b", "web-1", time.Unix(1_700_000_000, 0), time.Hour))
	b := catalog.AppendRecord(nil, &r)
	// The body length is the byte after the flags byte of the header; grow it by 2.
	hdr := len(catalog.AppendRecord(nil, &catalog.Record{Origin: "a", Key: r.Key, Version: r.Version, Deleted: true}))
	if int(b[hdr]) >= 0x7e {
		t.Fatalf("body length %d does not fit one byte", b[hdr])
	}
	ext := append(append([]byte(nil), b[:hdr]...), b[hdr]+2)
	ext = append(append(ext, b[hdr+1:]...), 0xaa, 0xbb)
	got, n, err := catalog.DecodeRecord(ext)
	if err != nil || n != len(ext) {
		t.Fatalf("DecodeRecord = %v, %d of %d bytes", err, n, len(ext))
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("got %+v, want %+v", got, r)
	}
}

func TestMovesQueryAndTopics(t *testing.T) {
	cat, clk := catalogtest.New(t, catalog.Config{})
	a, b := catalog.NewWriter("a", 1), catalog.NewWriter("b", 1)
	applyMoves(t, cat, a.PutNode(catalogtest.Node("a", "10.0.0.1")), a.PutService(catalogtest.Service("web-1", "web", 80)),
		b.PutNode(catalogtest.Node("b", "10.0.0.2")))
	webIdx, movesIdx := cat.TopicIndex(catalog.ServiceTopic("web")), cat.TopicIndex(catalog.TopicMoves)
	if got := cat.Endpoints(nil, "web", ""); len(got) != 1 {
		t.Fatalf("Endpoints before the move = %v, want a's instance", got)
	}
	// The old origin's two records of a move, seen apart: the pointer first.
	applyMoves(t, cat, a.PutMove("web-1", move("web", "b", "web-1", clk.Now(), time.Hour)))
	if cat.TopicIndex(catalog.ServiceTopic("web")) <= webIdx || cat.TopicIndex(catalog.TopicMoves) <= movesIdx {
		t.Errorf("a pointer did not move the service's and the moves topics")
	}
	if got := cat.Endpoints(nil, "web", ""); len(got) != 0 {
		t.Errorf("Endpoints after the pointer = %v, want the moved instance left out", got)
	}
	got := cat.Moves("web")
	if len(got) != 1 || got[0].From != "a" || got[0].ServiceID != "web-1" || got[0].Move.ToNode != "b" {
		t.Fatalf("Moves(web) = %+v, want a/web-1 → b", got)
	}
	if all := cat.Moves(""); !reflect.DeepEqual(all, got) {
		t.Errorf("Moves(\"\") = %+v, want %+v", all, got)
	}
	if other := cat.Moves("db"); len(other) != 0 {
		t.Errorf("Moves(db) = %+v, want none", other)
	}
	if e, ok := cat.MoveFrom("a", "web-1"); !ok || e.Move.ToServiceID != "web-1" {
		t.Errorf("MoveFrom = %+v, %v", e, ok)
	}
	if from := cat.MovesFrom("a"); !reflect.DeepEqual(from, got) {
		t.Errorf("MovesFrom(a) = %+v, want %+v", from, got)
	}
	if from := cat.MovesFrom("b"); len(from) != 0 {
		t.Errorf("MovesFrom(b) = %+v, want none", from)
	}
	if s, ok := cat.ServiceOf("a", "web-1"); !ok || s.Name != "web" {
		t.Errorf("ServiceOf(a, web-1) = %+v, %v", s, ok)
	}
	if _, ok := cat.ServiceOf("b", "web-1"); ok {
		t.Errorf("ServiceOf(b, web-1) found a service b does not hold")
	}
	// Past Until a pointer is no longer answered, though its origin still holds it.
	clk.Advance(time.Hour)
	if got := cat.Moves(""); len(got) != 0 {
		t.Errorf("Moves after Until = %+v, want none", got)
	}
	if _, ok := cat.MoveFrom("a", "web-1"); ok {
		t.Errorf("MoveFrom after Until found the pointer")
	}
	// A node that leaves takes its pointers with it.
	applyMoves(t, cat, a.PutMove("web-1", move("web", "b", "web-1", clk.Now(), time.Hour)))
	cat.SetLiveness("a", catalog.LivenessLeft)
	if got := cat.Moves(""); len(got) != 0 {
		t.Errorf("Moves after a left = %+v, want none", got)
	}
}

func TestOwnMoveUpkeep(t *testing.T) {
	clk := catalogtest.NewClock()
	t0 := clk.Now()
	cases := []struct {
		name   string
		recs   func(a, b, c *catalog.Writer) []catalog.Record
		after  time.Duration
		want   []catalog.MoveUpdate
		wantTo string // the rewritten target node, for a single update with a Move
	}{
		{"nothing to do", func(a, b, c *catalog.Writer) []catalog.Record {
			return []catalog.Record{a.PutMove("x", move("web", "b", "x", t0, time.Hour))}
		}, 0, nil, ""},
		{"expired", func(a, b, c *catalog.Writer) []catalog.Record {
			return []catalog.Record{a.PutMove("x", move("web", "b", "x", t0, time.Hour))}
		}, time.Hour, []catalog.MoveUpdate{{ServiceID: "x"}}, ""},
		{"chain collapses to one hop", func(a, b, c *catalog.Writer) []catalog.Record {
			return []catalog.Record{a.PutMove("x", move("web", "b", "x", t0, time.Hour)),
				b.PutMove("x", move("web", "c", "x2", t0.Add(time.Minute), time.Hour))}
		}, 0, []catalog.MoveUpdate{{ServiceID: "x"}}, "c"},
		{"longer chain", func(a, b, c *catalog.Writer) []catalog.Record {
			return []catalog.Record{a.PutMove("x", move("web", "b", "x", t0, time.Hour)),
				b.PutMove("x", move("web", "c", "x", t0.Add(time.Minute), time.Hour)),
				c.PutMove("x", move("web", "d", "x", t0.Add(2*time.Minute), time.Hour))}
		}, 0, []catalog.MoveUpdate{{ServiceID: "x"}}, "d"},
		{"a stale pointer at the target is not followed", func(a, b, c *catalog.Writer) []catalog.Record {
			return []catalog.Record{b.PutMove("x", move("web", "c", "x", t0, time.Hour)),
				a.PutMove("x", move("web", "b", "x", t0.Add(time.Minute), time.Hour))}
		}, 0, nil, ""},
		{"back home", func(a, b, c *catalog.Writer) []catalog.Record {
			return []catalog.Record{a.PutMove("x", move("web", "b", "x", t0, time.Hour)),
				b.PutMove("x", move("web", "a", "x", t0.Add(time.Minute), time.Hour))}
		}, 0, []catalog.MoveUpdate{{ServiceID: "x"}}, ""},
		{"an expired next hop is not followed", func(a, b, c *catalog.Writer) []catalog.Record {
			return []catalog.Record{a.PutMove("x", move("web", "b", "x", t0, 2*time.Hour)),
				b.PutMove("x", move("web", "c", "x", t0.Add(time.Minute), time.Minute))}
		}, time.Hour, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := catalogtest.NewClock()
			cat, err := catalog.New(catalog.Config{Clock: clk, Self: "a"})
			if err != nil {
				t.Fatal(err)
			}
			a, b, c := catalog.NewWriter("a", 1), catalog.NewWriter("b", 1), catalog.NewWriter("c", 1)
			for _, r := range tc.recs(a, b, c) {
				apply := cat.Apply
				if r.Origin == "a" {
					apply = cat.ApplyOwn
				}
				if _, err := apply(r); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(tc.after)
			got := cat.OwnMoveUpkeep("a")
			if len(got) != len(tc.want) {
				t.Fatalf("OwnMoveUpkeep = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].ServiceID != tc.want[i].ServiceID {
					t.Errorf("update %d is for %q, want %q", i, got[i].ServiceID, tc.want[i].ServiceID)
				}
				switch {
				case tc.wantTo == "" && got[i].Move != nil:
					t.Errorf("update %d = %+v, want a deletion", i, got[i].Move)
				case tc.wantTo != "" && (got[i].Move == nil || got[i].Move.ToNode != tc.wantTo):
					t.Errorf("update %d = %+v, want a pointer to %s", i, got[i].Move, tc.wantTo)
				case tc.wantTo != "" && !got[i].Move.At.Equal(t0):
					t.Errorf("rewritten pointer's At = %v, want the original %v kept", got[i].Move.At, t0)
				}
			}
		})
	}
}

func applyMoves(t *testing.T, cat *catalog.Catalog, recs ...catalog.Record) {
	t.Helper()
	if _, err := cat.Apply(recs...); err != nil {
		t.Fatal(err)
	}
}
