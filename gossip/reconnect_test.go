package gossip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// t0 is when the members of the reconnect tests failed.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newReconnectOnly returns a Gossip with just enough set up to drive its reconnect
// schedule by hand: cfg with defaults, and no memberlist.
func newReconnectOnly(t *testing.T, cfg Config) *Gossip {
	t.Helper()
	cfg.NodeName = "self"
	cfg.Store, _ = catalogtest.New(t, catalog.Config{})
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &Gossip{cfg: cfg, reconnect: map[string]*reconnectState{}}
}

// TestReconnectSchedule replays the reconnect schedule of a member that never comes
// back, one ReconnectInterval tick at a time: retried after 1 s, then at most every
// ReconnectMaxBackoff for the first reconnectSlowAfter, then backing off to
// reconnectSlowBackoff and staying there, and forgotten after ReconnectTimeout.
func TestReconnectSchedule(t *testing.T) {
	g := newReconnectOnly(t, Config{ReconnectTimeout: time.Hour})
	cfg := g.cfg
	g.scheduleReconnect("dead", netip.MustParseAddrPort("10.0.0.9:7946"), t0)

	var attempts []time.Duration // since the failure
	for now := t0; now.Sub(t0) <= 2*time.Hour; now = now.Add(cfg.ReconnectInterval) {
		for _, name := range g.dueReconnects(now) {
			attempts = append(attempts, now.Sub(t0))
			g.reconnect[name].inFlight = false // the attempt failed at once
		}
	}
	if len(attempts) == 0 || attempts[0] != time.Second {
		t.Fatalf("first attempt at %v, want 1s after the failure", attempts[:min(1, len(attempts))])
	}
	last := attempts[0]
	for _, at := range attempts[1:] {
		gap := at - last
		switch {
		case last < reconnectSlowAfter && gap > cfg.ReconnectMaxBackoff:
			t.Errorf("attempt at %v came %v after the previous one: want at most %v in the first %v", at, gap, cfg.ReconnectMaxBackoff, reconnectSlowAfter)
		case gap > reconnectSlowBackoff:
			t.Errorf("attempt at %v came %v after the previous one: want at most %v", at, gap, reconnectSlowBackoff)
		}
		last = at
	}
	if gap := attempts[len(attempts)-1] - attempts[len(attempts)-2]; gap != reconnectSlowBackoff {
		t.Errorf("a member failed for long is retried every %v, want %v", gap, reconnectSlowBackoff)
	}
	if last > cfg.ReconnectTimeout+cfg.ReconnectInterval {
		t.Errorf("still retried %v after the failure, past ReconnectTimeout %v", last, cfg.ReconnectTimeout)
	}
	if _, ok := g.reconnect["dead"]; ok {
		t.Error("member still scheduled after ReconnectTimeout")
	}
	// About 150 attempts in the fast phase, then about 2 a minute: not one every 2 s
	// for the whole hour.
	if n := len(attempts); n > 300 {
		t.Errorf("%d attempts in an hour: the slow phase is not slow", n)
	}
}

// TestReconnectBurst checks that at most ReconnectBurst members are attempted per
// tick, the longest-waiting first, and that an attempt still in flight is not repeated.
func TestReconnectBurst(t *testing.T) {
	g := newReconnectOnly(t, Config{})
	cfg := g.cfg
	names := []string{"a", "b", "c", "d", "e"}
	for i, name := range names {
		g.scheduleReconnect(name, netip.MustParseAddrPort("10.0.0.9:7946"), t0.Add(time.Duration(i)*time.Millisecond))
	}
	first := g.dueReconnects(t0.Add(time.Second + time.Minute))
	if len(first) != cfg.ReconnectBurst || first[0] != "a" || first[1] != "b" || first[2] != "c" {
		t.Fatalf("first tick attempted %v, want the %d longest-waiting [a b c]", first, cfg.ReconnectBurst)
	}
	second := g.dueReconnects(t0.Add(time.Second + time.Minute + cfg.ReconnectInterval))
	if len(second) != 2 || second[0] != "d" || second[1] != "e" {
		t.Errorf("second tick attempted %v, want [d e]: a, b and c are still in flight", second)
	}
}
