// Package reachability keeps this agent's local knowledge of which service instances
// it can reach: the firewall problem, where a consumer discovers an instance its
// network cannot reach. It learns from the local proxy's connect results and, when
// enabled, from lazy TCP probes of the instances consumers ask about (at most Rate
// per second, each result trusted for Trust, like Tailscale's 6.5 s), and answers
// whether an address ("ip:port") is reachable from here.
//
// It never decides health: an unreachable instance is unreachable from this host
// only, and nothing of it is gossiped. Answers put reachable instances first and may
// leave the others out when a consumer asks (?reachable).
//
// # Concurrency
//
// A Tracker's methods are safe for concurrent use and never block on the network:
// probes run on goroutines the Tracker owns (at most MaxInflight at once), started by
// Start and stopped by Close.
//
// # Testing
//
// Tests give the Tracker a fake Dial and read its state.
package reachability

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// Config configures a Tracker. The zero value of every field means its default.
type Config struct {
	// Probe enables lazy TCP probes of the addresses asked about whose state is
	// unknown or older than Trust (--probe-reachability). Default off: only the
	// proxy's connect results are known.
	Probe bool
	// Rate caps probes per second. Default 10.
	Rate float64
	// Trust is how long a result stands before an address asked about is probed
	// again. Default 6.5s.
	Trust time.Duration
	// Forget drops a result not refreshed for this long (without probes, the proxy's
	// results are the only ones, and an address it stopped using must not stay
	// unreachable for ever). Default 1m.
	Forget time.Duration
	// ProbeTimeout bounds one probe. Default 1s.
	ProbeTimeout time.Duration
	// MaxInflight caps concurrent probes. Default 10.
	MaxInflight int
	// MaxEntries caps the addresses remembered; beyond it the oldest go. Default 10000.
	MaxEntries int
	// Dial connects for a probe. Default: net.Dialer's DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives changes of state at debug level. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Entry is what the Tracker knows of one address.
type Entry struct {
	Addr      string
	Reachable bool
	// Since is when the address last changed state (or was first seen).
	Since time.Time
	// Checked is when the last result came in.
	Checked time.Time
	// Source is "proxy" or "probe": where the last result came from.
	Source string
}

// Tracker is the agent's reachability knowledge. Create it with New.
type Tracker struct {
	cfg Config

	mu      sync.Mutex
	entries map[string]*Entry
	queue   []string        // addresses to probe, oldest first
	queued  map[string]bool // members of queue and probes in flight
	// version moves whenever Unreachable's answer may have changed other than by a
	// newer Checked time (see Version); expires is when the first unreachable entry
	// not refreshed since falls out of that answer by age (zero: none will).
	version uint64
	expires time.Time

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New returns a Tracker; probes start with Start.
func New(cfg Config) (*Tracker, error) {
	if cfg.Rate < 0 || cfg.Trust < 0 || cfg.Forget < 0 || cfg.ProbeTimeout < 0 || cfg.MaxInflight < 0 || cfg.MaxEntries < 0 {
		return nil, errors.New("reachability: negative setting")
	}
	cfg.Rate = cmp.Or(cfg.Rate, 10)
	cfg.Trust = cmp.Or(cfg.Trust, 6500*time.Millisecond)
	cfg.Forget = cmp.Or(cfg.Forget, time.Minute)
	cfg.ProbeTimeout = cmp.Or(cfg.ProbeTimeout, time.Second)
	cfg.MaxInflight = cmp.Or(cfg.MaxInflight, 10)
	cfg.MaxEntries = cmp.Or(cfg.MaxEntries, 10000)
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Tracker{cfg: cfg, entries: map[string]*Entry{}, queued: map[string]bool{},
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}, nil
}

// Start runs the probe loop when probes are enabled.
func (t *Tracker) Start() {
	if t.cfg.Probe {
		t.wg.Go(t.loop)
	}
}

// Close stops probing and waits for the probes in flight. It is idempotent.
func (t *Tracker) Close() error {
	t.once.Do(t.cancel)
	t.wg.Wait()
	return nil
}

// Probing reports whether probes are enabled.
func (t *Tracker) Probing() bool { return t.cfg.Probe }

// Report records a connect result for addr (from the proxy).
func (t *Tracker) Report(addr string, reachable bool) { t.record(addr, reachable, "proxy") }

func (t *Tracker) record(addr string, ok bool, source string) {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[addr]
	if e == nil {
		if len(t.entries) >= t.cfg.MaxEntries {
			t.evictLocked()
		}
		e = &Entry{Addr: addr, Reachable: ok, Since: now}
		t.entries[addr] = e
		if !ok {
			t.version++
			t.cfg.Logger.Debug("reachability: unreachable from here", "addr", addr, "source", source)
		}
	} else if e.Reachable != ok {
		e.Reachable, e.Since = ok, now
		t.version++
		t.cfg.Logger.Debug("reachability: changed", "addr", addr, "reachable", ok, "source", source)
	} else if !ok && (e.Source != source || !t.cfg.Probe && now.Sub(e.Checked) > t.cfg.Forget) {
		t.version++ // another source, or back from having aged out of Unreachable
	}
	e.Checked, e.Source = now, source
	if !ok && !t.cfg.Probe && t.expires.IsZero() {
		t.expires = now.Add(t.cfg.Forget)
	}
}

// evictLocked drops the entry checked longest ago.
func (t *Tracker) evictLocked() {
	var oldest *Entry
	for _, e := range t.entries {
		if oldest == nil || e.Checked.Before(oldest.Checked) {
			oldest = e
		}
	}
	if oldest != nil {
		delete(t.entries, oldest.Addr)
		if !oldest.Reachable {
			t.version++
		}
	}
}

// Reachable reports whether addr is reachable from here, as far as known: an
// unknown address counts as reachable. With probes on, an address unknown or last
// checked more than Trust ago is queued for a probe (the answer is the current
// knowledge; the next one will know better).
func (t *Tracker) Reachable(addr string) bool {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[addr]
	if e != nil && now.Sub(e.Checked) > t.cfg.Forget && !t.cfg.Probe {
		delete(t.entries, addr) // already out of Unreachable's answer: no new version
		e = nil
	}
	if t.cfg.Probe && (e == nil || now.Sub(e.Checked) > t.cfg.Trust) && !t.queued[addr] && len(t.queue) < t.cfg.MaxEntries {
		t.queued[addr] = true
		t.queue = append(t.queue, addr)
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	return e == nil || e.Reachable
}

// Unreachable lists the addresses known to be unreachable from here, by address.
func (t *Tracker) Unreachable() []Entry {
	now := t.cfg.Now()
	t.mu.Lock()
	out := []Entry{}
	for _, e := range t.entries {
		if !e.Reachable && (t.cfg.Probe || now.Sub(e.Checked) <= t.cfg.Forget) {
			out = append(out, *e)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Addr, b.Addr) })
	return out
}

// Version returns a number that moves whenever Unreachable's answer may have
// changed: an address became unreachable or reachable again, came from another
// source, was evicted, or (without probes) aged out after Forget. A newer Checked
// time alone does not move it, so a proxy reporting every connect does not make
// readers re-read. It is cheap, for readers that poll it (the web UI, once per
// refresh): without probes, the first call after an entry's age-out scans the
// entries once to find the next.
func (t *Tracker) Version() uint64 {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.expires.IsZero() && !now.Before(t.expires) {
		t.version++
		t.expires = time.Time{}
		for _, e := range t.entries {
			if at := e.Checked.Add(t.cfg.Forget); !e.Reachable && at.After(now) && (t.expires.IsZero() || at.Before(t.expires)) {
				t.expires = at
			}
		}
	}
	return t.version
}

// Known reports whether any address is known unreachable: answers need reordering.
func (t *Tracker) Known() bool { return len(t.Unreachable()) > 0 }

// loop probes queued addresses, at most Rate per second and MaxInflight at once.
func (t *Tracker) loop() {
	tick := time.NewTicker(time.Duration(float64(time.Second) / t.cfg.Rate))
	defer tick.Stop()
	sem := make(chan struct{}, t.cfg.MaxInflight)
	for {
		t.mu.Lock()
		var addr string
		if len(t.queue) > 0 {
			addr, t.queue = t.queue[0], t.queue[1:]
		}
		t.mu.Unlock()
		if addr == "" {
			select {
			case <-t.wake:
				continue
			case <-t.ctx.Done():
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-t.ctx.Done():
			return
		}
		t.wg.Go(func() {
			defer func() { <-sem }()
			t.probe(addr)
		})
		select {
		case <-tick.C:
		case <-t.ctx.Done():
			return
		}
	}
}

func (t *Tracker) probe(addr string) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.ProbeTimeout)
	defer cancel()
	c, err := t.cfg.Dial(ctx, "tcp", addr)
	if c != nil {
		_ = c.Close()
	}
	if t.ctx.Err() == nil {
		// A refused connection reached the host: only a timeout or an unreachable
		// network means the path is blocked.
		t.record(addr, err == nil || isRefused(err), "probe")
	}
	t.mu.Lock()
	delete(t.queued, addr)
	t.mu.Unlock()
}
