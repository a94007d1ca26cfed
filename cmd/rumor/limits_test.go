package main

import (
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/agent"
)

// TestLimitFlags: --max-services, --max-checks and --max-checks-per-service (and
// their RUMOR_* variables) set the agent's limits; unset, the agent's defaults
// apply; negative ones are a usage error. Issue 11, item 9.
func TestLimitFlags(t *testing.T) {
	cfg, _, err := resolve(t, map[string]string{"RUMOR_MAX_CHECKS": "50000"}, "--dev", "--max-services", "30000", "--max-checks-per-service", "8")
	if err != nil {
		t.Fatal(err)
	}
	if want := (agent.Limits{MaxServices: 30000, MaxChecks: 50000, MaxChecksPerService: 8}); cfg.Limits != want {
		t.Errorf("limits = %+v, want %+v", cfg.Limits, want)
	}
	if cfg, _, err := resolve(t, nil, "--dev"); err != nil || cfg.Limits != (agent.Limits{}) {
		t.Errorf("limits without flags = %+v, %v; want zero (the agent's defaults)", cfg.Limits, err)
	}
	if r := rumor(t, nil, "agent", "--dev", "--max-checks", "-1"); r.code != 2 || !strings.Contains(r.stderr, "--max-checks -1: must not be negative") {
		t.Errorf("a negative limit: exit %d, stderr:\n%s\nwant a usage error (2) naming it", r.code, r.stderr)
	}
}
