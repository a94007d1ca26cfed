package model

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/sim/scenario"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.golden from the model's current output")

func load(t *testing.T, name string, nodes int) scenario.Scenario {
	t.Helper()
	sc, err := scenario.Load(filepath.Join("..", "testdata", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	if nodes > 0 {
		sc.Nodes = nodes
	}
	return sc
}

// The model is deterministic: the same scenario and seed give the same report, and
// its table for every checked-in scenario at 100 nodes matches testdata/model.golden
// (go test ./sim/model -rewrite after an intended change).
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../testdata/*.txt")
	var reports []scenario.Report
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		sc := load(t, name, 100)
		a, err := Run(sc, DefaultParams())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(sc, DefaultParams())
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two runs with seed %d differ", name, sc.Seed)
		}
		reports = append(reports, a)
	}
	var out strings.Builder
	if err := scenario.WriteTable(&out, reports); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("..", "testdata", "model.golden")
	if *rewrite {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if out.String() != string(want) {
		t.Errorf("model output changed; got:\n%s\nwant:\n%s", out.String(), want)
	}
}

// A different seed gives a different (but similar) run.
func TestSeedMatters(t *testing.T) {
	sc := load(t, "convergence", 200)
	a, _ := Run(sc, DefaultParams())
	sc.Seed++
	b, _ := Run(sc, DefaultParams())
	if reflect.DeepEqual(a.Spreads, b.Spreads) {
		t.Error("seeds 1 and 2 gave identical spreads")
	}
}

// What must hold in any run: everything reaches everyone on a lossless network once
// anti-entropy has run, a
// crash is detected within memberlist's bound, traffic grows with N.
func TestInvariants(t *testing.T) {
	p := DefaultParams()
	for _, n := range []int{20, 100, 1000} {
		rep, err := Run(load(t, "failure", n), p)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := p.suspicionTimeouts(n)
		if rep.Undetected > 0 || len(rep.Detections) == 0 {
			t.Errorf("N=%d: %d undetected, %d detected", n, rep.Undetected, len(rep.Detections))
		}
		for _, d := range rep.Detections {
			if d < lo || d > p.ProbeInterval*20+hi {
				t.Errorf("N=%d: detection %s outside [%s, %s]", n, d, lo, hi)
			}
		}
		// The eager path misses a few nodes (a forwarder leaves out the senders and
		// origins of every record in its batch, so origins of simultaneous records
		// miss each other's), and anti-entropy repairs them within an interval or two
		// (60 s at 1,000 nodes): give it three.
		sc := load(t, "convergence", n)
		sc.Duration = max(sc.Duration, 3*p.pushPullEvery(n))
		conv, _ := Run(sc, p)
		if conv.Unreached > 0 {
			t.Errorf("N=%d: %d registrations never reached everyone", n, conv.Unreached)
		}
	}
	small, _ := Run(load(t, "bandwidth", 100), p)
	big, _ := Run(load(t, "bandwidth", 1000), p)
	if big.BytesPerNodeSec <= small.BytesPerNodeSec {
		t.Errorf("bytes/s per node %0.f at 1000 ≤ %0.f at 100", big.BytesPerNodeSec, small.BytesPerNodeSec)
	}
}

// The eager path, when configured, makes a registration reach a small cluster in
// about one hop.
func TestEagerParameter(t *testing.T) {
	p := DefaultParams()
	p.EagerAllBelow, p.EagerDelay = 64, time.Millisecond
	rep, _ := Run(load(t, "convergence", 50), p)
	if _, _, t100 := rep.Reg(); t100 > 5*time.Millisecond {
		t.Errorf("eager to all 50: 100%% after %s, want about one hop (1ms)", t100)
	}
}

func TestSet(t *testing.T) {
	p := DefaultParams()
	for _, kv := range []string{"EagerFanout=4", "EagerDelay=2ms", "EagerForward=true", "TCPFallbackFail=0.5"} {
		if err := p.Set(kv); err != nil {
			t.Fatal(err)
		}
	}
	if p.EagerFanout != 4 || p.EagerDelay != 2*time.Millisecond || !p.EagerForward || p.TCPFallbackFail != 0.5 {
		t.Errorf("Set: %+v", p)
	}
	for _, bad := range []string{"Nope=1", "EagerFanout", "EagerFanout=-1", "EagerDelay=soon"} {
		if err := p.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestCompare(t *testing.T) {
	r := scenario.Report{Spreads: []scenario.Spread{{T50: 100, T99: 200, T100: 200}}, Detections: []time.Duration{1000}, BytesPerNodeSec: 100}
	m := scenario.Report{Spreads: []scenario.Spread{{T50: 110, T99: 180, T100: 200}}, Detections: []time.Duration{1000}, BytesPerNodeSec: 150}
	e := Compare(m, r)
	if e.Reg50 < 0.099 || e.Reg50 > 0.101 || e.Reg99 > -0.099 || e.Detect != 0 || e.Bytes != 0.5 {
		t.Errorf("Compare = %+v", e)
	}
	if w := e.Worst(); w < 0.099 || w > 0.101 {
		t.Errorf("Worst = %v, want 0.1", w)
	}
	data, _ := json.Marshal(r)
	if !strings.Contains(string(data), "Spreads") {
		t.Errorf("report JSON %s", data)
	}
}
