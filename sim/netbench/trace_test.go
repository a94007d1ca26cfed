package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsAgent serves /metrics with the three eager-path timestamps (0: absent).
func metricsAgent(t *testing.T, name string, sent, recv, applied float64) *client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# HELP something else")
		fmt.Fprintln(w, `rumor_gossip_eager_messages_sent_total{mode="direct"} 3`)
		for name, v := range map[string]float64{"sent": sent, "received": recv, "applied": applied} {
			if v != 0 {
				fmt.Fprintf(w, "rumor_gossip_eager_last_%s_timestamp_seconds %s\n", name, strconv.FormatFloat(v, 'g', -1, 64)) // as client_golang writes it
			}
		}
	}))
	t.Cleanup(srv.Close)
	return newLocalClient(name, strings.TrimPrefix(srv.URL, "http://"))
}

// A trial's hops come from the agents' timestamps relative to the PUT; an agent
// whose last eager change predates the trial is counted apart, and visible on all
// by the agents' clocks is the last apply.
func TestTracerSplitsATrialIntoHops(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	at := func(ms float64) float64 { return float64(start.Unix()) + ms/1000 }
	clients := []*client{
		metricsAgent(t, "h1", at(2), 0, 0),           // the origin: last packet sent 2 ms after the PUT
		metricsAgent(t, "h2", 0, at(3), at(4)),       // received 1 ms after, applied 1 ms later
		metricsAgent(t, "h3", 0, at(5), at(9)),       // received 3 ms after, applied 4 ms later
		metricsAgent(t, "h4", 0, at(-500), at(-499)), // an earlier trial's: piggyback brought this one
	}
	seen := []time.Time{{}, start.Add(6 * time.Millisecond), start.Add(12 * time.Millisecond), start.Add(20 * time.Millisecond)}
	var out bytes.Buffer
	tr := &tracer{clients: clients, out: &out}
	if err := tr.trial(context.Background(), 0, 0, start, seen); err != nil {
		t.Fatal(err)
	}
	var row traceRow
	if err := json.Unmarshal(out.Bytes(), &row); err != nil {
		t.Fatalf("trace line %q: %v", out.String(), err)
	}
	near := func(got, want float64) bool { return got > want-2 && got < want+2 } // µs: float seconds round
	if row.Origin != "h1" || !near(row.SentUS, 2000) || len(row.Agents) != 2 || len(row.Missing) != 1 || row.Missing[0] != "h4" {
		t.Errorf("row = %+v", row)
	}
	if h3 := row.Agents["h3"]; !near(h3[0], 5000) || !near(h3[1], 9000) || !near(h3[2], 12000) {
		t.Errorf("h3 = %v, want 5000, 9000, 12000 µs", h3)
	}
	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	for _, c := range []struct {
		what      string
		got, want []time.Duration
	}{
		{"sent", tr.sent, []time.Duration{2 * time.Millisecond}},
		{"network", tr.net, []time.Duration{time.Millisecond, 3 * time.Millisecond}},
		{"apply", tr.apply, []time.Duration{time.Millisecond, 4 * time.Millisecond}},
		{"answer", tr.answer, []time.Duration{2 * time.Millisecond, 3 * time.Millisecond}},
		// h4's apply is unknown: its consumer-visible time stands in.
		{"applied on all", tr.appliedAll, []time.Duration{20 * time.Millisecond}},
		{"seen on all", tr.seenAll, []time.Duration{20 * time.Millisecond}},
	} {
		if len(c.got) != len(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
			continue
		}
		for i := range c.got {
			if round(c.got[i]) != c.want[i] {
				t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
			}
		}
	}
	if tr.notEager != 1 {
		t.Errorf("notEager = %d, want 1", tr.notEager)
	}
	var sum bytes.Buffer
	tr.summary(&sum)
	lines := map[string]string{}
	for _, l := range strings.Split(sum.String(), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "   "); ok {
			lines[k] = strings.TrimSpace(v)
		}
	}
	for what, want := range map[string]string{
		"visible on all, agent-side (last agent's apply)":          "20.0 / 20.0 / 20.0 ms",
		"received → applied (gossip inbox, worker, catalog apply)": "1.0 / 4.0 / 4.0 ms",
	} {
		if lines[what] != want {
			t.Errorf("summary's %q = %q, want %q:\n%s", what, lines[what], want, sum.String())
		}
	}
	if !strings.Contains(sum.String(), "another path than the eager one: 1") {
		t.Errorf("summary does not count h4:\n%s", sum.String())
	}
}
