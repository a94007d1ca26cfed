package testkit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records what a helper reports instead of failing the real test; Fatal ends
// the goroutine, as testing's does.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) fail(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fmt.Sprint(args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any)                 { f.fail(args...); runtime.Goexit() }
func (f *fakeTB) Errorf(format string, args ...any) { f.fail(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Error(args ...any)                 { f.fail(args...) }
func (f *fakeTB) Cleanup(fn func())                 { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Context() context.Context          { return context.Background() }

// run runs body as a test on f and then its cleanups, last registered first.
func (f *fakeTB) run(body func(testing.TB)) []string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(f.cleanups) - 1; i >= 0; i-- {
				f.cleanups[i]()
			}
		}()
		body(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures
}

func TestPoll(t *testing.T) {
	got := (&fakeTB{TB: t}).run(func(tb testing.TB) {
		Poll(tb, 30*time.Millisecond, time.Millisecond, "the port", func() error { return errors.New("connection refused") })
	})
	if len(got) != 1 || !strings.Contains(got[0], "waiting for the port: connection refused") {
		t.Errorf("Poll reported %q, want the condition's last error", got)
	}
}

func TestEventually(t *testing.T) {
	var n int
	took := Eventually(t, 5*time.Second, "the third try", func() bool { n++; return n == 3 })
	if n != 3 || took < 2*PollInterval {
		t.Errorf("Eventually tried %d times in %s, want 3 tries, at least two intervals", n, took)
	}
	got := (&fakeTB{TB: t}).run(func(tb testing.TB) { Eventually(tb, 30*time.Millisecond, "never", func() bool { return false }) })
	if len(got) != 1 || !strings.Contains(got[0], "timed out after 30ms waiting for never") {
		t.Errorf("a condition never met reported %q", got)
	}
}

type runner struct{ started, stopped bool }

func (r *runner) Start(context.Context) error { r.started = true; return nil }
func (r *runner) Shutdown() error             { r.stopped = true; return nil }

func TestRunning(t *testing.T) {
	r := &runner{}
	if got := (&fakeTB{TB: t}).run(func(tb testing.TB) { Running(tb, r, nil) }); len(got) != 0 || !r.started || !r.stopped {
		t.Errorf("Running: failures %q, started %v, stopped %v; want it started and stopped at cleanup", got, r.started, r.stopped)
	}
	r = &runner{}
	if got := (&fakeTB{TB: t}).run(func(tb testing.TB) { Running(tb, r, errors.New("bad config")) }); len(got) != 1 || r.started {
		t.Errorf("Running after a constructor error: %q, started %v", got, r.started)
	}
}

func TestSelfSigned(t *testing.T) {
	c := SelfSigned(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.TLS}}
	srv.StartTLS()
	defer srv.Close()
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}}}
	resp, err := cl.Get(srv.URL)
	if err != nil {
		t.Fatalf("a client trusting Pool: %v", err)
	}
	resp.Body.Close()
	certFile, keyFile := c.Write(t, t.TempDir())
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("written pair does not load: %v", err)
	}
}

func TestNoLeaks(t *testing.T) {
	stop := make(chan struct{})
	got := (&fakeTB{TB: t}).run(func(tb testing.TB) {
		noLeaks(tb, time.Second)
		go func() { <-stop }() // leaks until after the check
	})
	close(stop)
	if len(got) != 1 || !strings.Contains(got[0], "found unexpected goroutines") {
		t.Errorf("a leaked goroutine reported %q", got)
	}
	if got := (&fakeTB{TB: t}).run(func(tb testing.TB) { noLeaks(tb, time.Second) }); len(got) != 0 {
		t.Errorf("no leak reported %q", got)
	}
}
