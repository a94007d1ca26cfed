package agent_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoUIOverlay builds the agent and rumor's command with agent/testdata/noui/ui.go
// in place of agent/ui.go, as scripts/ui-size.sh does to measure what the web UI adds
// to the binary, and checks that package ui is then not linked: the stand-in must
// keep declaring what the rest of the agent uses of ui.go.
func TestNoUIOverlay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(wd, "ui.go"): filepath.Join(wd, "testdata", "noui", "ui.go")}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "overlay.json")
	if err := os.WriteFile(file, overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(goTool, args...)
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("build", "-overlay", file, "-o", os.DevNull, ".")
	deps := run("list", "-overlay", file, "-deps", "../cmd/rumor")
	for line := range strings.Lines(deps) {
		if strings.TrimSpace(line) == "github.com/rumor-sd/rumor/ui" {
			t.Errorf("built with agent/testdata/noui/ui.go, rumor still imports package ui")
		}
	}
	if !strings.Contains(run("list", "-deps", "../cmd/rumor"), "github.com/rumor-sd/rumor/ui\n") {
		t.Errorf("built as shipped, rumor does not import package ui")
	}
}
