package gossip

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/hashicorp/serf/coordinate"
)

// TestCoordRoundTrip: a coordinate survives the binary form to float32 precision,
// the form is 46 bytes with serf's 8 dimensions (against about 260 as JSON), and the
// JSON of older agents is still read.
func TestCoordRoundTrip(t *testing.T) {
	c := coordinate.NewCoordinate(coordinate.DefaultConfig())
	for i := range c.Vec {
		c.Vec[i] = float64(i+1) * 1.234567e-3 * math.Pow(-1, float64(i))
	}
	c.Error, c.Adjustment, c.Height = 0.4321, -2.5e-5, 1.75e-4
	b := encodeCoord(c)
	if len(b) != 46 {
		t.Errorf("encoded in %d bytes, want 46", len(b))
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binary %d bytes, JSON %d bytes", len(b), len(js))
	for _, in := range [][]byte{b, js} {
		got, err := decodeCoord(in)
		if err != nil {
			t.Fatalf("decode %q: %v", in, err)
		}
		if !got.IsValid() || !got.IsCompatibleWith(c) {
			t.Fatalf("decoded %+v: not valid or not compatible with %+v", got, c)
		}
		want := append(append([]float64(nil), c.Vec...), c.Error, c.Adjustment, c.Height)
		have := append(append([]float64(nil), got.Vec...), got.Error, got.Adjustment, got.Height)
		for i := range want {
			if d := math.Abs(have[i] - want[i]); d > 1e-7*math.Abs(want[i]) {
				t.Errorf("component %d: got %g, want %g", i, have[i], want[i])
			}
		}
		// The distance it implies to another node is the same to well below a
		// microsecond.
		other := coordinate.NewCoordinate(coordinate.DefaultConfig())
		other.Vec[0] = 0.01
		if d := math.Abs((got.DistanceTo(other) - c.DistanceTo(other)).Seconds()); d > 1e-9 {
			t.Errorf("distances from the original and its round trip differ by %g s", d)
		}
	}
}

// TestCoordMalformed: a payload of the wrong length, too many dimensions or neither
// form is refused as malformed, never a panic.
func TestCoordMalformed(t *testing.T) {
	good := encodeCoord(coordinate.NewCoordinate(coordinate.DefaultConfig()))
	for name, b := range map[string][]byte{
		"empty":          nil,
		"tag only":       {coordTag},
		"short":          good[:len(good)-1],
		"long":           append(append([]byte(nil), good...), 0),
		"too many dims":  append([]byte{coordTag, maxCoordDims + 1}, make([]byte, 4*(maxCoordDims+4))...),
		"neither form":   []byte("not json"),
		"truncated json": []byte(`{"Vec":[0.1,`),
	} {
		if _, err := decodeCoord(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err %v, want errMalformed", name, err)
		}
	}
}

// FuzzDecodeCoord: any input decodes or is refused; a decoded binary coordinate
// encodes back to the same bytes.
func FuzzDecodeCoord(f *testing.F) {
	f.Add(encodeCoord(coordinate.NewCoordinate(coordinate.DefaultConfig())))
	f.Add([]byte(`{"Vec":[0,0],"Error":1.5,"Adjustment":0,"Height":1e-5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCoord(b)
		if err != nil || len(b) == 0 || b[0] != coordTag {
			return
		}
		if again := encodeCoord(c); string(again) != string(b) && !hasNaN(c) {
			t.Fatalf("re-encoded %x, read %x", again, b)
		}
	})
}

func hasNaN(c *coordinate.Coordinate) bool {
	for _, v := range append(append([]float64(nil), c.Vec...), c.Error, c.Adjustment, c.Height) {
		if math.IsNaN(v) {
			return true
		}
	}
	return false
}
