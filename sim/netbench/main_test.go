package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testnet"
)

func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"size too small", []string{"--nodes", "2"}, `--nodes "2"`},
		{"size not a number", []string{"--nodes", "10,x"}, `--nodes "10,x"`},
		{"no trials", []string{"--trials", "0"}, "--trials 0"},
		{"loss out of range", []string{"--loss", "101"}, "--loss 101"},
		{"zero window", []string{"--steady-window", "0s"}, "--steady-window"},
		{"unknown flag", []string{"--bogus"}, "-bogus"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"negative delay", []string{"--delay", "-1ms"}, "--delay -1ms"},
		{"delay with a rumor binary", []string{"--jitter", "5ms", "--rumor", "/bin/true"}, "drop --rumor"},
		{"loopback without propagation", []string{"--loopback"}, "go with --propagation"},
		{"baseline without propagation", []string{"--baseline"}, "go with --propagation"},
		{"consul without loopback", []string{"--propagation", "--consul", "/bin/true"}, "add --propagation --loopback"},
		{"loopback with a delay", []string{"--propagation", "--loopback", "--delay", "1ms"}, "drop --loopback"},
		{"trace without propagation", []string{"--trace", "t.jsonl"}, "--trace goes with --propagation"},
		{"trace on loopback", []string{"--propagation", "--loopback", "--trace", "t.jsonl"}, "--trace goes with --propagation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(context.Background(), c.args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 mentioning %q", code, stderr.String(), c.want)
			}
		})
	}
}

// TestThreeAgents runs the whole benchmark at its smallest size with short windows
// (root and CI=true only), to keep the engine honest; it checks that every column was
// measured, not how fast.
func TestThreeAgents(t *testing.T) {
	testnet.Require(t)
	bin := filepath.Join(t.TempDir(), "rumor")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/rumor-sd/rumor/cmd/rumor").CombinedOutput(); err != nil {
		t.Fatalf("build rumor: %v\n%s", err, out)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := run(ctx, config{Nodes: 3, ServicesPerNode: 2, Registrations: 3, SteadyWindow: 3 * time.Second,
		LossWindow: 5 * time.Second, LossPercent: 10, Rumor: bin, Progress: &progress})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Nodes != 3 || res.Converge <= 0 || res.Visible50 <= 0 || res.Visible100 < res.Visible50 ||
		res.Visible100P99 < res.Visible100 {
		t.Errorf("spread not measured: %+v", res.Result)
	}
	if res.Detect <= 0 || res.Detect > 5*res.SuspicionBound {
		t.Errorf("crash detection %s outside (0, 5 × bound %s]", res.Detect, res.SuspicionBound)
	}
	if res.BytesPerNodePerSec <= 0 || res.AgentRSS == 0 {
		t.Errorf("idle traffic %.0f B/s or memory %d B not measured", res.BytesPerNodePerSec, res.AgentRSS)
	}
}

// TestPropagationLoopback runs the propagation measurement on three agents on
// 127.0.0.1 (no root needed) and checks that every column was measured, not how fast.
func TestPropagationLoopback(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rumor")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/rumor-sd/rumor/cmd/rumor").CombinedOutput(); err != nil {
		t.Fatalf("build rumor: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	res, err := runLoopback(ctx, bin, nil, 3, 4, &progress)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	res.System = "rumor"
	if res.Nodes != 3 || res.Trials != 4 || res.Wake50 <= 0 || res.Wake99 < res.Wake50 || res.WakeMax < res.Wake99 ||
		res.All50 < res.Wake50 || res.All99 < res.All50 {
		t.Errorf("propagation not measured: %+v", res)
	}
	var table bytes.Buffer
	if err := writePropTable(&table, []propResult{res}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "rumor   loopback  3") {
		t.Errorf("table:\n%s", table.String())
	}
}
