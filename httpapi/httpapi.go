package httpapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Catalog is what the API reads of the catalog. *catalog.Catalog implements it. Calls
// run concurrently; only WaitIndex blocks, until its context ends.
type Catalog interface {
	Services(f catalog.Filter) []catalog.ServiceSummary
	ServiceInstances(name string, f catalog.Filter) []catalog.Instance
	Nodes(f catalog.Filter) []catalog.NodeEntry
	TopicIndex(t catalog.Topic) uint64
	WaitIndex(ctx context.Context, t catalog.Topic, after uint64) (uint64, error)
	NodeServices(node string) (catalog.NodeEntry, []catalog.Service, error)
	NodeChecks(node string) []catalog.CheckEntry
	ChecksInState(state catalog.Status, f catalog.Filter) []catalog.CheckEntry
}

var _ Catalog = (*catalog.Catalog)(nil)

// Agent is this node as the API sees it: its identity, its view of membership and the
// services registered on it. Calls run concurrently; RegisterService and
// DeregisterService may block briefly (they persist the change before answering).
type Agent interface {
	// Self describes this node.
	Self() Self
	// Members returns every node of the gossip pool, this one included, by name.
	Members() []Member
	// LocalServices returns the services registered on this node, sorted by ID.
	LocalServices() []catalog.Service
	// RegisterService adds or replaces a service and its checks on this node, as
	// decoded (the agent normalizes and validates it). Errors wrapping
	// catalog.ErrInvalid are the caller's fault (400).
	RegisterService(ctx context.Context, svc definition.Service) error
	// DeregisterService removes a service and its checks; catalog.ErrNotFound if this
	// node has no service with that ID.
	DeregisterService(ctx context.Context, id string) error
}

// Checks is this node's health checks as the API sees them. Calls run concurrently
// and may block briefly (they persist changes before answering).
type Checks interface {
	// LocalChecks returns the checks of this node, maintenance checks included.
	LocalChecks() []LocalCheck
	// UpdateTTL records a heartbeat of a ttl check. Errors: catalog.ErrNotFound for
	// an unknown check (404), catalog.ErrInvalid for a check of another type or a
	// status other than passing, warning or critical (400).
	UpdateTTL(ctx context.Context, id string, status catalog.Status, output string) error
	// SetMaintenance turns maintenance mode on or off for a local service, or the
	// node when serviceID is "". catalog.ErrNotFound for an unknown service.
	SetMaintenance(ctx context.Context, serviceID string, enable bool, reason string) error
	// RegisterCheck adds or replaces a check of this node: of the node itself when
	// def.ServiceID is "", else of that local service. Errors wrapping
	// catalog.ErrInvalid are the caller's fault (400); nothing changes then.
	RegisterCheck(ctx context.Context, def definition.Check) error
	// DeregisterCheck removes a check; catalog.ErrNotFound if there is none with
	// that ID, catalog.ErrInvalid for a maintenance check (use maintenance mode).
	DeregisterCheck(ctx context.Context, id string) error
}

// LocalCheck is one check of this node for GET /v1/agent/checks.
type LocalCheck struct {
	Check       catalog.Check
	ServiceName string
	ServiceTags []string
	Definition  definition.Check // zero for maintenance checks
}

// Self describes the local node for /v1/agent/self and /v1/agent/members.
type Self struct {
	Node       catalog.Node   // this node's own record: ID, Name, Address, Datacenter, Meta
	GossipAddr netip.AddrPort // where peers reach it
	Version    string         // rumor's version
}

// Member is one node of the gossip pool.
type Member struct {
	Name  string
	Addr  netip.AddrPort
	State catalog.Liveness
	// Since is when State last changed, as this node saw it; zero if unknown.
	Since time.Time
	// Coordinate is the node's network coordinate; nil until a probe brought it.
	Coordinate *Coordinate
	// RTT is the estimated round trip from this node; 0 if unknown.
	RTT time.Duration
}

// Coordinate is a network coordinate (serf's Vivaldi coordinate, in Consul's JSON
// shape: /v1/coordinate/nodes sends the same four fields). Units are seconds.
type Coordinate struct {
	Vec        []float64
	Error      float64
	Adjustment float64
	Height     float64
}

// Config configures a Handler.
type Config struct {
	// Catalog answers the catalog and health endpoints. Required.
	Catalog Catalog
	// Agent answers the agent endpoints. Required.
	Agent Agent
	// Checks answers the agent's check and maintenance endpoints. Optional: without
	// it those paths answer 404.
	Checks Checks
	// Coordinates orders answers for ?near=. Optional: without it ?near= leaves the
	// order as it is (as Consul does for nodes without coordinates).
	Coordinates Coordinates
	// Token, when not empty, is required on every write (any method but GET and
	// HEAD), in X-Consul-Token or "Authorization: Bearer"; other requests get 403.
	// Default: none, writes are open (the API listens on loopback by default).
	Token string
	// TokenReads requires Token on reads as well. It needs Token.
	TokenReads bool
	// Membership answers join, leave and force-leave. Optional: without it those
	// paths answer 404.
	Membership Membership
	// Logger receives one debug line per failed request and errors. Default: discard.
	Logger *slog.Logger
	// Metrics, if set, is served as GET /metrics (the agent's private registry).
	Metrics prometheus.Gatherer
	// Registerer, if set, receives the API's own metrics (request durations by route
	// and code).
	Registerer prometheus.Registerer
	// Keyring answers /v1/operator/keyring. Optional: without it that path answers
	// 501 like the other operator endpoints.
	Keyring Keyring
	// UI, if set, serves the web UI at /ui/ (and / redirects there). It applies the
	// token rules itself, since a browser sends a cookie rather than a header.
	UI http.Handler
	// Proxy answers GET /v1/rumor/upstreams. Optional: without it that path
	// answers 404.
	Proxy Proxy
	// Reachability orders health answers reachable first, serves ?reachable and
	// GET /v1/rumor/reachability. Optional: without it ?reachable keeps everything
	// and that path answers 404.
	Reachability Reachability
	// Mover answers PUT /v1/rumor/service/move/{id}. Optional: without it that
	// path answers 404. (GET /v1/rumor/moves reads the Catalog.)
	Mover Mover
	// WatchHeartbeat is how often a quiet /v1/rumor/watch stream sends a comment so
	// proxies keep it open. Default 15s.
	WatchHeartbeat time.Duration
}

// Limits and defaults of the API.
const (
	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes = 1 << 20
	// DefaultWait is a blocking query's wait when ?wait is absent (Consul's).
	DefaultWait = 5 * time.Minute
	// MaxWait caps ?wait (Consul's); longer waits are shortened to it.
	MaxWait = 10 * time.Minute
	// writeSlack is added to a request's write deadline beyond its wait.
	writeSlack = 30 * time.Second
)

// ConsulVersion is the Consul release whose HTTP API rumor follows; /v1/agent/self
// reports it as Config.Version because some clients gate features on it.
const ConsulVersion = "1.21.0"

// Handler serves the API. Create it with New.
type Handler struct {
	cat    Catalog
	ag     Agent
	chk    Checks
	coords Coordinates // nil: ?near= keeps the order
	keys   Keyring
	mem    Membership
	ui     http.Handler // nil: no web UI
	log    *slog.Logger
	mux    *http.ServeMux
	root   http.Handler // mux, instrumented when there is a Registerer
	// answers holds the encoded answers of the service reads, by query and index.
	answers answerCache

	tokenSum   []byte // SHA-256 of Config.Token; nil when writes are open
	tokenReads bool

	watchHeartbeat time.Duration

	// proxy is the local proxy; nil: no /v1/rumor/upstreams.
	proxy Proxy
	// reach is what this agent can reach; nil: no reordering, no endpoint.
	reach Reachability
	// mover moves local instances explicitly; nil: no move endpoint.
	mover Mover
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Catalog == nil || cfg.Agent == nil {
		return nil, errors.New("httpapi: config needs a Catalog and an Agent")
	}
	if cfg.TokenReads && cfg.Token == "" {
		return nil, errors.New("httpapi: TokenReads needs a Token (--http-token-reads needs --http-token)")
	}
	h := &Handler{cat: cfg.Catalog, ag: cfg.Agent, chk: cfg.Checks, coords: cfg.Coordinates, keys: cfg.Keyring, mem: cfg.Membership, ui: cfg.UI,
		log: cfg.Logger, mux: http.NewServeMux(), tokenReads: cfg.TokenReads,
		watchHeartbeat: cmp.Or(cfg.WatchHeartbeat, DefaultWatchHeartbeat)}
	h.proxy = cfg.Proxy
	h.reach = cfg.Reachability
	h.mover = cfg.Mover
	if cfg.Token != "" {
		sum := sha256.Sum256([]byte(cfg.Token))
		h.tokenSum = sum[:]
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, rt := range h.routes(cfg.Metrics) {
		if rt.serve {
			h.mux.HandleFunc(rt.pattern, rt.handle)
		}
	}
	h.root = h.mux
	if cfg.Registerer != nil {
		m, err := newHTTPMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		h.root = m.instrument(h.mux)
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.isUI(r) && !h.authorized(w, r) {
		return
	}
	h.root.ServeHTTP(w, r)
}

// isUI reports whether r is for the web UI, which checks the token itself.
func (h *Handler) isUI(r *http.Request) bool {
	return h.ui != nil && (r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/"))
}

func (h *Handler) serveUI(w http.ResponseWriter, r *http.Request) { h.ui.ServeHTTP(w, r) }
