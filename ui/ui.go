package ui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Catalog is what the UI reads of the catalog. *catalog.Catalog implements it. Calls
// run concurrently and never block beyond the catalog's lock.
type Catalog interface {
	// NodeIndexes fills dst with the topic index of every node, after clearing it.
	NodeIndexes(dst map[string]uint64)
	// NodesChangedSince appends the names of the nodes that moved after index
	// after and returns them with the catalog's index; ok is false when the
	// catalog no longer knows every move since (then NodeIndexes tells).
	NodesChangedSince(after uint64, dst []string) (names []string, index uint64, ok bool)
	// NodeServices returns a node and its services; catalog.ErrNotFound if gone.
	NodeServices(node string) (catalog.NodeEntry, []catalog.Service, error)
	// NodeChecks returns every check of a node, serfHealth included.
	NodeChecks(node string) []catalog.CheckEntry
	// ServiceInstances returns the instances of a service with their checks.
	ServiceInstances(name string, f catalog.Filter) []catalog.Instance
	// Watch returns a topic's index and a channel closed when it next moves.
	Watch(t catalog.Topic) (uint64, <-chan struct{})
}

var _ Catalog = (*catalog.Catalog)(nil)

// Agent is this node as the UI shows it. Calls run concurrently and do not block.
type Agent interface {
	// Self describes this node.
	Self() Self
	// Members returns every node of the gossip pool as this node sees it.
	Members() []Member
	// Counters returns the agent's running totals, for the rates on its page.
	Counters() Counters
	// LocalSources says who registered each service of this node, by service ID:
	// "file" (a config file) or "api".
	LocalSources() map[string]string
	// Upstreams lists the local proxy's upstreams and their instances, sorted by
	// listen address; none when the agent runs no proxy.
	Upstreams() []Upstream
}

// Reachability is this host's knowledge of the instance addresses it cannot reach
// (the agent adapts its reachability tracker: the local proxy's connects and
// probes). Calls run concurrently and do not block. The failing page lists them; its
// live stream polls Version once per Config.Coalesce, since reachability moves
// without the catalog.
type Reachability interface {
	// Unreachable lists the addresses known unreachable from here, sorted by address.
	Unreachable() []Unreachable
	// Version moves whenever Unreachable's answer may have changed (a newer
	// Checked time alone need not move it).
	Version() uint64
}

// Unreachable is one instance address this host cannot reach.
type Unreachable struct {
	Addr    string    // host:port
	Since   time.Time // when it became unreachable (or was first seen so)
	Checked time.Time // the last result
	Source  string    // where that came from: "proxy" or "probe"
}

// Upstream is one listener of the local proxy.
type Upstream struct {
	Service   string
	Tag       string // only instances with this tag; "" for all
	Listen    string // host:port listened on
	Instances []UpstreamInstance
}

// UpstreamInstance is one instance an upstream forwards to.
type UpstreamInstance struct {
	Node         string
	ServiceID    string
	Address      string // host:port
	Weight       int64
	Active       int64     // open connections
	Failures     int32     // consecutive connect failures
	Ejections    int32     // times ejected
	EjectedUntil time.Time // zero unless ejected now
	Draining     bool
}

// Self describes the local node.
type Self struct {
	Name       string
	ID         string
	Datacenter string
	Address    string // advertised address
	GossipAddr string // host:port peers reach
	Version    string // rumor's version
	Started    time.Time
}

// Member is one node of the gossip pool as this agent sees it.
type Member struct {
	Name  string
	Addr  string // gossip address, host:port
	State catalog.Liveness
	Since time.Time     // when State last changed, as seen here; zero if unknown
	RTT   time.Duration // estimated from this agent's coordinate; 0 if unknown
}

// Counters are running totals that only grow; the UI samples them into rates.
type Counters struct {
	// HTTPRequests counts HTTP requests the agent answered (API and UI).
	HTTPRequests uint64
	// DNSQueries counts DNS queries the agent answered; shown when Config.DNSAddr
	// is set.
	DNSQueries uint64
}

// Config configures a UI.
type Config struct {
	// Catalog is read for every view. Required.
	Catalog Catalog
	// Agent describes this node. Required.
	Agent Agent
	// Reachability says which instance addresses this host cannot reach. Optional:
	// nil lists none.
	Reachability Reachability
	// Token, when set with TokenReads, is required on every page, as on the API's
	// reads: in X-Consul-Token, "Authorization: Bearer" or the cookie that the login
	// form sets. Without TokenReads the UI, which only reads, is open.
	Token string
	// TokenReads requires Token for the UI as for the API's reads. It needs Token.
	TokenReads bool
	// Logger receives errors. Default: discard.
	Logger *slog.Logger
	// Now tells the time, for "since" columns and rates. Default time.Now.
	Now func() time.Time
	// Coalesce is the shortest time between two updates of the UI's view of the
	// catalog, and so of a live page: changes within it are shown together.
	// Default 250ms (at most four updates a second). A change is read Coalesce/5
	// after it at the earliest (see refreshWait).
	Coalesce time.Duration
	// SampleEvery is how often rates and round-trip times are sampled for the
	// sparklines. Default 2s; round-trip times every fifth sample.
	SampleEvery time.Duration
	// Heartbeat is how often a quiet live stream sends a comment so proxies keep it
	// open. Default 15s.
	Heartbeat time.Duration

	// DNSAddr is the agent's DNS server, host:port, for the copyable dig line on a
	// service's page (a wildcard host shows as loopback). Empty: the agent serves no
	// DNS, and the page has no dig line.
	DNSAddr string
	// DNSDomain is the DNS domain the agent answers for. Default "consul".
	DNSDomain string
}

// Defaults of Config.
const (
	DefaultCoalesce    = 250 * time.Millisecond
	DefaultSampleEvery = 2 * time.Second
	DefaultHeartbeat   = 15 * time.Second
)

// UI serves the web UI. Create it with New, run its background work with Start, stop
// it with Close.
type UI struct {
	cfg   Config
	log   *slog.Logger
	model *model
	samp  *sampler
	live  *liveCache
	// renders counts the live pages' renderings (Renders).
	renders atomic.Uint64
	mux     *http.ServeMux
	tmpls   map[string]*template.Template // by page
	pages   map[string]page               // by the mux's pattern

	ctx    context.Context // ends with Close: live streams and the loops stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  sync.Once
}

// New returns a UI for cfg; it reads nothing until Start.
func New(cfg Config) (*UI, error) {
	if cfg.Catalog == nil || cfg.Agent == nil {
		return nil, errors.New("ui: config needs a Catalog and an Agent")
	}
	if cfg.TokenReads && cfg.Token == "" {
		return nil, errors.New("ui: TokenReads needs a Token")
	}
	if cfg.Coalesce < 0 || cfg.SampleEvery < 0 || cfg.Heartbeat < 0 {
		return nil, errors.New("ui: negative Coalesce, SampleEvery or Heartbeat")
	}
	cfg.Coalesce = cmp.Or(cfg.Coalesce, DefaultCoalesce)
	cfg.SampleEvery = cmp.Or(cfg.SampleEvery, DefaultSampleEvery)
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	cfg.DNSDomain = strings.Trim(cmp.Or(cfg.DNSDomain, "consul"), ".")
	if cfg.DNSAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.DNSAddr); err != nil {
			return nil, fmt.Errorf("ui: DNSAddr %q: want host:port: %w", cfg.DNSAddr, err)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &UI{cfg: cfg, log: log, ctx: ctx, cancel: cancel, mux: http.NewServeMux(),
		model: newModel(cfg.Catalog, cfg.Agent, cfg.Now), samp: newSampler(cfg.Now), live: newLiveCache()}
	if err := u.routes(); err != nil {
		cancel()
		return nil, err
	}
	return u, nil
}

// Start begins following the catalog (the view every page reads, updated at most
// every Coalesce) and sampling rates. It returns at once; a second call does nothing.
func (u *UI) Start() {
	u.start.Do(func() {
		u.wg.Go(u.follow)
		u.wg.Go(u.sample)
		u.wg.Go(u.liveLoop)
	})
}

// Close stops the background work and ends every live stream, and waits for the
// goroutines it started. It is idempotent.
func (u *UI) Close() error {
	u.cancel()
	u.start.Do(func() {}) // a Start after Close starts nothing
	u.wg.Wait()
	return nil
}

// follow refreshes the model whenever the catalog moves, at most once per Coalesce,
// and never at the moment of the change (refreshWait).
func (u *UI) follow() {
	var last time.Time
	for {
		_, ch := u.cfg.Catalog.Watch(catalog.TopicAll)
		if wait := refreshWait(u.cfg.Coalesce, last, time.Now()); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-u.ctx.Done():
				t.Stop()
				return
			}
		}
		last = time.Now()
		u.model.refresh()
		select {
		case <-ch:
		case <-u.ctx.Done():
			return
		}
	}
}

// refreshWait is how long follow waits, at now, before reading a change of the
// catalog when it last read at last (zero: never, the first read is at once): until
// Coalesce has passed since the last read, and at least Coalesce/5 (50 ms by
// default) after the change. The second part keeps the UI's read off the moment a
// change lands: then every agent of the pool applies the same change at once, and
// on a loaded host the CPU each one spends refreshing this view (at 50 agents in
// namespaces on 2 cores, about as much as answering a blocking query, perf on
// 3 December) delays the consumers that wait on the change (blocking queries, DNS,
// the proxy). People reading the UI do not see 50 ms; a burst of changes within it
// is read once.
func refreshWait(coalesce time.Duration, last, now time.Time) time.Duration {
	if last.IsZero() {
		return 0
	}
	return max(coalesce-now.Sub(last), coalesce/5)
}

// sample records rates and round-trip times every SampleEvery.
func (u *UI) sample() {
	t := time.NewTicker(u.cfg.SampleEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		u.samp.take(u.cfg.Agent, u.cfg.Catalog, n%5 == 0)
		select {
		case <-t.C:
		case <-u.ctx.Done():
			return
		}
	}
}

// ServeHTTP serves the UI's paths, /ui/ and below.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mux.ServeHTTP(w, r)
}
