package sim

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rumor-sd/rumor/sim/scenario"
)

// Tier 1 runs through go test, because testing/synctest needs a *testing.T:
//
//	go test ./sim -run TestReal -sim.scenario testdata/failure.txt -sim.nodes 500 -v
//
// prints the report table; -sim.json FILE also writes the reports as JSON (what
// cmd/rumor-sim reads to print the model's error next to its predictions).
var (
	flagScenario = flag.String("sim.scenario", "", "tier-1 scenario file(s) to run (glob); default: every testdata/*.txt at -sim.nodes")
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
	if pattern == "" {
		pattern = "testdata/*.txt"
		if nodes == 0 {
			nodes = 20
		}
	}
	files, err := filepath.Glob(pattern)
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
