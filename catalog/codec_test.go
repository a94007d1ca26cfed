package catalog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// sampleRecords covers every kind, tombstones, maps, tags and durations.
func sampleRecords() []catalog.Record {
	w := catalog.NewWriter("node-1", 7)
	n := catalogtest.Node("node-1", "10.1.2.3")
	n.Meta = map[string]string{"rack": "r1", "zone": "z"}
	n.TaggedAddresses = map[string]string{"lan": "10.1.2.3", "wan": "203.0.113.9"}
	s := catalogtest.Service("web-1", "web", 8080, "v1", "primary")
	s.Address = "web.internal"
	s.Meta = map[string]string{"version": "1.2.3"}
	s.Weights = catalog.Weights{Passing: 10, Warning: 0}
	s.Kind = "connect-proxy"
	ch := catalogtest.Check("web-1-http", "web-1", catalog.StatusWarning)
	ch.Output, ch.Notes, ch.Type = "HTTP GET /health: 429 Too Many Requests", "from the LB", "http"
	ch.Interval, ch.Timeout = 10*time.Second, 2*time.Second
	return []catalog.Record{
		w.PutNode(n),
		w.PutService(s),
		w.PutCheck(ch),
		w.PutService(catalogtest.Service("bare", "bare", 0)),
		w.Delete(catalog.Key{Kind: catalog.KindService, ID: "old"}),
		w.PutMove("api-1", &catalog.Move{Service: "api", ToNode: "node-2", ToServiceID: "api-1",
			At: time.Unix(1_700_000_000, 0), Until: time.Unix(1_700_259_200, 0), Explicit: true}),
		w.Delete(catalog.Key{Kind: catalog.KindMove, ID: "gone-1"}),
	}
}

func TestCodecRoundTrip(t *testing.T) {
	recs := sampleRecords()
	for _, r := range recs {
		b := catalog.AppendRecord(nil, &r)
		got, n, err := catalog.DecodeRecord(b)
		if err != nil || n != len(b) {
			t.Fatalf("DecodeRecord(%v) = %v, %d of %d bytes", &r, err, n, len(b))
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip of %v:\n got %+v\nwant %+v", &r, got, r)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("decoded %v does not validate: %v", &r, err)
		}
	}
	b := catalog.AppendRecords(nil, recs)
	got, err := catalog.DecodeRecords(b)
	if err != nil || !reflect.DeepEqual(got, recs) {
		t.Fatalf("DecodeRecords = %v, %v", got, err)
	}
	if again := catalog.AppendRecords(nil, got); !bytes.Equal(again, b) {
		t.Error("encoding is not deterministic")
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := catalog.AppendRecord(nil, &sampleRecords()[1])
	tests := []struct {
		name   string
		input  []byte
		wantIn string
	}{
		{"empty", nil, "truncated"},
		{"unknown format", append([]byte{9}, valid[1:]...), "unknown format 9"},
		{"truncated", valid[:len(valid)-3], "catalog: decode record"},
		{"huge string length", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, "string of"},
		{"unknown kind", func() []byte {
			// Kind 0 is below the extension kinds, which are skipped instead
			// (TestUnknownExtensionKindRefusedPerRecord).
			tomb := sampleRecords()[4]
			b := catalog.AppendRecord(nil, &tomb)
			b[1+1+len("node-1")] = 0
			b[len(b)-1] = 0 // not deleted, so the kind matters
			return b
		}(), "unknown kind 0"},
		{"unknown flags", func() []byte {
			tomb := sampleRecords()[4]
			b := catalog.AppendRecord(nil, &tomb)
			b[len(b)-1] = 0x80
			return b
		}(), "unknown flags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := catalog.DecodeRecord(tt.input)
			if !errors.Is(err, catalog.ErrMalformed) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("DecodeRecord error = %v, want ErrMalformed containing %q", err, tt.wantIn)
			}
		})
	}
	batch := catalog.AppendRecords(nil, sampleRecords())
	if _, err := catalog.DecodeRecords(append(batch, 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("DecodeRecords with a trailing byte: %v", err)
	}
	if _, err := catalog.DecodeRecords([]byte{0xff, 0x7f}); err == nil {
		t.Error("DecodeRecords accepted a count larger than the input")
	}
}

// FuzzDecodeRecords: the decoder never panics, never allocates beyond its input, and
// whatever it accepts re-encodes to something that decodes to the same records.
// Apply on decoded records never panics either and rejects invalid ones with an error.
func FuzzDecodeRecords(f *testing.F) {
	recs := sampleRecords()
	f.Add(catalog.AppendRecords(nil, recs))
	for i := range recs {
		f.Add(catalog.AppendRecords(nil, recs[i:i+1]))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 1, 1, 0, 1, 1, 0})
	// One record of an extension kind no version knows (9), skipped by its length.
	f.Add([]byte{1, 1, 1, 'a', 9, 1, 'z', 1, 9, 0, 3, 0xff, 0xfe, 0xfd})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := catalog.DecodeRecords(b)
		if err != nil {
			if !errors.Is(err, catalog.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := catalog.DecodeRecords(catalog.AppendRecords(nil, got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding changed the records: %v", err)
		}
		c, _ := catalogtest.New(t, catalog.Config{})
		_, err = c.Apply(got...)
		for _, r := range got {
			if r.Validate() != nil && err == nil {
				t.Fatalf("Apply accepted invalid %v", &r)
			}
		}
	})
}

func TestDigestCodec(t *testing.T) {
	c, _ := catalogtest.New(t, catalog.Config{})
	apply(t, c, sampleRecords()...)
	w := catalog.NewWriter("node-2", 1)
	apply(t, c, w.PutService(catalogtest.Service("x", "x", 1)))
	for _, d := range []catalog.Digest{c.Digest(nil), c.Digest([]int{3, 200}), c.Digest([]int{})} {
		b := catalog.AppendDigest(nil, &d)
		got, err := catalog.DecodeDigest(b)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("digest round trip: %+v, %v; want %+v", got, err, d)
		}
		if _, err := catalog.DecodeDigest(b[:len(b)-1]); !errors.Is(err, catalog.ErrMalformed) {
			t.Errorf("truncated digest: %v, want ErrMalformed", err)
		}
	}
	s := c.Summary()
	b := catalog.AppendSummary(nil, &s)
	if got, err := catalog.DecodeSummary(b); err != nil || got != s {
		t.Errorf("summary round trip: %v", err)
	}
	if _, err := catalog.DecodeSummary(b[1:]); !errors.Is(err, catalog.ErrMalformed) {
		t.Errorf("short summary: %v, want ErrMalformed", err)
	}
}

// FuzzDecodeDigest: never panics; what it accepts is sorted and re-encodes identically.
func FuzzDecodeDigest(f *testing.F) {
	c, _ := catalogtest.New(f, catalog.Config{})
	if _, err := c.Apply(sampleRecords()...); err != nil {
		f.Fatal(err)
	}
	d := c.Digest(nil)
	f.Add(catalog.AppendDigest(nil, &d))
	d = c.Digest([]int{1, 2, 255})
	f.Add(catalog.AppendDigest(nil, &d))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := catalog.DecodeDigest(b)
		if err != nil {
			return
		}
		again, err := catalog.DecodeDigest(catalog.AppendDigest(nil, &d))
		if err != nil || !reflect.DeepEqual(again, d) {
			t.Fatalf("re-encoding changed the digest: %v", err)
		}
		c.Missing(d) // must not panic on any accepted digest
	})
}

func TestOriginKeysCodec(t *testing.T) {
	keys := []catalog.OriginKeys{
		{Origin: "n1", Gen: 7, Keys: []catalog.KeyVersion{{Key: catalog.Key{Kind: catalog.KindNode}, Counter: 1},
			{Key: catalog.Key{Kind: catalog.KindService, ID: "web"}, Counter: 9}}},
		{Origin: "n2", Gen: 1, Keys: []catalog.KeyVersion{}},
	}
	b := catalog.AppendOriginKeys(nil, keys)
	got, err := catalog.DecodeOriginKeys(b)
	if err != nil || !reflect.DeepEqual(got, keys) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(b, 0), {0xff, 0x7f}, catalog.AppendOriginKeys(nil, []catalog.OriginKeys{{Origin: strings.Repeat("x", 256)}})} {
		if _, err := catalog.DecodeOriginKeys(bad); !errors.Is(err, catalog.ErrMalformed) {
			t.Errorf("DecodeOriginKeys(%d bytes) error = %v, want ErrMalformed", len(bad), err)
		}
	}
}

// TestDecodersAllocateFromInput (issue 11 item 5): a crafted count cannot make a
// decoder allocate many times the input before it fails.
func TestDecodersAllocateFromInput(t *testing.T) {
	body := bytes.Repeat([]byte{0xee}, 1<<20)
	for name, dec := range map[string]func([]byte) error{
		"records": func(b []byte) error { _, err := catalog.DecodeRecords(b); return err },
		"keys":    func(b []byte) error { _, err := catalog.DecodeOriginKeys(b); return err },
	} {
		// The largest count the input could hold, then junk.
		msg := append(binary.AppendUvarint(nil, uint64(len(body)/8)), body...)
		if name == "keys" {
			msg = append(binary.AppendUvarint(nil, uint64(len(body)/3)), body...)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := dec(msg); err == nil {
			t.Fatalf("%s: junk decoded", name)
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > uint64(len(msg)) {
			t.Errorf("%s: decoding %d bytes of junk allocated %d bytes", name, len(msg), got)
		}
	}
}

// FuzzDecodeOriginKeys: never panics; what it accepts re-encodes identically.
func FuzzDecodeOriginKeys(f *testing.F) {
	f.Add(catalog.AppendOriginKeys(nil, []catalog.OriginKeys{{Origin: "n1", Gen: 7,
		Keys: []catalog.KeyVersion{{Key: catalog.Key{Kind: catalog.KindService, ID: "web"}, Counter: 9}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := catalog.DecodeOriginKeys(b)
		if err != nil {
			return
		}
		enc := catalog.AppendOriginKeys(nil, keys)
		again, err := catalog.DecodeOriginKeys(enc)
		if err != nil || !bytes.Equal(catalog.AppendOriginKeys(nil, again), enc) {
			t.Fatalf("origin keys do not round-trip: %v", err)
		}
	})
}
