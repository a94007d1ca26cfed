package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Registry is what the watcher needs of the agent: its local state, restricted to
// the services the watcher registered (source "docker"). Calls come from the
// watcher's one goroutine, one at a time; they may block briefly (a save of the
// state) but not on the network.
type Registry interface {
	// Owned returns the services the watcher registered, normalized, with their
	// checks, whatever their containers do now: what it registered before a restart
	// comes back from the agent's persisted state.
	Owned() []definition.Service
	// Register adds or replaces services, all in one change. It applies every valid
	// one and returns the others' errors joined, each naming its service; a
	// service whose ID another source (the API, a config file) holds is refused.
	Register(ctx context.Context, svcs []definition.Service) error
	// Deregister removes services the watcher registered, all in one change.
	Deregister(ctx context.Context, ids []string) error
	// SetCheckStatus sets the status of a ttl check the watcher registered (a
	// container's check or the watcher's own, StatusCheckID) and restarts its TTL.
	// An unchanged status and output must cost no write.
	SetCheckStatus(id string, status catalog.Status, output string) error
}

// Config configures a Watcher.
type Config struct {
	// Registry receives the registrations. Required.
	Registry Registry

	// Node is this node's name, the first part of every service ID
	// ("<node>:<container>:<port>"). Required.
	Node string

	// Host is the engine's API address: "unix:///var/run/docker.sock",
	// "tcp://10.0.0.5:2375", podman's "unix:///run/podman/podman.sock"; a bare path
	// means a unix socket. Default: $DOCKER_HOST, else /var/run/docker.sock. TLS
	// comes from $DOCKER_CERT_PATH and $DOCKER_TLS_VERIFY, as for the docker CLI.
	Host string

	// Internal registers each container's own IP address and exposed ports instead
	// of the ports it publishes on the host (Registrator's -internal): for
	// consumers that reach the containers' network (an overlay or macvlan, or this
	// host). Default off: published ports, at the node's address unless bound to a
	// specific one.
	Internal bool

	// ReconcileInterval is how often the watcher lists the containers and compares
	// them with what it registered, to repair drift (a service deregistered through
	// the API while its container runs) and to renew its checks' TTLs. It inspects
	// only containers it has not seen, and writes nothing when nothing changed.
	// Default 30s.
	ReconcileInterval time.Duration

	// CheckTTL is the TTL of the checks the watcher keeps: each container's and its
	// own. The watcher renews them at every reconcile; while the engine is
	// unreachable for longer than this, they turn critical ("TTL expired"), since
	// nothing is known of the containers then. Default 4 × ReconcileInterval, at
	// least a minute.
	CheckTTL time.Duration

	// RetryMin and RetryMax bound the backoff between attempts to reach the engine:
	// the first retry waits RetryMin, each further one twice as long, up to RetryMax,
	// with jitter; a session that got connected starts over at RetryMin. The
	// watcher never gives up. Defaults 250ms and 5s.
	RetryMin, RetryMax time.Duration

	// Overlap is how far before the last event seen a reconnected event stream
	// starts (the engine's `since`), so that nothing that happened around a gap is
	// missed: replayed events are harmless, the watcher re-reads the container's
	// state for each. Default 2s.
	Overlap time.Duration

	// Logger receives the watcher's logs. Default: discard.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultHost              = "unix:///var/run/docker.sock"
	DefaultReconcileInterval = 30 * time.Second
	DefaultRetryMin          = 250 * time.Millisecond
	DefaultRetryMax          = 5 * time.Second
	DefaultOverlap           = 2 * time.Second
)

// withDefaults returns a copy of c with defaults filled in, or an error naming what
// is missing or wrong.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Registry == nil {
		errs = append(errs, errors.New("Config.Registry is required"))
	}
	if c.Node == "" {
		errs = append(errs, errors.New("Config.Node is required"))
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.CheckTTL <= 0 {
		c.CheckTTL = max(4*c.ReconcileInterval, time.Minute)
	}
	if c.CheckTTL <= c.ReconcileInterval {
		errs = append(errs, fmt.Errorf("CheckTTL %s must be longer than ReconcileInterval %s, which renews it", c.CheckTTL, c.ReconcileInterval))
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.Overlap <= 0 {
		c.Overlap = DefaultOverlap
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("docker: %w", err)
	}
	return c, nil
}

// normalizeHost turns a bare socket path into a unix:// address.
func normalizeHost(h string) string {
	if strings.HasPrefix(h, "/") {
		return "unix://" + h
	}
	return h
}
