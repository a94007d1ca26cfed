package gossip

import (
	"testing"
	"time"

	"github.com/hashicorp/serf/coordinate"
)

func TestRTTsFrom(t *testing.T) {
	at := func(x float64) *coordinate.Coordinate {
		c := coordinate.NewCoordinate(coordinate.DefaultConfig())
		c.Vec[0] = x
		return c
	}
	odd := coordinate.NewCoordinate(&coordinate.Config{Dimensionality: 2, VivaldiErrorMax: 1.5, HeightMin: 10e-6})
	members := []Member{
		{Name: "a", Coordinate: at(0)},
		{Name: "b", Coordinate: at(0.010)},
		{Name: "c", Coordinate: at(0.030)},
		{Name: "none"},                 // no coordinate yet
		{Name: "odd", Coordinate: odd}, // another dimensionality: not comparable
	}
	rtts, ok := RTTsFrom(members, "b")
	if !ok {
		t.Fatal("RTTsFrom(b): not ok")
	}
	if len(rtts) != 3 {
		t.Errorf("rtts = %v, want a, b and c only", rtts)
	}
	// serf's own estimate, not a copy of its math.
	for _, name := range []string{"a", "c"} {
		want := members[1].Coordinate.DistanceTo(members[map[string]int{"a": 0, "c": 2}[name]].Coordinate)
		if rtts[name] != want {
			t.Errorf("rtt b→%s = %s, want %s", name, rtts[name], want)
		}
	}
	if !(rtts["b"] < rtts["a"] && rtts["a"] < rtts["c"]) {
		t.Errorf("rtts = %v, want b < a < c from b", rtts)
	}
	if d := rtts["a"]; d < 9*time.Millisecond || d > 11*time.Millisecond {
		t.Errorf("rtt b→a = %s, want about 10ms", d)
	}
	for _, from := range []string{"none", "unknown"} {
		if _, ok := RTTsFrom(members, from); ok {
			t.Errorf("RTTsFrom(%s) ok, want not ok: it has no coordinate", from)
		}
	}
}
