package sim

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
)

// runBubble runs sc in a synctest bubble and returns its report.
func runBubble(t *testing.T, sc scenario.Scenario) scenario.Report {
	t.Helper()
	var rep scenario.Report
	var err error
	start := time.Now() // outside the bubble: wall-clock time
	synctest.Test(t, func(t *testing.T) {
		var progress strings.Builder
		rep, err = RunReal(context.Background(), sc, RealOptions{Progress: &progress})
		// memberlist's Shutdown does not wait for probes in flight: let them end.
		time.Sleep(time.Minute)
		if err != nil {
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

// TestModelValidation runs the convergence and failure scenarios in both tiers at
// the same sizes and seeds, and fails if the model's median spread or detection is
// off by more than validationBound. The tails (99 %, 100 %) and bytes per node are
// printed, not bounded: the model overestimates the tail and underestimates the
// bytes (README, "Simulator at scale").
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
				t.Logf("%s\nmodel error: %s", b.String(), e)
				if w := e.Worst(); math.IsNaN(w) {
					t.Errorf("nothing to compare: %s", e)
				} else if w > validationBound {
					t.Errorf("model off by %.0f%% (bound %.0f%%): %s", 100*w, 100*validationBound, e)
				}
			})
		}
	}
}
