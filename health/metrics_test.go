package health

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/definition"
)

// Every probe result and ttl heartbeat counts as a run of its type and status, below
// the anti-flapping thresholds too (the count is of runs, not of reported changes).
func TestManagerCountsRunsByStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		f := &fakeProber{seq: statusLetters("PPC"), status: P}
		m, _ := newFakeManager(t, Config{Registerer: reg}, map[string]*fakeProber{"web": f})
		mustAdd(t, m, definition.Check{ID: "web", TCP: "x:1", Interval: 10 * time.Second, FailuresBeforeCritical: 3})
		mustAdd(t, m, definition.Check{ID: "hb", TTL: time.Minute})
		time.Sleep(35 * time.Second) // three or four runs (random offset < 10 s)
		synctest.Wait()
		if err := m.UpdateTTL("hb", W, "slow"); err != nil {
			t.Fatal(err)
		}
		runs := len(f.callTimes())
		if runs < 3 {
			t.Fatalf("only %d probes ran", runs)
		}
		wantPassing := float64(runs - 1) // one C among them, the rest P
		if got := testutil.ToFloat64(m.metrics.runs.WithLabelValues(definition.TypeTCP, "passing")); got != wantPassing {
			t.Errorf("tcp passing runs = %v, want %v", got, wantPassing)
		}
		if got := testutil.ToFloat64(m.metrics.runs.WithLabelValues(definition.TypeTCP, "critical")); got != 1 {
			t.Errorf("tcp critical runs = %v, want 1 (below the threshold, still a run)", got)
		}
		if got := testutil.ToFloat64(m.metrics.runs.WithLabelValues(definition.TypeTTL, "warning")); got != 1 {
			t.Errorf("ttl warning heartbeats = %v, want 1", got)
		}
		if n, err := testutil.GatherAndCount(reg, "rumor_health_check_duration_seconds"); err != nil || n != 1 {
			t.Errorf("duration histogram series = %d, %v; want 1 (tcp)", n, err)
		}
	})
}
