package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrUnknownCheck: no check has this ID, or (for UpdateTTL) it is not a ttl check.
	// An HTTP layer answers 404.
	ErrUnknownCheck = errors.New("unknown check")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("health manager closed")
)

// Sink receives check status changes; the agent's local state implements it.
//
// SetCheckStatus is called when a check's reported status changes, and at most once
// per Config.OutputInterval per check when only its output changed. It is not called
// when a check is added: the caller records the check's initial record (definition.Check.Record) itself. Calls for one
// check are serialised and in order; calls for different checks may run concurrently.
// A call may block briefly (the Manager holds that check's lock meanwhile) but must
// not call back into the Manager, nor wait for anything that does.
type Sink interface {
	SetCheckStatus(id string, status catalog.Status, output string)
}

// Config configures a Manager. The zero value of every field but Sink means its
// default.
type Config struct {
	// Sink receives status changes. Required.
	Sink Sink

	// Logger receives status transitions (Info) and definition warnings (Warn).
	// Default: discard.
	Logger *slog.Logger

	// EnableScriptChecks allows script checks (Consul's --enable-script-checks): they
	// run any program as the agent's user, so they are off unless asked for.
	EnableScriptChecks bool

	// MaxConcurrent bounds how many probes run at once, across all checks. Further
	// runs wait for a slot. Default 32.
	MaxConcurrent int

	// MinInterval is the shortest interval a check runs at; shorter ones are raised
	// to it with a warning, as Consul does. Default 1 s.
	MinInterval time.Duration

	// OutputInterval is the minimum time between two reports of a check whose output
	// changed but whose status did not. Default 1 min.
	OutputInterval time.Duration

	// OnDeregister is called with a service ID when one of its checks with
	// DeregisterCriticalServiceAfter has been critical that long; once per critical
	// spell. It runs on the check's goroutine with no lock held, so it may call
	// Remove (but not Close, which waits for that goroutine). Optional.
	OnDeregister func(serviceID string)

	// Registerer receives the Manager's metrics (check runs by type and status, probe
	// durations). Default: a private registry nobody reads.
	Registerer prometheus.Registerer
}

// Defaults of Config's fields.
const (
	DefaultMaxConcurrent  = 32
	DefaultMinInterval    = time.Second
	DefaultOutputInterval = time.Minute
)

// Manager runs checks and reports their status changes to a Sink. It is safe for
// concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	sem     chan struct{} // one token per running probe
	metrics *metrics

	httpTransport         *http.Transport
	httpInsecureTransport *http.Transport
	// proberFor builds a check's prober; tests replace it.
	proberFor func(*definition.Check) prober

	ctx    context.Context // parent of every check's context; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per check goroutine
	once   sync.Once      // Close

	mu     sync.Mutex
	checks map[string]*check
	closed bool
}

// check is one running check. Its goroutine owns the probing and timers; c.mu guards
// the reported state against UpdateTTL, Remove and readers.
type check struct {
	def    definition.Check // with the Manager's defaults (withDefaults); immutable
	prober prober           // nil for ttl checks
	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: state changed, recompute the next wake-up

	mu          sync.Mutex // held while calling the Sink
	removed     bool       // no Sink calls after this
	deb         debouncer
	rep         reporter
	reap        reaper
	ttlDeadline time.Time // ttl: critical when it passes without a heartbeat
	ttlExpired  bool      // ttl: the deadline passed and was reported
}

// New returns a Manager with no checks. It starts nothing until Add.
func New(cfg Config) (*Manager, error) {
	if cfg.Sink == nil {
		return nil, errors.New("health: new: Config.Sink is required")
	}
	if cfg.MaxConcurrent < 0 || cfg.MinInterval < 0 || cfg.OutputInterval < 0 {
		return nil, fmt.Errorf("health: new: %w: MaxConcurrent, MinInterval and OutputInterval must not be negative", catalog.ErrInvalid)
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	cfg.MaxConcurrent = cmp.Or(cfg.MaxConcurrent, DefaultMaxConcurrent)
	cfg.MinInterval = cmp.Or(cfg.MinInterval, DefaultMinInterval)
	cfg.OutputInterval = cmp.Or(cfg.OutputInterval, DefaultOutputInterval)
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:                   cfg,
		log:                   cfg.Logger.With("component", "health"),
		sem:                   make(chan struct{}, cfg.MaxConcurrent),
		metrics:               met,
		httpTransport:         newHTTPTransport(false),
		httpInsecureTransport: newHTTPTransport(true),
		ctx:                   ctx,
		cancel:                cancel,
		checks:                make(map[string]*check),
	}
	m.proberFor = m.newProber
	return m, nil
}

// Add starts running def, or replaces the check with the same ID. Re-adding an
// identical definition changes nothing (a config reload does not reset its checks).
// A changed definition restarts the check but keeps its reported status and output,
// so re-registration does not bounce a healthy instance to critical; only the
// anti-flapping counts restart.
//
// def runs as it is (definition.Check, validated as the agent validates it): it
// starts at def.Status, critical if zero. An agent restoring a persisted check sets
// the status it persisted. Before calling Add for a new ID the caller records the
// check's record at that status in its state; the Sink hears of every change after
// that. Script checks need Config.EnableScriptChecks
// (definition.ErrScriptChecksDisabled).
func (m *Manager) Add(def definition.Check) error {
	if err := def.Validate(definition.Policy{EnableScriptChecks: true}); err != nil {
		return fmt.Errorf("health: add check %q: %w", def.ID, err)
	}
	if def.Type() == definition.TypeScript && !m.cfg.EnableScriptChecks {
		return fmt.Errorf("health: add check %q: %w", def.ID, definition.ErrScriptChecksDisabled)
	}
	d := withDefaults(def)
	if d.Interval > 0 && d.Interval < m.cfg.MinInterval {
		m.log.Warn("check interval below the minimum; raised", "check", d.ID, "interval", d.Interval, "min", m.cfg.MinInterval)
		d.Interval = m.cfg.MinInterval
	}

	now := time.Now()
	ctx, cancel := context.WithCancel(m.ctx)
	c := &check{
		def:    d,
		ctx:    ctx,
		cancel: cancel,
		kick:   make(chan struct{}, 1),
		deb:    newDebouncer(d.SuccessBeforePassing, d.FailuresBeforeWarning, d.FailuresBeforeCritical),
		rep:    newReporter(d.Status, m.cfg.OutputInterval),
		reap:   reaper{after: d.DeregisterCriticalServiceAfter},
	}
	if d.Type() == definition.TypeTTL {
		c.ttlDeadline = now.Add(d.TTL)
	}
	c.reap.observe(d.Status, now)

	// Lock the new check before publishing it, so nobody sees it before it has taken
	// over the old one's state. Lock order: new check, Manager, old check.
	c.mu.Lock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		c.mu.Unlock()
		cancel()
		return fmt.Errorf("health: add check %q: %w", d.ID, ErrClosed)
	}
	old := m.checks[d.ID]
	if old != nil && reflect.DeepEqual(old.def, d) {
		m.mu.Unlock()
		c.mu.Unlock()
		cancel()
		return nil
	}
	if d.Type() != definition.TypeTTL {
		c.prober = m.proberFor(&c.def)
	}
	m.checks[d.ID] = c
	m.wg.Add(1)
	m.mu.Unlock()
	if old != nil {
		rep, reap := old.retire()
		c.rep = rep
		c.reap.since, c.reap.fired = reap.since, reap.fired
		c.reap.observe(c.rep.status, now)
	}
	c.mu.Unlock()

	var offset time.Duration
	if d.Interval > 0 {
		offset = rand.N(d.Interval) // spread the checks over their interval
	}
	go m.run(c, offset)
	return nil
}

// Remove stops the check with this ID and cancels its running probe. Once Remove
// returns, the Sink hears nothing more of it. It returns ErrUnknownCheck if no check
// has this ID.
func (m *Manager) Remove(id string) error {
	m.mu.Lock()
	c := m.checks[id]
	delete(m.checks, id)
	m.mu.Unlock()
	if c == nil {
		return fmt.Errorf("health: remove check %q: %w", id, ErrUnknownCheck)
	}
	c.retire()
	return nil
}

// UpdateTTL records a heartbeat of a ttl check (Consul's PUT
// /v1/agent/check/pass|warn|fail|update/<id>): the status holds for another TTL. It
// returns ErrUnknownCheck for an unknown ID or a check of another type, and an error
// wrapping catalog.ErrInvalid for a status other than passing, warning or critical.
// The output is truncated to catalog.MaxOutputLen.
func (m *Manager) UpdateTTL(id string, status catalog.Status, output string) error {
	if status != catalog.StatusPassing && status != catalog.StatusWarning && status != catalog.StatusCritical {
		return fmt.Errorf("health: update ttl check %q: %w: status %s: want passing, warning or critical", id, catalog.ErrInvalid, status)
	}
	m.mu.Lock()
	c := m.checks[id]
	m.mu.Unlock()
	if c == nil {
		return fmt.Errorf("health: update ttl check %q: %w", id, ErrUnknownCheck)
	}
	if c.def.TTL == 0 {
		return fmt.Errorf("health: update ttl check %q: it is a %s check, not a ttl check: %w", id, c.def.Type(), ErrUnknownCheck)
	}
	output = clampOutput(output)
	c.mu.Lock()
	if c.removed {
		c.mu.Unlock()
		return fmt.Errorf("health: update ttl check %q: %w", id, ErrUnknownCheck)
	}
	now := time.Now()
	c.ttlDeadline = now.Add(c.def.TTL)
	c.ttlExpired = false
	m.metrics.heartbeat(status)
	m.report(c, status, output, now)
	c.mu.Unlock()
	c.wake()
	return nil
}

// Check returns the current state of the check with this ID as a catalog record,
// with its newest output (which the Sink may not have heard yet), or ErrUnknownCheck.
func (m *Manager) Check(id string) (catalog.Check, error) {
	m.mu.Lock()
	c := m.checks[id]
	m.mu.Unlock()
	if c == nil {
		return catalog.Check{}, fmt.Errorf("health: check %q: %w", id, ErrUnknownCheck)
	}
	return c.record(), nil
}

// Checks returns the current state of every check, sorted by ID.
func (m *Manager) Checks() []catalog.Check {
	m.mu.Lock()
	cs := make([]*check, 0, len(m.checks))
	for _, c := range m.checks {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	out := make([]catalog.Check, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.record())
	}
	slices.SortFunc(out, func(a, b catalog.Check) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Close stops every check, cancels running probes (killing scripts) and waits for
// every goroutine the Manager started. It is idempotent; Add fails afterwards.
func (m *Manager) Close() error {
	m.once.Do(func() {
		m.mu.Lock()
		m.closed = true
		checks := m.checks
		m.checks = make(map[string]*check)
		m.mu.Unlock()
		for _, c := range checks {
			c.retire()
		}
		m.cancel()
		m.wg.Wait()
		m.httpTransport.CloseIdleConnections()
		m.httpInsecureTransport.CloseIdleConnections()
	})
	return nil
}

// run is a check's goroutine: it probes on schedule (interval checks) and handles
// the timed events (ttl expiry, deferred output, deregistration) until cancelled.
func (m *Manager) run(c *check, firstProbeIn time.Duration) {
	defer m.wg.Done()
	var nextProbe time.Time
	if c.prober != nil {
		nextProbe = time.Now().Add(firstProbeIn)
	}
	timer := time.NewTimer(firstProbeIn)
	defer timer.Stop()
	for {
		now := time.Now()
		if c.prober != nil && !now.Before(nextProbe) {
			started, ok := m.probe(c)
			if !ok {
				return
			}
			nextProbe = started.Add(c.def.Interval)
			now = time.Now()
		}
		next, deregister := m.timed(c, now)
		if deregister && m.cfg.OnDeregister != nil {
			m.log.Info("service critical too long; deregistering", "check", c.def.ID, "service", c.def.ServiceID,
				"after", c.def.DeregisterCriticalServiceAfter)
			m.cfg.OnDeregister(c.def.ServiceID)
		}
		next = earliest(next, nextProbe)
		if next.IsZero() {
			next = now.Add(time.Hour) // nothing scheduled: wait for a heartbeat
		}
		timer.Reset(max(next.Sub(now), 0))
		select {
		case <-c.ctx.Done():
			return
		case <-timer.C:
		case <-c.kick:
		}
	}
}

// probe runs one probe within a concurrency slot and reports its result. It returns
// when the probe started, and false when the check was cancelled meanwhile.
func (m *Manager) probe(c *check) (time.Time, bool) {
	select {
	case m.sem <- struct{}{}:
	case <-c.ctx.Done():
		return time.Time{}, false
	}
	started := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, c.def.Timeout)
	status, output := c.prober.probe(ctx)
	cancel()
	<-m.sem
	if c.ctx.Err() != nil {
		return started, false // removed or closed: the result means nothing
	}
	m.metrics.probed(c.def.Type(), status, time.Since(started))
	output = clampOutput(output)
	c.mu.Lock()
	// Below a threshold the result changes nothing, its output included (as in
	// Consul): the output shown must explain the status shown.
	if report, ok := c.deb.observe(status); ok && !c.removed {
		m.report(c, report, output, time.Now())
	}
	c.mu.Unlock()
	return started, true
}

// timed handles the events of c that are due at now and returns when the next one is
// due (zero: none) and whether OnDeregister must be called.
func (m *Manager) timed(c *check, now time.Time) (next time.Time, deregister bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return time.Time{}, false
	}
	if c.def.TTL > 0 && !c.ttlExpired && !now.Before(c.ttlDeadline) {
		c.ttlExpired = true
		out := "TTL expired"
		if c.rep.latest != "" {
			out += " (last output before timeout follows): " + c.rep.latest
		}
		m.report(c, catalog.StatusCritical, clampOutput(out), now)
	}
	if c.rep.flush(now) {
		m.cfg.Sink.SetCheckStatus(c.def.ID, c.rep.status, c.rep.sent)
	}
	deregister = c.reap.fire(now)
	var ttl time.Time
	if c.def.TTL > 0 && !c.ttlExpired {
		ttl = c.ttlDeadline
	}
	return earliest(ttl, c.rep.due(), c.reap.due()), deregister
}

// report passes a result through the reporter and tells the Sink if it says so.
// c.mu must be held and c not removed.
func (m *Manager) report(c *check, status catalog.Status, output string, now time.Time) {
	from := c.rep.status
	send, changed := c.rep.offer(status, output, now)
	if changed {
		c.reap.observe(status, now)
		m.log.Info("check status changed", "check", c.def.ID, "service", c.def.ServiceID, "from", from, "to", status)
	}
	if send {
		m.cfg.Sink.SetCheckStatus(c.def.ID, status, output)
	}
}

// retire marks c removed, waiting for a Sink call in progress, and cancels its
// goroutine and probe. It returns the reporting state, final from now on, for a
// replacement to carry on. It does not wait for the goroutine: Close does.
func (c *check) retire() (reporter, reaper) {
	c.mu.Lock()
	c.removed = true
	rep, reap := c.rep, c.reap
	c.mu.Unlock()
	c.cancel()
	return rep, reap
}

// wake makes c's goroutine recompute its next wake-up.
func (c *check) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// record returns c's state as a catalog record.
func (c *check) record() catalog.Check {
	r := c.def.Record()
	c.mu.Lock()
	r.Status, r.Output = c.rep.status, c.rep.latest
	c.mu.Unlock()
	return r
}
