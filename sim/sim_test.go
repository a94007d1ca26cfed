package sim

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTinyScenario runs the whole engine on 3 nodes with short phases: every phase
// must produce a plausible measurement.
func TestTinyScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real-time phases (about 15 s)")
	}
	var progress strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Nodes: 3, ServicesPerNode: 2, Registrations: 3, SteadyWindow: time.Second,
		LossWindow: time.Second, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if res.Visible100 <= 0 || res.Visible50 > res.Visible100 || res.Visible100 > res.Visible100P99 {
		t.Errorf("spread times out of order: %+v", res)
	}
	if res.Detect <= 0 || res.Detect > 3*res.SuspicionBound {
		t.Errorf("detection %s outside (0, 3 × bound %s]", res.Detect, res.SuspicionBound)
	}
	if res.BytesPerNodePerSec <= 0 {
		t.Errorf("idle bandwidth %.1f B/s: gossip sends nothing?", res.BytesPerNodePerSec)
	}
	if !strings.Contains(progress.String(), "crashing one node") {
		t.Errorf("progress lines missing:\n%s", progress.String())
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := Run(context.Background(), Config{Nodes: 2}); err == nil || !strings.Contains(err.Error(), "at least 3") {
		t.Errorf("Run with 2 nodes: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, tt := range []struct {
		p    int
		want time.Duration
	}{{50, 3}, {99, 5}, {1, 1}, {100, 5}} {
		if got := Percentile(ds, tt.p); got != tt.want {
			t.Errorf("Percentile(%d) = %d, want %d", tt.p, got, tt.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	err := WriteTable(&b, []Result{{Nodes: 10, Converge: 1800 * time.Millisecond, Visible50: 180 * time.Millisecond,
		Visible99: 205 * time.Millisecond, Visible100: 205 * time.Millisecond, Visible100P99: 587 * time.Millisecond,
		Detect: 5400 * time.Millisecond, SuspicionBound: 25 * time.Second, BytesPerNodePerSec: 476.4, FalseFailures: 0}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "nodes") {
		t.Fatalf("table:\n%s\nwant a header and one row", b.String())
	}
	if got, want := strings.Fields(lines[1]), []string{"10", "1.8s", "180ms", "205ms", "205ms", "587ms", "5.4s", "25s", "476", "0"}; !slices.Equal(got, want) {
		t.Errorf("row = %q, want %q", got, want)
	}
}
