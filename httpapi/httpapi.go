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
	log    *slog.Logger
	mux    *http.ServeMux
	root   http.Handler // mux, instrumented when there is a Registerer
	// answers holds the encoded answers of the service reads, by query and index.
	answers answerCache

	tokenSum   []byte // SHA-256 of Config.Token; nil when writes are open
	tokenReads bool

	watchHeartbeat time.Duration
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Catalog == nil || cfg.Agent == nil {
		return nil, errors.New("httpapi: config needs a Catalog and an Agent")
	}
	if cfg.TokenReads && cfg.Token == "" {
		return nil, errors.New("httpapi: TokenReads needs a Token (--http-token-reads needs --http-token)")
	}
	h := &Handler{cat: cfg.Catalog, ag: cfg.Agent, chk: cfg.Checks, coords: cfg.Coordinates, keys: cfg.Keyring, mem: cfg.Membership,
		log: cfg.Logger, mux: http.NewServeMux(), tokenReads: cfg.TokenReads,
		watchHeartbeat: cmp.Or(cfg.WatchHeartbeat, DefaultWatchHeartbeat)}
	if cfg.Token != "" {
		sum := sha256.Sum256([]byte(cfg.Token))
		h.tokenSum = sum[:]
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h.routes()
	if cfg.Metrics != nil {
		h.mux.Handle("GET /metrics", h.metricsHandler(cfg.Metrics))
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

// routes registers every endpoint. Patterns carry their method, so ServeMux answers
// other methods with 405 and an Allow header.
func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET /v1/agent/self", h.agentSelf)
	m.HandleFunc("GET /v1/agent/members", h.agentMembers)
	m.HandleFunc("GET /v1/agent/services", h.agentServices)
	m.HandleFunc("PUT /v1/agent/service/register", h.serviceRegister)
	m.HandleFunc("PUT /v1/agent/service/deregister/{id}", h.serviceDeregister)
	m.HandleFunc("PUT /v1/agent/reload", h.agentReload)
	if h.chk != nil {
		m.HandleFunc("GET /v1/agent/checks", h.agentChecks)
		m.HandleFunc("PUT /v1/agent/check/pass/{id...}", h.checkHeartbeat(catalog.StatusPassing))
		m.HandleFunc("PUT /v1/agent/check/warn/{id...}", h.checkHeartbeat(catalog.StatusWarning))
		m.HandleFunc("PUT /v1/agent/check/fail/{id...}", h.checkHeartbeat(catalog.StatusCritical))
		m.HandleFunc("PUT /v1/agent/check/update/{id...}", h.checkUpdate)
		m.HandleFunc("PUT /v1/agent/service/maintenance/{id}", h.serviceMaintenance)
		m.HandleFunc("PUT /v1/agent/maintenance", h.nodeMaintenance)
		m.HandleFunc("PUT /v1/agent/check/register", h.checkRegister)
		m.HandleFunc("PUT /v1/agent/check/deregister/{id...}", h.checkDeregister)
	}
	m.HandleFunc("GET /v1/catalog/services", h.catalogServices)
	m.HandleFunc("GET /v1/catalog/service/{name}", h.catalogService)
	m.HandleFunc("GET /v1/catalog/nodes", h.catalogNodes)
	m.HandleFunc("GET /v1/health/service/{name}", h.healthService)
	h.routesExtra()
	m.HandleFunc("GET /v1/rumor/watch", h.watch)
	if h.keys != nil {
		m.HandleFunc("GET /v1/operator/keyring", h.keyringList)
		m.HandleFunc("POST /v1/operator/keyring", h.keyringOp(KeyInstall))
		m.HandleFunc("PUT /v1/operator/keyring", h.keyringOp(KeyUse))
		m.HandleFunc("DELETE /v1/operator/keyring", h.keyringOp(KeyRemove))
	}
	h.membershipRoutes()
	m.HandleFunc("/", h.notFound)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	h.root.ServeHTTP(w, r)
}

// outOfScope names the Consul features rumor does not do, by path prefix, so a client
// calling them learns why rather than seeing a bare 404.
var outOfScope = []struct{ prefix, what string }{
	{"/v1/kv/", "a key/value store"},
	{"/v1/session/", "sessions"},
	{"/v1/acl/", "ACLs"},
	{"/v1/connect/", "Connect (service mesh)"},
	{"/v1/query", "prepared queries"},
	{"/v1/txn", "transactions"},
	{"/v1/snapshot", "snapshots (there is no server state to snapshot)"},
	{"/v1/operator/", "operator endpoints (there are no servers)"},
	{"/v1/agent/connect/", "Connect (service mesh)"},
	{"/v1/catalog/connect/", "Connect (service mesh)"},
	{"/v1/health/connect/", "Connect (service mesh)"},
	{"/v1/config", "config entries (they configure Connect and servers)"},
	{"/v1/peering", "cluster peering"},
	{"/v1/namespace", "namespaces"},
	{"/v1/partition", "admin partitions"},
	{"/v1/event/", "user events"},
}

// notFound answers paths no pattern matches: 405 when the path exists for another
// method (the catch-all would otherwise hide ServeMux's own 405), 501 for Consul
// features rumor leaves out, else 404.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.fail(w, r, http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))
		return
	}
	for _, o := range outOfScope {
		if strings.HasPrefix(r.URL.Path, o.prefix) || r.URL.Path == strings.TrimSuffix(o.prefix, "/") {
			h.fail(w, r, http.StatusNotImplemented, "rumor does not implement %s: %s is a Consul feature rumor leaves out", r.URL.Path, o.what)
			return
		}
	}
	h.fail(w, r, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
}
