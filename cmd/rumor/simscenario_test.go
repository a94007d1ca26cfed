package main

import (
	"os"
	"path/filepath"
	"testing"
)

// rumor sim --scenario runs the model over a script: a table, plots, and clear
// errors for a bad script or flag.
func TestSimScenario(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.txt")
	if err := os.WriteFile(script, []byte("nodes 30\nduration 20s\nat 1s register 3\nat 2s kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("nodes 30\nduration 20s\nat 1s explode\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runCases(t, nil, []cliCase{
		{"model", []string{"sim", "--scenario", script, "--scenario-nodes", "30,300", "--plots", dir}, 0,
			[]string{"scenario", "s  ", "model", "30", "300"}, []string{"100%", "wrote"}},
		{"json", []string{"sim", "--scenario", script, "--json"}, 0, []string{`"Tier": "model"`}, nil},
		{"bad script", []string{"sim", "--scenario", bad}, 2, nil, []string{"line 3", "explode"}},
		{"bad set", []string{"sim", "--scenario", script, "--set", "Nope=1"}, 2, nil, []string{"no parameter"}},
		{"bad sizes", []string{"sim", "--scenario", script, "--scenario-nodes", "2"}, 2, nil, []string{"at least 3"}},
	})
	if _, err := os.Stat(filepath.Join(dir, "s-spread.svg")); err != nil {
		t.Errorf("plot not written: %v", err)
	}
}
