package scenario

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	sc, err := Parse(strings.NewReader(`
name demo   # a comment
nodes 50
seed 7
services 3
link loss=5% latency=2ms jitter=1ms
duration 60s
at 10s heal
at 1s register 20
at 5s kill 10%
at 6s slow 2 300ms
at 7s link loss=0.2 dup=1% bw=125000
at 0s change 10 3600s
`), "file")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "demo" || sc.Nodes != 50 || sc.Seed != 7 || sc.Services != 3 || sc.Duration != time.Minute {
		t.Errorf("header = %+v", sc)
	}
	if want := (Link{Loss: 0.05, Latency: 2 * time.Millisecond, Jitter: time.Millisecond}); sc.Link != want {
		t.Errorf("link = %+v, want %+v", sc.Link, want)
	}
	var kinds []Kind
	for _, e := range sc.Events {
		kinds = append(kinds, e.Kind)
	}
	if got, want := kinds, []Kind{Change, Register, Kill, Slow, SetLink, Heal}; strings.Join(toS(got), ",") != strings.Join(toS(want), ",") {
		t.Errorf("events in order %v, want %v", got, want)
	}
	if k := sc.Events[2]; k.N(50) != 5 || k.Share != 0.1 {
		t.Errorf("kill 10%% of 50 = %d (%+v), want 5", k.N(50), k)
	}
	if l := sc.Events[4].Link; l.Loss != 0.2 || l.Duplicate != 0.01 || l.Bandwidth != 125000 {
		t.Errorf("link loss=0.2 dup=1%% bw=125000 parsed as %+v", l)
	}
}

func toS(ks []Kind) []string {
	var out []string
	for _, k := range ks {
		out = append(out, string(k))
	}
	return out
}

// Bad scripts fail with the line and what is wrong.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ name, script, want string }{
		{"no nodes", "duration 1s", "nodes"},
		{"two nodes", "nodes 2\nduration 1s", "N ≥ 3"},
		{"no duration", "nodes 5", "duration"},
		{"unknown directive", "nodes 5\nduration 1s\nfoo 1", "line 3: unknown directive"},
		{"unknown event", "nodes 5\nduration 1s\nat 1s explode", "line 3: explode: unknown event"},
		{"bad share", "nodes 5\nduration 1s\nat 1s kill 150%", "not a share"},
		{"bad loss", "nodes 5\nlink loss=2\nduration 1s", "loss"},
		{"bad dup", "nodes 5\nlink dup=-1%\nduration 1s", "dup"},
		{"bad bandwidth", "nodes 5\nlink bw=fast\nduration 1s", "bw"},
		{"bad duration", "nodes 5\nduration soon", "not a duration"},
		{"event after end", "nodes 5\nduration 1s\nat 2s heal", "after the duration"},
		{"missing args", "nodes 5\nduration 1s\nat 1s register", "takes 1 argument"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.script), "x")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Every checked-in scenario parses.
func TestCheckedInScenarios(t *testing.T) {
	for _, f := range []string{"convergence", "failure", "partition", "lossy-1", "lossy-5", "lossy-10", "lossy-20",
		"churn", "mass-registration", "bandwidth", "slow-node"} {
		if _, err := Load("../testdata/" + f + ".txt"); err != nil {
			t.Error(err)
		}
	}
}

func TestSpreadOf(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	ds := []time.Duration{0, ms(100), ms(200), ms(300)}
	if got, want := SpreadOf(ds, 4), (Spread{T50: ms(100), T99: ms(300), T100: ms(300)}); got != want {
		t.Errorf("SpreadOf(all 4) = %+v, want %+v", got, want)
	}
	// One of five never got it: 100 % is never reached.
	if got := SpreadOf(ds, 5); got.T100 != 0 || got.T50 != ms(200) {
		t.Errorf("SpreadOf(4 of 5) = %+v, want T50 200ms, T100 0", got)
	}
}
