package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

func sampleKeys() []catalog.OriginKeys {
	return []catalog.OriginKeys{
		{Origin: "n1", Gen: 7, Keys: []catalog.KeyVersion{{Key: catalog.Key{Kind: catalog.KindNode}, Counter: 1},
			{Key: catalog.Key{Kind: catalog.KindService, ID: "web"}, Counter: 9}}},
		{Origin: "n2", Gen: 1, Keys: []catalog.KeyVersion{}},
	}
}

func TestWireRoundTrips(t *testing.T) {
	w := catalog.NewWriter("n1", 3)
	recs := []catalog.Record{w.PutNode(catalogtest.Node("n1", "10.0.0.1")), w.PutService(catalogtest.Service("web", "web", 80))}
	got, err := decodeRecords(encodeRecords(recs))
	if err != nil || !reflect.DeepEqual(got, recs) {
		t.Fatalf("records: %v %v", got, err)
	}
	var s catalog.Summary
	s.Buckets[3] = 42
	sender, gotS, err := decodeState(encodeState("n1", &s))
	if err != nil || sender != "n1" || gotS != s {
		t.Fatalf("state: %s %v", sender, err)
	}
	d := catalog.Digest{Buckets: []int{1, 5}, Origins: []catalog.OriginDigest{{Origin: "a", Version: catalog.Version{Gen: 1, Counter: 2}, Hash: 3}}}
	sender, gotD, err := decodeDigest(encodeDigest("n2", &d))
	if err != nil || sender != "n2" || !reflect.DeepEqual(gotD, d) {
		t.Fatalf("digest: %s %+v %v", sender, gotD, err)
	}
	sender, gotK, err := decodeKeys(msgKeys, encodeKeys(msgKeys, "n3", sampleKeys()))
	if err != nil || sender != "n3" || !reflect.DeepEqual(gotK, sampleKeys()) {
		t.Fatalf("keys: %s %+v %v", sender, gotK, err)
	}
	if sender, err := decodeLeave(encodeLeave("n4")); err != nil || sender != "n4" {
		t.Fatalf("leave: %s %v", sender, err)
	}
	if sender, h, err := decodeStateHash(encodeStateHash("n5", s.Hash())); err != nil || sender != "n5" || h != s.Hash() {
		t.Fatalf("state hash: %s %x %v", sender, h, err)
	}
	for _, b := range [][]byte{nil, {msgStateHash}, {msgStateHash, 1, 'a'}, append(encodeStateHash("n5", 1), 0), encodeState("n5", &s)} {
		if _, _, err := decodeStateHash(b); !errors.Is(err, errMalformed) {
			t.Errorf("state hash %v: error %v, want errMalformed", b, err)
		}
	}
}

func TestChunkRecordsBoundsMessages(t *testing.T) {
	w := catalog.NewWriter("n1", 1)
	var recs []catalog.Record
	for i := range 500 {
		recs = append(recs, w.PutService(catalogtest.Service(fmt.Sprintf("s%d", i), "svc", i)))
	}
	chunks := chunkRecords(recs, 4096)
	var all []catalog.Record
	for _, c := range chunks {
		if len(c) > 4096+200 {
			t.Errorf("chunk of %d bytes, want about 4096 at most", len(c))
		}
		got, err := decodeRecords(c)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
	}
	if len(chunks) < 2 || !reflect.DeepEqual(all, recs) {
		t.Fatalf("%d chunks carried %d records, want all %d in order", len(chunks), len(all), len(recs))
	}
}

func TestDecodersRejectGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, {msgRecords, 5}, {msgState, 0}, {msgDigest, 200, 1}, {msgKeys, 1, 'a', 0xff}, {msgLeave, 1, 'a', 9}} {
		_, err1 := decodeRecords(b)
		_, _, err2 := decodeState(b)
		_, _, err3 := decodeDigest(b)
		_, _, err4 := decodeKeys(msgKeys, b)
		_, err5 := decodeLeave(b)
		for _, err := range []error{err1, err2, err3, err4, err5} {
			if err == nil || !errors.Is(err, errMalformed) {
				t.Errorf("input %v: error %v, want errMalformed", b, err)
			}
		}
	}
}

// FuzzHandle feeds arbitrary bytes to the message handler of a gossip node with a
// real catalog: nothing may panic, and garbage never changes the catalog.
func FuzzHandle(f *testing.F) {
	w := catalog.NewWriter("n1", 1)
	f.Add(encodeRecords([]catalog.Record{w.PutService(catalogtest.Service("web", "web", 80))}))
	var s catalog.Summary
	f.Add(encodeState("peer", &s))
	d := catalog.Digest{Origins: []catalog.OriginDigest{{Origin: "a"}}}
	f.Add(encodeDigest("peer", &d))
	f.Add(encodeKeys(msgKeys, "peer", sampleKeys()))
	f.Add(encodeKeys(msgKeysAck, "peer", sampleKeys()))
	f.Add(encodeLeave("peer"))
	f.Add(encodeKeyQuery("peer", 7, time.Now().Add(time.Minute), KeyInstall, bytes.Repeat([]byte{1}, 32)))
	f.Add(encodeKeyResponse("peer", 7, keyAnswer{keys: [][]byte{bytes.Repeat([]byte{1}, 16)}, primary: bytes.Repeat([]byte{1}, 16)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cat, _ := catalogtest.New(t, catalog.Config{})
		m, err := newMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		g := &Gossip{cfg: Config{NodeName: "self", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store: cat,
			metrics: m, members: map[string]*memberState{}, reconnect: map[string]*reconnectState{}, leaving: map[string]time.Time{},
			queue: &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 1 }, RetransmitMult: 4},
			keyq:  keyQueries{pending: map[uint64]*keyQuery{}, answered: map[string]time.Time{}}}
		g.ctx, g.cancel = context.WithCancel(context.Background())
		defer g.cancel()
		before := cat.Summary()
		g.handle(inboxMsg{data: bytes.Clone(b)})
		if _, err := decodeRecords(b); err != nil && cat.Summary() != before {
			t.Fatal("an undecodable message changed the catalog")
		}
	})
}
