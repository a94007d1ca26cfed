package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// event is one Sink call, stamped with the (bubble) time it happened.
type event struct {
	at     time.Time
	id     string
	status catalog.Status
	output string
}

// recSink records Sink calls.
type recSink struct {
	mu     sync.Mutex
	events []event
}

func (s *recSink) SetCheckStatus(id string, status catalog.Status, output string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, event{time.Now(), id, status, output})
}

// take returns the events recorded since the last take.
func (s *recSink) take() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events
	s.events = nil
	return e
}

func statuses(es []event) string {
	var ss []catalog.Status
	for _, e := range es {
		ss = append(ss, e.status)
	}
	return letters(ss)
}

// fakeProber returns scripted results and records when it ran.
type fakeProber struct {
	mu      sync.Mutex
	status  catalog.Status   // result once seq is used up
	seq     []catalog.Status // results to return first, in order
	output  func(run int) string
	hold    time.Duration // how long a probe takes, unless its context ends first
	calls   []time.Time
	ctxErrs []error // the probe context's error when each probe returned

	running *atomic.Int32 // shared between probers to measure concurrency
	maxRun  *atomic.Int32
}

func (f *fakeProber) probe(ctx context.Context) (catalog.Status, string) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	run := len(f.calls)
	st := f.status
	if len(f.seq) > 0 {
		st, f.seq = f.seq[0], f.seq[1:]
	}
	hold := f.hold
	f.mu.Unlock()
	if f.running != nil {
		n := f.running.Add(1)
		for m := f.maxRun.Load(); n > m && !f.maxRun.CompareAndSwap(m, n); m = f.maxRun.Load() {
		}
		defer f.running.Add(-1)
	}
	if hold > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
	}
	f.mu.Lock()
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	f.mu.Unlock()
	out := st.String()
	if f.output != nil {
		out = f.output(run)
	}
	return st, out
}

func (f *fakeProber) set(s catalog.Status) {
	f.mu.Lock()
	f.status = s
	f.mu.Unlock()
}

func (f *fakeProber) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

// newFakeManager returns a Manager whose interval checks run the fake prober
// registered under their ID (a passing one when none is), closed at cleanup.
func newFakeManager(t *testing.T, cfg Config, fakes map[string]*fakeProber) (*Manager, *recSink) {
	t.Helper()
	sink := &recSink{}
	if cfg.Sink == nil {
		cfg.Sink = sink
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var mu sync.Mutex
	m.proberFor = func(d *definition.Check) prober {
		mu.Lock()
		defer mu.Unlock()
		f, ok := fakes[d.ID]
		if !ok {
			f = &fakeProber{status: P}
		}
		return f
	}
	t.Cleanup(func() { m.Close() })
	return m, sink
}

func mustAdd(t *testing.T, m *Manager, d definition.Check) {
	t.Helper()
	if err := m.Add(d); err != nil {
		t.Fatalf("Add(%s): %v", d.ID, err)
	}
}

func TestManagerThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{seq: statusLetters("PCCCPP"), status: P}
		m, sink := newFakeManager(t, Config{}, map[string]*fakeProber{"web": f})
		mustAdd(t, m, definition.Check{ID: "web", TCP: "x:1", Interval: 10 * time.Second,
			SuccessBeforePassing: 2, FailuresBeforeCritical: 3})
		time.Sleep(70 * time.Second) // seven runs at most (random offset < 10 s)
		synctest.Wait()
		// P reported at once (first result); C C below the threshold; C reaches it;
		// P below the success threshold; P reaches it.
		if got, want := statuses(sink.take()), "PCP"; got != want {
			t.Fatalf("reported %s, want %s", got, want)
		}
		if calls := f.callTimes(); len(calls) < 6 {
			t.Fatalf("%d probes in 70 s at a 10 s interval", len(calls))
		}
	})
}

func TestManagerSpreadsAndRepeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := map[string]*fakeProber{}
		for i := range 20 {
			fakes[fmt.Sprint("c", i)] = &fakeProber{status: P}
		}
		m, _ := newFakeManager(t, Config{}, fakes)
		t0 := time.Now()
		for id := range fakes {
			mustAdd(t, m, definition.Check{ID: id, TCP: "x:1", Interval: 10 * time.Second})
		}
		time.Sleep(35 * time.Second)
		synctest.Wait()
		firsts := map[time.Duration]bool{}
		for id, f := range fakes {
			calls := f.callTimes()
			if len(calls) < 3 {
				t.Fatalf("%s: %d probes in 35 s, want ≥ 3", id, len(calls))
			}
			first := calls[0].Sub(t0)
			if first < 0 || first >= 10*time.Second {
				t.Errorf("%s: first probe after %v, want within the 10 s interval", id, first)
			}
			firsts[first] = true
			for i := 1; i < len(calls); i++ {
				if gap := calls[i].Sub(calls[i-1]); gap != 10*time.Second {
					t.Errorf("%s: probes %v apart, want 10s", id, gap)
				}
			}
		}
		if len(firsts) < 10 {
			t.Errorf("20 checks made their first probe at only %d distinct offsets: not spread", len(firsts))
		}
	})
}

func TestManagerMinInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{status: P}
		m, _ := newFakeManager(t, Config{MinInterval: time.Second}, map[string]*fakeProber{"x": f})
		mustAdd(t, m, definition.Check{ID: "x", TCP: "x:1", Interval: 10 * time.Millisecond})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := len(f.callTimes()); n > 6 {
			t.Fatalf("%d probes in 5 s: the 10 ms interval was not raised to 1 s", n)
		}
	})
}

func TestManagerTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, sink := newFakeManager(t, Config{}, nil)
		t0 := time.Now()
		mustAdd(t, m, definition.Check{ID: "hb", ServiceID: "web", TTL: 10 * time.Second, Status: P})

		time.Sleep(5 * time.Second)
		if err := m.UpdateTTL("hb", P, "alive"); err != nil {
			t.Fatalf("UpdateTTL: %v", err)
		}
		// Status unchanged; the output is new and none was ever sent: reported at once.
		if got := sink.take(); len(got) != 1 || got[0].status != P || got[0].output != "alive" {
			t.Fatalf("after heartbeat: %+v", got)
		}
		time.Sleep(9*time.Second + 999*time.Millisecond) // just before 5 s + TTL
		synctest.Wait()
		if got := sink.take(); len(got) != 0 {
			t.Fatalf("expired early: %+v", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		got := sink.take()
		if len(got) != 1 || got[0].status != C || got[0].at.Sub(t0) != 15*time.Second {
			t.Fatalf("expiry: %+v, want one critical at 15s", got)
		}
		if want := "TTL expired (last output before timeout follows): alive"; got[0].output != want {
			t.Errorf("expiry output %q, want %q", got[0].output, want)
		}
		// No heartbeat: it stays critical and is not reported again.
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := sink.take(); len(got) != 0 {
			t.Fatalf("reported again while expired: %+v", got)
		}
		// A heartbeat brings it back, with whatever status it carries.
		if err := m.UpdateTTL("hb", W, "slow"); err != nil {
			t.Fatalf("UpdateTTL: %v", err)
		}
		if got := statuses(sink.take()); got != "W" {
			t.Fatalf("after warn heartbeat: %s, want W", got)
		}
		if c, err := m.Check("hb"); err != nil || c.Status != W || c.Output != "slow" || c.Type != definition.TypeTTL {
			t.Fatalf("Check = %+v, %v", c, err)
		}
	})
}

func TestManagerTTLNeverHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, sink := newFakeManager(t, Config{}, nil)
		t0 := time.Now()
		mustAdd(t, m, definition.Check{ID: "hb", TTL: 30 * time.Second, Status: P})
		time.Sleep(time.Minute)
		synctest.Wait()
		got := sink.take()
		if len(got) != 1 || got[0].status != C || got[0].output != "TTL expired" || got[0].at.Sub(t0) != 30*time.Second {
			t.Fatalf("got %+v, want critical \"TTL expired\" at 30s", got)
		}
	})
}

func TestManagerUpdateTTLErrors(t *testing.T) {
	// No bubble: subtests cannot run inside one, and nothing here waits.
	m, sink := newFakeManager(t, Config{}, nil)
	mustAdd(t, m, definition.Check{ID: "hb", TTL: time.Minute})
	mustAdd(t, m, definition.Check{ID: "web", HTTP: "http://x/", Interval: time.Hour})
	tests := []struct {
		name   string
		id     string
		status catalog.Status
		want   error
		text   string
	}{
		{"unknown id", "nope", P, ErrUnknownCheck, `"nope": unknown check`},
		{"not a ttl check", "web", P, ErrUnknownCheck, "is a http check, not a ttl check"},
		{"maintenance", "hb", catalog.StatusMaintenance, catalog.ErrInvalid, "want passing, warning or critical"},
		{"zero status", "hb", 0, catalog.ErrInvalid, "invalid(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.UpdateTTL(tt.id, tt.status, "x")
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("UpdateTTL: %v, want %v containing %q", err, tt.want, tt.text)
			}
		})
	}
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("a failed UpdateTTL changed something: %+v", got)
	}
}

func TestManagerDeregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{status: P}
		var mu sync.Mutex
		var calls []time.Time
		m, sink := newFakeManager(t, Config{OnDeregister: func(serviceID string) {
			mu.Lock()
			calls = append(calls, time.Now())
			mu.Unlock()
			if serviceID != "web" {
				t.Errorf("OnDeregister(%q), want web", serviceID)
			}
		}}, map[string]*fakeProber{"web-check": f})
		mustAdd(t, m, definition.Check{ID: "web-check", ServiceID: "web", TCP: "x:1", Interval: 10 * time.Second,
			DeregisterCriticalServiceAfter: time.Minute})
		time.Sleep(10 * time.Second)
		if got := statuses(sink.take()); got != "P" {
			t.Fatalf("first run reported %s, want P", got)
		}
		f.set(C)
		time.Sleep(10 * time.Second)
		ev := sink.take()
		if statuses(ev) != "C" {
			t.Fatalf("reported %s, want C", statuses(ev))
		}
		critSince := ev[0].at

		// A spell that recovers in time does not deregister.
		time.Sleep(time.Until(critSince.Add(25 * time.Second))) // between two probes
		f.set(P)
		time.Sleep(10 * time.Second)
		f.set(C)
		time.Sleep(10 * time.Second)
		ev = sink.take()
		if statuses(ev) != "PC" {
			t.Fatalf("reported %s, want PC", statuses(ev))
		}
		critSince = ev[1].at
		time.Sleep(time.Until(critSince.Add(time.Minute - time.Millisecond)))
		synctest.Wait()
		mu.Lock()
		if len(calls) != 0 {
			t.Fatalf("deregistered early: %v", calls)
		}
		mu.Unlock()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != 1 || calls[0].Sub(critSince) != time.Minute {
			t.Fatalf("OnDeregister calls %v, want one at %v", calls, critSince.Add(time.Minute))
		}
	})
}

// An initially critical check that never passes is deregistered too (Consul counts
// the critical time from registration), and OnDeregister may call Remove.
func TestManagerDeregisterFromStartAndRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{status: C}
		var m *Manager
		var got atomic.Int32
		m, _ = newFakeManager(t, Config{OnDeregister: func(serviceID string) {
			got.Add(1)
			if err := m.Remove("svc-check"); err != nil {
				t.Errorf("Remove from OnDeregister: %v", err)
			}
		}}, map[string]*fakeProber{"svc-check": f})
		mustAdd(t, m, definition.Check{ID: "svc-check", ServiceID: "svc", TCP: "x:1", Interval: 10 * time.Second,
			DeregisterCriticalServiceAfter: 30 * time.Second})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got.Load() != 1 {
			t.Fatalf("OnDeregister called %d times, want 1", got.Load())
		}
		if _, err := m.Check("svc-check"); !errors.Is(err, ErrUnknownCheck) {
			t.Fatalf("check still there after Remove: %v", err)
		}
	})
}

func TestManagerOutputRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{status: P, output: func(run int) string { return fmt.Sprint("run ", run) }}
		m, sink := newFakeManager(t, Config{OutputInterval: time.Minute}, map[string]*fakeProber{"chatty": f})
		mustAdd(t, m, definition.Check{ID: "chatty", TCP: "x:1", Interval: time.Second})
		time.Sleep(5*time.Minute + 500*time.Millisecond)
		synctest.Wait()
		ev := sink.take()
		// The status change at the first run, then one output report per minute.
		if len(ev) < 5 || len(ev) > 6 {
			t.Fatalf("%d reports in 5 min of a 1 s check with changing output, want 5–6: %+v", len(ev), ev)
		}
		for i := 1; i < len(ev); i++ {
			if gap := ev[i].at.Sub(ev[i-1].at); gap < time.Minute {
				t.Errorf("output-only reports %v apart, want ≥ 1m", gap)
			}
		}
		// The deferred report carries the newest output of its moment.
		last := ev[len(ev)-1]
		if runs := len(f.callTimes()); !strings.HasPrefix(last.output, "run ") || last.output == "run 1" || runs < 300 {
			t.Errorf("last report %q after %d runs", last.output, runs)
		}

		// A status change is not held back.
		f.set(C)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := statuses(sink.take()); got != "C" {
			t.Fatalf("status change: reported %s, want C at once", got)
		}
	})
}

func TestManagerAddReplace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, sink := newFakeManager(t, Config{}, nil)
		var built atomic.Int32
		inner := m.proberFor
		m.proberFor = func(d *definition.Check) prober { built.Add(1); return inner(d) }

		def := definition.Check{ID: "web", TCP: "x:1", Interval: 10 * time.Second, Header: map[string][]string{}}
		mustAdd(t, m, def)
		time.Sleep(10 * time.Second)
		if got := statuses(sink.take()); got != "P" {
			t.Fatalf("reported %s, want P", got)
		}

		// The same definition again (an empty map is the same as none): nothing restarts.
		def.Header = nil
		mustAdd(t, m, def)
		if built.Load() != 1 {
			t.Fatalf("an unchanged definition restarted the check")
		}

		// A changed definition restarts it but keeps the reported status.
		def.Notes = "now with notes"
		mustAdd(t, m, def)
		if built.Load() != 2 {
			t.Fatalf("a changed definition did not restart the check")
		}
		if c, _ := m.Check("web"); c.Status != P || c.Notes != "now with notes" {
			t.Fatalf("after replace: %+v, want passing with the new notes", c)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := sink.take(); len(got) != 0 {
			t.Fatalf("replacing reported %+v, want nothing (still passing)", got)
		}
		if cs := m.Checks(); len(cs) != 1 || cs[0].ID != "web" {
			t.Fatalf("Checks() = %+v", cs)
		}
	})
}

func TestManagerRemoveCancelsProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{status: C, hold: time.Hour}
		m, sink := newFakeManager(t, Config{}, map[string]*fakeProber{"slow": f})
		mustAdd(t, m, definition.Check{ID: "slow", TCP: "x:1", Interval: time.Hour, Timeout: time.Hour})
		time.Sleep(time.Hour) // the first probe has started and holds
		synctest.Wait()
		if len(f.callTimes()) != 1 {
			t.Fatalf("%d probes started, want 1", len(f.callTimes()))
		}
		if err := m.Remove("slow"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		synctest.Wait()
		f.mu.Lock()
		errs := f.ctxErrs
		f.mu.Unlock()
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
			t.Fatalf("probe context errors %v, want [context.Canceled] right after Remove", errs)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := sink.take(); len(got) != 0 {
			t.Fatalf("Sink called after Remove: %+v", got)
		}
		if err := m.Remove("slow"); !errors.Is(err, ErrUnknownCheck) {
			t.Fatalf("second Remove: %v, want ErrUnknownCheck", err)
		}
	})
}

func TestManagerProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{status: C, hold: time.Hour}
		m, _ := newFakeManager(t, Config{}, map[string]*fakeProber{"slow": f})
		mustAdd(t, m, definition.Check{ID: "slow", TCP: "x:1", Interval: 10 * time.Second, Timeout: 3 * time.Second})
		time.Sleep(time.Minute)
		synctest.Wait()
		calls := f.callTimes()
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(calls) < 5 {
			t.Fatalf("%d probes in a minute: a hanging probe blocked the schedule", len(calls))
		}
		for i, err := range f.ctxErrs {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("probe %d context: %v, want DeadlineExceeded", i, err)
			}
		}
	})
}

func TestManagerConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, maxRun atomic.Int32
		fakes := map[string]*fakeProber{}
		for i := range 10 {
			fakes[fmt.Sprint("c", i)] = &fakeProber{status: P, hold: 5 * time.Second, running: &running, maxRun: &maxRun}
		}
		m, _ := newFakeManager(t, Config{MaxConcurrent: 3}, fakes)
		for id := range fakes {
			mustAdd(t, m, definition.Check{ID: id, TCP: "x:1", Interval: 10 * time.Second})
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := maxRun.Load(); got != 3 {
			t.Fatalf("at most %d probes ran at once, want exactly the bound 3", got)
		}
		for id, f := range fakes {
			if len(f.callTimes()) < 5 {
				t.Errorf("%s: only %d probes in 2 min: starved", id, len(f.callTimes()))
			}
		}
	})
}

func TestManagerScriptChecksRefused(t *testing.T) {
	def := definition.Check{ID: "s", ScriptArgs: []string{"/bin/true"}, Interval: time.Hour}
	m, _ := newFakeManager(t, Config{}, nil)
	err := m.Add(def)
	if !errors.Is(err, definition.ErrScriptChecksDisabled) || !strings.Contains(err.Error(), "--enable-script-checks") {
		t.Fatalf("Add script check: %v, want definition.ErrScriptChecksDisabled naming --enable-script-checks", err)
	}
	if _, err := m.Check("s"); !errors.Is(err, ErrUnknownCheck) {
		t.Fatalf("refused check was added: %v", err)
	}
	m2, _ := newFakeManager(t, Config{EnableScriptChecks: true}, nil)
	if err := m2.Add(def); err != nil {
		t.Fatalf("Add with scripts enabled: %v", err)
	}
}

func TestManagerAddInvalid(t *testing.T) {
	m, _ := newFakeManager(t, Config{}, nil)
	err := m.Add(definition.Check{ID: "x", HTTP: "http://a/"})
	if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), `health: add check "x"`) ||
		!strings.Contains(err.Error(), "interval") {
		t.Fatalf("Add: %v", err)
	}
}

func TestNewConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Sink is required") {
		t.Errorf("New without Sink: %v", err)
	}
	if _, err := New(Config{Sink: &recSink{}, MaxConcurrent: -1}); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("New with negative MaxConcurrent: %v", err)
	}
	cfg := Config{Sink: &recSink{}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if cfg.MaxConcurrent != 0 || cfg.Logger != nil {
		t.Error("New mutated the caller's Config")
	}
	if m.cfg.MaxConcurrent != DefaultMaxConcurrent || m.cfg.MinInterval != DefaultMinInterval || m.cfg.OutputInterval != DefaultOutputInterval {
		t.Errorf("defaults not applied: %+v", m.cfg)
	}
}

func TestManagerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := map[string]*fakeProber{"slow": {status: P, hold: time.Hour}}
		m, sink := newFakeManager(t, Config{}, fakes)
		mustAdd(t, m, definition.Check{ID: "slow", TCP: "x:1", Interval: 10 * time.Second, Timeout: 10 * time.Second})
		mustAdd(t, m, definition.Check{ID: "ttl", TTL: time.Minute})
		time.Sleep(10 * time.Second) // a probe is in flight
		// Close cancels it and returns only when every goroutine has exited; the
		// bubble would panic at the end if one were left blocked.
		m.Close()
		m.Close() // idempotent
		if err := m.Add(definition.Check{ID: "late", TTL: time.Minute}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Add after Close: %v, want ErrClosed", err)
		}
		if err := m.UpdateTTL("ttl", P, ""); !errors.Is(err, ErrUnknownCheck) {
			t.Fatalf("UpdateTTL after Close: %v, want ErrUnknownCheck", err)
		}
		time.Sleep(time.Hour)
		if got := sink.take(); len(got) != 0 {
			t.Fatalf("Sink called after Close: %+v", got)
		}
	})
}
