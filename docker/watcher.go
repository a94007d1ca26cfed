package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// StatusCheckID is the ID of the watcher's own check, a check of the node: passing
// while the watcher follows the engine, critical (with the reason) while it cannot
// reach it.
const StatusCheckID = "_rumor_docker"

// callTimeout bounds each call to the engine but the event stream, so that an
// engine that accepts connections and never answers counts as unreachable.
const callTimeout = 30 * time.Second

// Watcher registers the services of the containers of one Docker (or podman)
// engine and follows them: create it with New, run it with Start, stop it with
// Close.
type Watcher struct {
	cfg  Config
	host string
	cli  *client.Client
	b    builder
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  sync.Once
	close  sync.Once

	connected               atomic.Bool
	connects, fails, events atomic.Uint64

	// Owned by the run goroutine.
	cache      map[string]spec   // by container ID: what its last inspect gave
	checkpoint time.Time         // the engine's time of the last event seen
	fresh      time.Time         // when the last full reconcile began: events before it are replays
	reported   map[string]string // by container ID: the problems last logged
	lastErr    string            // the last connection error logged
	refused    string            // the last refusal of registrations logged
}

// Stats is the watcher's state, for metrics.
type Stats struct {
	// Connected is true while the watcher follows the engine's events.
	Connected bool
	// Connects counts the sessions that connected and reconciled; Failures the
	// attempts and sessions that failed.
	Connects, Failures uint64
	// Events counts the engine's events received.
	Events uint64
}

// New checks cfg and returns a watcher that has not contacted the engine. An
// address the Docker client cannot parse is an error.
func New(cfg Config) (*Watcher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opts := []client.Opt{client.FromEnv}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(normalizeHost(cfg.Host)))
	}
	cli, err := client.New(opts...)
	if err == nil {
		err = checkScheme(cli.DaemonHost())
		if err != nil {
			_ = cli.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("docker: engine address %q: %w (want unix:///path/to/docker.sock, tcp://host:port or a socket path)", cmp.Or(cfg.Host, os.Getenv("DOCKER_HOST")), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Watcher{
		cfg: cfg, host: cli.DaemonHost(), cli: cli, log: cfg.Logger.With("component", "docker"),
		b:   builder{node: cfg.Node, internal: cfg.Internal, ttl: cfg.CheckTTL},
		ctx: ctx, cancel: cancel,
		cache: map[string]spec{}, reported: map[string]string{},
	}, nil
}

// checkScheme accepts the engine addresses the client can dial from here.
func checkScheme(host string) error {
	u, err := client.ParseHostURL(host)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "unix", "tcp", "http", "https":
		return nil
	case "ssh":
		return errors.New("ssh:// is not supported: forward the engine's socket (ssh -L /tmp/docker.sock:/var/run/docker.sock host) and give that")
	}
	return fmt.Errorf("scheme %q is not supported", u.Scheme)
}

// Host is the engine address the watcher uses.
func (w *Watcher) Host() string { return w.host }

// StatusCheck is the definition of the watcher's own check (StatusCheckID), a ttl
// check of the node that the watcher renews: the agent registers it before Start.
func (w *Watcher) StatusCheck() definition.Check {
	return definition.Check{
		ID: StatusCheckID, Name: "Docker watcher",
		Notes:  "Whether rumor follows the Docker engine at " + w.host + " (--docker).",
		TTL:    w.cfg.CheckTTL,
		Status: catalog.StatusCritical,
	}
}

// Stats returns the watcher's state.
func (w *Watcher) Stats() Stats {
	return Stats{Connected: w.connected.Load(), Connects: w.connects.Load(), Failures: w.fails.Load(), Events: w.events.Load()}
}

// Start starts following the engine in the background: connect, reconcile, follow
// the events, and on any failure retry with backoff, forever, until Close. It
// returns at once; a second call does nothing.
func (w *Watcher) Start() {
	w.start.Do(func() { w.wg.Go(w.run) })
}

// Close stops the watcher and waits for its goroutines. What it registered stays
// registered (the agent persists it; the next start reconciles). Idempotent.
func (w *Watcher) Close() error {
	var err error
	w.close.Do(func() {
		w.cancel()
		w.wg.Wait()
		w.connected.Store(false)
		err = w.cli.Close()
	})
	return err
}

// run connects and follows the engine until Close, with backoff between attempts.
func (w *Watcher) run() {
	delay := w.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		connected, err := w.session(w.ctx)
		if w.ctx.Err() != nil {
			return
		}
		w.connected.Store(false)
		w.fails.Add(1)
		if connected {
			delay, attempt = w.cfg.RetryMin, 1
		}
		wait := delay + time.Duration(rand.Int64N(int64(delay/5)+1)) // up to 20% jitter
		w.reportDown(err, attempt, wait, connected)
		t := time.NewTimer(wait)
		select {
		case <-w.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, w.cfg.RetryMax)
	}
}

// reportDown logs a failed attempt or a lost session (once per distinct error;
// repeats at debug level) and sets the status check critical.
func (w *Watcher) reportDown(err error, attempt int, wait time.Duration, wasConnected bool) {
	msg := fmt.Sprintf("cannot reach the Docker engine at %s: %v", w.host, err)
	if hint := hintFor(err); hint != "" {
		msg += " (" + hint + ")"
	}
	level := slog.LevelDebug
	if wasConnected || msg != w.lastErr {
		level = slog.LevelWarn
	}
	w.lastErr = msg
	if wasConnected {
		w.log.Warn("lost the Docker engine; reconnecting", "host", w.host, "error", err, "retry_in", wait.Round(time.Millisecond))
	} else {
		w.log.Log(w.ctx, level, "Docker engine unreachable; retrying", "host", w.host, "error", err,
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond), "hint", hintFor(err))
	}
	w.setStatus(StatusCheckID, catalog.StatusCritical, msg+"; retrying")
}

// hintFor suggests a fix for the usual reasons the engine is unreachable.
func hintFor(err error) string {
	switch {
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EACCES),
		err != nil && strings.Contains(err.Error(), "permission denied"):
		return "run the agent as root or in the docker group, or point --docker-host at a socket it may use"
	case client.IsErrConnectionFailed(err), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return "is the engine running? --docker-host or $DOCKER_HOST choose it"
	}
	return ""
}

// setStatus sets a check the watcher keeps, logging a failure.
func (w *Watcher) setStatus(id string, st catalog.Status, out string) {
	if err := w.cfg.Registry.SetCheckStatus(id, st, out); err != nil && w.ctx.Err() == nil {
		w.log.Debug("set check status", "check", id, "error", err)
	}
}

// session connects, subscribes to the events from the checkpoint, reconciles
// everything and follows the events (and a periodic reconcile) until something
// fails. connected says whether it got that far.
func (w *Watcher) session(parent context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	pctx, pcancel := context.WithTimeout(ctx, callTimeout)
	ping, err := w.cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
	pcancel()
	if err != nil {
		return false, err
	}
	// Subscribe before listing, so that nothing happening during the reconcile is
	// missed; the events queue up meanwhile.
	s, err := w.subscribe(ctx)
	if err != nil {
		return false, err
	}
	defer s.stop()
	if err := w.reconcile(ctx, true); err != nil {
		return false, err
	}
	w.connected.Store(true)
	w.connects.Add(1)
	if w.lastErr != "" {
		w.log.Info("connected to the Docker engine", "host", w.host, "api", ping.APIVersion)
	} else {
		w.log.Info("following the Docker engine", "host", w.host, "api", ping.APIVersion, "os", ping.OSType)
	}
	w.lastErr = ""
	w.setStatus(StatusCheckID, catalog.StatusPassing, "")
	tick := time.NewTicker(w.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-s.ready:
			batch, err := s.take(maxBatch)
			if len(batch) > 0 {
				if herr := w.handle(ctx, batch); herr != nil {
					return true, herr
				}
			}
			if err != nil {
				return true, fmt.Errorf("event stream: %w", err)
			}
			if s.pending() {
				s.signal()
			}
		case <-tick.C:
			if err := w.reconcile(ctx, false); err != nil {
				return true, err
			}
			w.setStatus(StatusCheckID, catalog.StatusPassing, "")
		}
	}
}
