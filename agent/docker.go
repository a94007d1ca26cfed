package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/docker"
)

// The Docker watcher (package docker) registers the services of this host's
// containers. Its registrations are local services like any other, with their own
// source (localstate.SourceDocker): persisted in the local state (services.log), published by gossip,
// checked by the health manager; so an agent restart with the same containers
// running republishes nothing but the restart's own generation. The watcher owns
// them: nothing else replaces them, and with the watcher off the next start drops
// them.

// DockerConfig configures the Docker watcher.
type DockerConfig struct {
	// Enabled runs the watcher (--docker). Default off; then the services an
	// earlier run's watcher registered, and its check, are dropped at Start.
	Enabled bool
	// Host is the engine's address (--docker-host): unix:///var/run/docker.sock,
	// tcp://host:port, podman's unix:///run/podman/podman.sock, or a socket path.
	// Default: $DOCKER_HOST, else /var/run/docker.sock.
	Host string
	// Internal registers containers' own addresses and exposed ports instead of
	// their published host ports (--docker-internal).
	Internal bool
	// ReconcileInterval is how often the watcher compares the containers with what
	// it registered and renews its checks. Default 30s (docker.DefaultReconcileInterval).
	ReconcileInterval time.Duration

	// retryMin and retryMax bound the backoff of reconnects; tests shorten them.
	retryMin, retryMax time.Duration
}

// setupDockerLocked prepares the watcher at Start, before anything is published:
// with Docker on, it checks the engine address and registers the watcher's own
// check on the node; with it off, it drops what an earlier run's watcher
// registered. The watcher starts last (startDocker), as its calls need a.mu.
func (a *Agent) setupDockerLocked() error {
	if !a.cfg.Docker.Enabled {
		ids := make([]string, 0)
		for _, s := range a.local.Owned(localstate.SourceDocker) {
			ids = append(ids, s.ID)
		}
		if _, known := a.local.CheckType(docker.StatusCheckID); known {
			if _, err := a.local.DeregisterCheck(docker.StatusCheckID); err != nil {
				return fmt.Errorf("agent: drop the Docker watcher's check: %w", err)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		if _, _, err := a.local.ApplyOwned(localstate.SourceDocker, nil, ids); err != nil {
			return fmt.Errorf("agent: drop the Docker watcher's services: %w", err)
		}
		a.log.Info("dropped the services of containers: the Docker watcher is off (--docker)", "services", len(ids))
		return nil
	}
	c := a.cfg.Docker
	w, err := docker.New(docker.Config{Registry: dockerRegistry{a}, Node: a.cfg.NodeName, Host: c.Host,
		Internal: c.Internal, ReconcileInterval: c.ReconcileInterval, RetryMin: c.retryMin, RetryMax: c.retryMax,
		Logger: a.log})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if _, err := a.local.RegisterCheck(w.StatusCheck()); err != nil {
		_ = w.Close()
		return fmt.Errorf("agent: the Docker watcher's check: %w", err)
	}
	if err := a.reg.Register(dockerCollector{w}); err != nil {
		_ = w.Close()
		return fmt.Errorf("agent: Docker metrics: %w", err)
	}
	a.docker = w
	return nil
}

// startDocker starts the watcher, if any: the last step of Start, as its Registry
// calls wait for a.mu.
func (a *Agent) startDocker() {
	if a.docker != nil {
		a.docker.Start()
		a.log.Info("watching Docker containers", "host", a.docker.Host(), "internal", a.cfg.Docker.Internal)
	}
}

// closeDocker stops the watcher, if any, without a.mu (its calls take it). What
// it registered stays, persisted, for the next start to reconcile.
func (a *Agent) closeDocker() {
	a.mu.Lock()
	w := a.docker
	a.mu.Unlock()
	if w != nil {
		_ = w.Close()
	}
}

// dockerRegistry is the agent's local state as the watcher's Registry.
type dockerRegistry struct{ a *Agent }

var _ docker.Registry = dockerRegistry{}

func (r dockerRegistry) Owned() []definition.Service {
	a := r.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.local == nil {
		return nil
	}
	return a.local.Owned(localstate.SourceDocker)
}

func (r dockerRegistry) Register(_ context.Context, svcs []definition.Service) error {
	ids := make([]string, len(svcs))
	for i, s := range svcs {
		ids[i] = s.ID
	}
	return r.apply("registered", ids, svcs, nil)
}

func (r dockerRegistry) Deregister(_ context.Context, ids []string) error {
	return r.apply("deregistered", ids, nil, ids)
}

// apply makes one change of the watcher's services and logs it; refused ones are
// returned, joined, each naming its service.
func (r dockerRegistry) apply(what string, ids []string, put []definition.Service, del []string) error {
	var refused map[string]error
	err := r.a.change(func(c *localstate.Core) (rd localstate.Ready, err error) {
		refused, rd, err = c.ApplyOwned(localstate.SourceDocker, put, del)
		return rd, err
	})
	if err != nil {
		return err
	}
	done := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return refused[id] != nil })
	if len(done) > 0 {
		shown := done
		if len(shown) > 10 {
			shown = shown[:10]
		}
		r.a.log.Info("container services "+what, "count", len(done), "ids", strings.Join(shown, ","))
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(refused)) {
		errs = append(errs, fmt.Errorf("service %q: %w", id, refused[id]))
	}
	return errors.Join(errs...)
}

// SetCheckStatus renews a ttl check of the watcher (a heartbeat): the health
// manager reports it to the local state only if status or output changed.
func (r dockerRegistry) SetCheckStatus(id string, status catalog.Status, output string) error {
	a := r.a
	a.mu.Lock()
	hm, running := a.health, a.started && !a.stopped
	a.mu.Unlock()
	if !running || hm == nil {
		return ErrNotRunning
	}
	return hm.UpdateTTL(id, status, output)
}

// dockerCollector reports the watcher's state at scrape time: rumor_docker_connected
// (1 while it follows the engine), and counters of sessions, failures and events.
type dockerCollector struct{ w *docker.Watcher }

var (
	dockerConnected = prometheus.NewDesc("rumor_docker_connected",
		"1 while the Docker watcher follows the engine's events, 0 while it cannot reach the engine.", nil, nil)
	dockerConnects = prometheus.NewDesc("rumor_docker_connects_total",
		"Sessions with the Docker engine that connected and reconciled.", nil, nil)
	dockerFailures = prometheus.NewDesc("rumor_docker_failures_total",
		"Attempts to reach the Docker engine and sessions that failed (each is retried with backoff).", nil, nil)
	dockerEvents = prometheus.NewDesc("rumor_docker_events_total",
		"Events received from the Docker engine.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c dockerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dockerConnected
	ch <- dockerConnects
	ch <- dockerFailures
	ch <- dockerEvents
}

// Collect implements prometheus.Collector.
func (c dockerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.w.Stats()
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(dockerConnected, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(dockerConnects, prometheus.CounterValue, float64(s.Connects))
	ch <- prometheus.MustNewConstMetric(dockerFailures, prometheus.CounterValue, float64(s.Failures))
	ch <- prometheus.MustNewConstMetric(dockerEvents, prometheus.CounterValue, float64(s.Events))
}
