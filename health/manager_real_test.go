package health

// The Manager with real probes against real local servers, on real time.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/internal/testkit"
)

// lastStatus returns the last status the sink received for id, or 0.
func (s *recSink) lastStatus(id string) catalog.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range slices.Backward(s.events) {
		if e.id == id {
			return e.status
		}
	}
	return 0
}

func TestManagerRealChecks(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	grpcAddr := grpcHealthServer(t)

	// Warm up the libraries' lazily started goroutines before counting.
	runProbe(t, definition.Check{ID: "w", GRPC: grpcAddr, Interval: time.Second})
	runProbe(t, definition.Check{ID: "w", HTTP: srv.URL, Interval: time.Second})
	before := runtime.NumGoroutine()

	sink := &recSink{}
	m, err := New(Config{Sink: sink, EnableScriptChecks: true, MinInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	interval := 50 * time.Millisecond
	defs := []definition.Check{
		{ID: "http", HTTP: srv.URL, Interval: interval, FailuresBeforeCritical: 2},
		{ID: "tcp", TCP: ln.Addr().String(), Interval: interval},
		{ID: "grpc", GRPC: grpcAddr + "/up", Interval: interval},
		{ID: "script", ScriptArgs: writeScript(t, "exit 0"), Interval: interval},
		{ID: "ttl", TTL: time.Minute},
		{ID: "slow-script", ScriptArgs: writeScript(t, "sleep 60"), Interval: time.Second, Timeout: time.Second},
	}
	for _, d := range defs {
		mustAdd(t, m, d)
	}
	if err := m.UpdateTTL("ttl", P, "ok"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"http", "tcp", "grpc", "script", "ttl"} {
		testkit.Eventually(t, 5*time.Second, id+" to report passing", func() bool { return sink.lastStatus(id) == P })
	}
	code.Store(http.StatusInternalServerError)
	testkit.Eventually(t, 5*time.Second, "http to turn critical", func() bool { return sink.lastStatus("http") == C })
	code.Store(http.StatusTooManyRequests)
	testkit.Eventually(t, 5*time.Second, "http to turn warning", func() bool { return sink.lastStatus("http") == W })

	// Close kills the sleeping script and waits for every goroutine it started.
	start := time.Now()
	m.Close()
	if took := time.Since(start); took > slack {
		t.Errorf("Close took %v", took)
	}
	n := len(sink.take())
	testkit.Eventually(t, 5*time.Second, fmt.Sprintf("goroutines back to %d, as before the Manager", before),
		func() bool { return runtime.NumGoroutine() <= before })
	// Every goroutine has exited: nothing can report any more.
	if got := len(sink.take()); got != 0 {
		t.Fatalf("%d Sink calls after Close (%d before)", got, n)
	}
}

func TestManagerManyChecksClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	before := runtime.NumGoroutine()
	sink := &recSink{}
	m, err := New(Config{Sink: sink, MinInterval: time.Millisecond, MaxConcurrent: 8})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		mustAdd(t, m, definition.Check{ID: fmt.Sprint("c", i), TCP: ln.Addr().String(), Interval: 20 * time.Millisecond})
	}
	testkit.Eventually(t, 10*time.Second, "every check to pass", func() bool {
		return len(m.Checks()) == 200 && !slices.ContainsFunc(m.Checks(), func(c catalog.Check) bool { return c.Status != P })
	})
	m.Close()
	testkit.Eventually(t, 5*time.Second, fmt.Sprintf("goroutines back to %d after Close", before),
		func() bool { return runtime.NumGoroutine() <= before })
}
