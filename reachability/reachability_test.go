package reachability_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/internal/testkit"
	"github.com/rumor-sd/rumor/reachability"
)

// fakeNet answers dials from a table: nil connects, an error fails.
type fakeNet struct {
	mu    sync.Mutex
	errs  map[string]error
	dials map[string]int
}

func (f *fakeNet) dial(_ context.Context, _, addr string) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials[addr]++
	if err := f.errs[addr]; err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	_ = b.Close()
	return a, nil
}

func (f *fakeNet) set(addr string, err error) {
	f.mu.Lock()
	f.errs[addr] = err
	f.mu.Unlock()
}

func (f *fakeNet) count(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials[addr]
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var errTimeout = &net.OpError{Op: "dial", Err: context.DeadlineExceeded}

func TestProbes(t *testing.T) {
	testkit.NoLeaks(t)
	fn := &fakeNet{errs: map[string]error{"10.0.0.3:80": errTimeout, "10.0.0.4:80": syscall.ECONNREFUSED}, dials: map[string]int{}}
	clk := &clock{now: time.Unix(1000, 0)}
	tr, err := reachability.New(reachability.Config{Probe: true, Rate: 1000, Dial: fn.dial, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	defer tr.Close()
	for _, a := range []string{"10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"} {
		if !tr.Reachable(a) {
			t.Fatalf("%s unknown yet, want reachable", a)
		}
	}
	testkit.Eventually(t, 5*time.Second, "the blocked address to be known unreachable", func() bool {
		return !tr.Reachable("10.0.0.3:80")
	})
	testkit.Eventually(t, 5*time.Second, "all three probed", func() bool {
		return fn.count("10.0.0.2:80") == 1 && fn.count("10.0.0.4:80") == 1
	})
	if !tr.Reachable("10.0.0.2:80") || !tr.Reachable("10.0.0.4:80") {
		t.Error("a connectable or refusing address (the host answered) is reported unreachable")
	}
	un := tr.Unreachable()
	if len(un) != 1 || un[0].Addr != "10.0.0.3:80" || un[0].Source != "probe" {
		t.Fatalf("Unreachable = %+v, want 10.0.0.3:80 from a probe", un)
	}
	// Within the trust window nothing is probed again; after it, asking re-probes.
	tr.Reachable("10.0.0.3:80")
	if n := fn.count("10.0.0.3:80"); n != 1 {
		t.Fatalf("probed %d times within the trust window, want 1", n)
	}
	fn.set("10.0.0.3:80", nil) // the firewall rule is removed
	clk.Advance(7 * time.Second)
	tr.Reachable("10.0.0.3:80")
	testkit.Eventually(t, 5*time.Second, "the address to come back", func() bool {
		return tr.Reachable("10.0.0.3:80")
	})
	if len(tr.Unreachable()) != 0 {
		t.Errorf("Unreachable = %+v after it came back", tr.Unreachable())
	}
}

// Without probes, only reports count, and they are forgotten after Forget.
func TestReportsOnly(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	tr, err := reachability.New(reachability.Config{Now: clk.Now, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("must not probe")
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	defer tr.Close()
	tr.Report("10.0.0.3:80", false)
	if tr.Reachable("10.0.0.3:80") || len(tr.Unreachable()) != 1 {
		t.Fatal("a failed connect report is not kept")
	}
	tr.Report("10.0.0.3:80", true)
	if !tr.Reachable("10.0.0.3:80") {
		t.Fatal("a successful connect does not restore it")
	}
	tr.Report("10.0.0.3:80", false)
	clk.Advance(2 * time.Minute)
	if !tr.Reachable("10.0.0.3:80") || len(tr.Unreachable()) != 0 {
		t.Fatal("a stale report is not forgotten")
	}
}

// TestVersion: Version moves with every change of Unreachable's answer (a new
// unreachable address, recovery, another source, the age-out after Forget) and not
// when a result only repeats what is known.
func TestVersion(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	tr, err := reachability.New(reachability.Config{Now: clk.Now, Forget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	v := tr.Version()
	step := func(what string, moves bool, do func()) {
		t.Helper()
		do()
		got := tr.Version()
		if moved := got != v; moved != moves {
			t.Errorf("%s: version %d -> %d, want moved=%v", what, v, got, moves)
		}
		v = got
	}
	step("a reachable address", false, func() { tr.Report("10.0.0.1:80", true) })
	step("an unreachable address", true, func() { tr.Report("10.0.0.2:80", false) })
	step("the same result again, later", false, func() { clk.Advance(10 * time.Second); tr.Report("10.0.0.2:80", false) })
	step("nothing ages out before Forget", false, func() { clk.Advance(40 * time.Second) })
	step("aged out after Forget", true, func() { clk.Advance(30 * time.Second) })
	step("nothing more to age out", false, func() { clk.Advance(time.Hour) })
	step("unreachable again", true, func() { tr.Report("10.0.0.2:80", false) })
	step("recovered", true, func() { tr.Report("10.0.0.2:80", true) })
}

func TestConfig(t *testing.T) {
	if _, err := reachability.New(reachability.Config{Rate: -1}); err == nil {
		t.Fatal("a negative rate was accepted")
	}
}
