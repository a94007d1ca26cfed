package sim

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/sim/model"
	"github.com/rumor-sd/rumor/sim/scenario"
)

// Tier 1 runs through go test, because testing/synctest needs a *testing.T:
//
//	go test ./sim -run TestReal -sim.scenario testdata/failure.txt -sim.nodes 500 -v
//
// prints the report table; -sim.json FILE also writes the reports as JSON (what
// cmd/rumor-sim reads to print the model's error next to its predictions).
var (
	flagScenario = flag.String("sim.scenario", "", "tier-1 scenario file(s) to run (glob); default: five of testdata/*.txt at 20 nodes")
	flagNodes    = flag.Int("sim.nodes", 0, "override the scenario's node count (default: 20 for the checked-in scenarios, the file's own with -sim.scenario)")
	flagSeed     = flag.Uint64("sim.seed", 0, "override the scenario's seed")
	flagJSON     = flag.String("sim.json", "", "write the tier-1 reports as JSON to this file")
	flagBytes    = flag.Bool("sim.bytes", false, "log what tier 1 sends per node-second by message type")
	flagPublish  = flag.Bool("sim.publishstart", false, "the initial nodes publish their records through gossip, all at once, instead of the catalogs being filled (RealOptions.PublishAtStart)")
)

// runBubble runs sc in a synctest bubble and returns its report.
func runBubble(t *testing.T, sc scenario.Scenario) scenario.Report {
	t.Helper()
	var rep scenario.Report
	var err error
	// Hundreds of nodes allocate fast and the heap they keep is large: the collector
	// at GOGC 100 took about a third of a 200-node run's CPU. Let the heap grow to
	// 4 × the live heap, and bound it by a soft limit instead.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(6 << 30))
	start := time.Now() // outside the bubble: wall-clock time
	synctest.Test(t, func(t *testing.T) {
		var progress strings.Builder
		opt := RealOptions{Progress: &progress, PublishAtStart: *flagPublish}
		var bc *byteCounter
		if *flagBytes {
			bc = newByteCounter()
			opt.WrapTransport = bc.wrap
			opt.Measuring = func() { bc.on.Store(true) }
		}
		rep, err = RunReal(context.Background(), sc, opt)
		if bc != nil && rep.NodeHours > 0 {
			t.Logf("%s at %d nodes, bytes sent by kind:\n%s", sc.Name, sc.Nodes, bc.table(rep.NodeHours*3600))
			rep.BytesByKind = bc.perNodeSec(rep.NodeHours * 3600)
		}
		// memberlist's Shutdown does not wait for probes in flight: let them end.
		time.Sleep(time.Minute)
		if err != nil || testing.Verbose() {
			t.Logf("progress:\n%s", progress.String())
		}
	})
	if err != nil {
		t.Fatalf("%s: %v", sc.Name, err)
	}
	rep.Wall = time.Since(start)
	return rep
}

func loadScenarios(t *testing.T) []scenario.Scenario {
	t.Helper()
	pattern, nodes := *flagScenario, *flagNodes
	var files []string
	var err error
	if pattern == "" {
		// By default, the scenarios the tests name, at 20 nodes: a cluster
		// converges, crashes are detected, a partition heals, churn and loss are survived.
		for _, name := range []string{"convergence", "failure", "partition", "churn", "lossy-10"} {
			files = append(files, "testdata/"+name+".txt")
		}
		if nodes == 0 {
			nodes = 20
		}
	} else {
		files, err = filepath.Glob(pattern)
	}
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario matches %q (%v)", pattern, err)
	}
	var out []scenario.Scenario
	for _, f := range files {
		sc, err := scenario.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if nodes > 0 {
			sc.Nodes = nodes
		}
		if *flagSeed > 0 {
			sc.Seed = *flagSeed
		}
		out = append(out, sc)
	}
	return out
}

// TestReal runs every checked-in scenario (20 nodes unless -sim.nodes says otherwise)
// with real gossip nodes in virtual time and checks what must hold whatever the
// timing: every registration reached every live node, every crash was detected,
// within memberlist's suspicion bound, and nothing was declared failed falsely
// on a lossless network.
func TestReal(t *testing.T) {
	if testing.Short() {
		t.Skip("tier-1 scenarios take tens of seconds")
	}
	var reports []scenario.Report
	for _, sc := range loadScenarios(t) {
		t.Run(sc.Name, func(t *testing.T) {
			rep := runBubble(t, sc)
			reports = append(reports, rep)
			if rep.Unreached > 0 {
				t.Errorf("%d of %d registrations did not reach every live node", rep.Unreached, len(rep.Spreads))
			}
			if rep.Undetected > 0 {
				t.Errorf("%d crashed nodes not seen failed by every live node", rep.Undetected)
			}
			bound := SuspicionBound(memberlist.DefaultLANConfig(), rep.Nodes) + 5*time.Second // plus dissemination of the death
			for _, d := range rep.Detections {
				if d > bound {
					t.Errorf("detection took %s, over the bound %s", d, bound)
				}
			}
			if rep.Split > 0 {
				t.Errorf("at the end, %d (observer, node) pairs of live nodes do not see each other alive", rep.Split)
			}
			if sc.Link.Loss == 0 && !hasEvent(sc, scenario.Slow) && rep.FalseFailures > 0 {
				t.Errorf("%d false failures on a lossless network", rep.FalseFailures)
			}
		})
	}
	var b strings.Builder
	_ = scenario.WriteTable(&b, reports)
	t.Logf("tier 1 reports:\n%s", b.String())
	if *flagJSON != "" {
		data, err := json.MarshalIndent(reports, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*flagJSON, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// kinds formats a BytesByKind map, largest first.
func kinds(by map[string]float64) string {
	ks := make([]string, 0, len(by))
	for k := range by {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return by[ks[i]] > by[ks[j]] })
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, by[k]))
	}
	return strings.Join(parts, ", ")
}

func hasEvent(sc scenario.Scenario, k scenario.Kind) bool {
	for _, e := range sc.Events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

var flagValidate = flag.String("sim.validate", "", "sizes at which TestModelValidation compares the model with tier 1, comma-separated (default 100; none under -race)")

// validationBound is the largest relative error of the model's median timing
// predictions (registration to 50 % of nodes, crash detection by all) against tier 1.
const validationBound = 0.20

// tailSlack is the absolute error allowed on the 99 % tail besides validationBound:
// in a bubble with no link latency, tier 1's eager path moves in steps of its
// coalescing window (5 ms), so a 5 ms tail against a 10 ms one is one step, not
// a 100 % error.
const tailSlack = 5 * time.Millisecond

// TestModelValidation runs the convergence and failure scenarios in both tiers at
// the same sizes and seeds, and fails if the model is off by more than
// validationBound on the median spread (time to reach 50 % of nodes), crash
// detection or bytes sent per node; or if its 99 % tail (the median over
// registrations of the time to reach 99 % of nodes) is slower than tier 1's, or its
// 100 % tail differs from tier 1's either way, by more than validationBound or
// tailSlack, whichever is larger. A tier-1 99 % tail slower than the model's is
// logged, not failed: tier 1's eager path sometimes missed more nodes, depending on
// goroutine scheduling (README). The 100 % tail (its median over registrations) is
// bounded only since gossip's forward fix (haveAll): before it, tier 1's 100 % tail
// was bimodal (a node the eager path missed waited for push-pull) and varied from
// run to run more than 20 %; a registration tier 1 leaves unreached is logged.
//
//	go test ./sim -run TestModelValidation -sim.validate 100,500 -v
func TestModelValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("tier-1 runs at 100 nodes take minutes")
	}
	sizes := *flagValidate
	if sizes == "" {
		sizes = validateSize
	}
	if sizes == "" {
		t.Skip("not under -race: run go test ./sim -run TestModelValidation -sim.validate 100,500")
	}
	for _, f := range []string{"testdata/convergence.txt", "testdata/failure.txt"} {
		sc, err := scenario.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range strings.Split(sizes, ",") {
			n, err := strconv.Atoi(s)
			if err != nil || n < 3 {
				t.Fatalf("-sim.validate %q: want sizes ≥ 3", sizes)
			}
			sc.Nodes = n
			t.Run(fmt.Sprintf("%s/N=%d", sc.Name, n), func(t *testing.T) {
				real := runBubble(t, sc)
				m, err := model.Run(sc, model.DefaultParams())
				if err != nil {
					t.Fatal(err)
				}
				e := model.Compare(m, real)
				var b strings.Builder
				_ = scenario.WriteTable(&b, []scenario.Report{real, m})
				t.Logf("%s\nmodel error: %s\nmodel bytes/s/node by kind: %s", b.String(), e, kinds(m.BytesByKind))
				if w := e.Worst(); math.IsNaN(w) {
					t.Errorf("nothing to compare: %s", e)
				} else if w > validationBound {
					t.Errorf("model off by %.0f%% (bound %.0f%%): %s", 100*w, 100*validationBound, e)
				}
				if math.IsNaN(e.Bytes) || math.Abs(e.Bytes) > validationBound {
					t.Errorf("bytes per node: model %.0f, tier 1 %.0f B/s: off by %+.0f%% (bound %.0f%%)",
						m.BytesPerNodeSec, real.BytesPerNodeSec, 100*e.Bytes, 100*validationBound)
				}
				if len(real.Spreads) > 0 {
					_, _, r100 := real.Reg()
					_, _, m100 := m.Reg()
					bound := max(time.Duration(validationBound*float64(r100)), tailSlack)
					if m100-r100 > bound || r100-m100 > bound {
						t.Errorf("100 %% tail: model %s, tier 1 %s: off by more than %s", m100, r100, bound)
					}
					if m.Unreached > 0 {
						t.Errorf("the model left %d of %d registrations unreached", m.Unreached, len(m.Spreads))
					}
					if real.Unreached > 0 {
						// Seen once in eight runs at N = 100 (README): the median above
						// holds; TestReal fails on it at its own sizes.
						t.Logf("tier 1 left %d of %d registrations unreached", real.Unreached, len(real.Spreads))
					}
				}
				if _, r99, _ := real.Reg(); r99 > 0 {
					_, m99, _ := m.Reg()
					bound := max(time.Duration(validationBound*float64(r99)), tailSlack)
					switch d := m99 - r99; {
					case d > bound:
						t.Errorf("99 %% tail: model %s, tier 1 %s: model slower by %s (bound %s)", m99, r99, d, bound)
					case -d > bound:
						// One tier-1 run in four at N = 100 had a burst's misses push its
						// 99 % tail to about 1 s (README): reported, not failed.
						t.Logf("99 %% tail: tier 1 %s, model %s: tier 1's eager path missed more nodes in this run", r99, m99)
					}
				}
			})
		}
	}
}
