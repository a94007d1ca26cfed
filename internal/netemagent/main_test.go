package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
)

// TestParse: the `rumor agent` flags the namespace tests use, and the delay's.
func TestParse(t *testing.T) {
	cfg, delay, _, _, err := parse([]string{"agent", "--node", "h1", "--bind", "10.0.0.1:7946", "--data-dir", "/tmp/d",
		"--http-addr", "127.0.0.1:8500", "--reap-after", "20s", "--retry-join", "10.0.0.2", "--retry-join", "10.0.0.3",
		"--log-level", "warn", "--delay", "30ms", "--jitter", "20ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "h1" || cfg.BindAddr != "10.0.0.1" || cfg.BindPort != 7946 || cfg.DataDir != "/tmp/d" ||
		cfg.ReapAfter != 20*time.Second || len(cfg.RetryJoin) != 2 || delay.Latency != 30*time.Millisecond || delay.Jitter != 20*time.Millisecond {
		t.Errorf("parsed %+v, delay %+v", cfg, delay)
	}
	for _, bad := range [][]string{{"--delay", "-1ms"}, {"--bind", "10.0.0.1:x"}, {"--log-level", "loud"}, {"extra"}, {"--bogus"}} {
		if _, _, _, _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("parse(%q) accepted it", bad)
		}
	}
}

// TestRunDelaysGossip runs the test agent on loopback until its context ends: it
// starts, says its gossip is delayed, and leaves cleanly.
func TestRunDelaysGossip(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--node", "t1", "--bind", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--http-addr", "127.0.0.1:0", "--delay", "5ms"}, &out)
	}()
	testkit.Eventually(t, 20*time.Second, "the agent to say its gossip is delayed", func() bool {
		return strings.Contains(out.String(), "debug gossip delay is on")
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d:\n%s", code, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not stop")
	}
}
