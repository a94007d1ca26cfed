package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/gossip/netem"
	"github.com/rumor-sd/rumor/health"
	"github.com/rumor-sd/rumor/httpapi"
)

// ErrNotRunning is returned by calls that need a started agent.
var ErrNotRunning = errors.New("agent: not running")

// Agent is one rumor node: its catalog, its gossip membership, its identity and local
// state in the data dir, and its HTTP API. Create it with New, run it with Start, stop
// it with Leave (graceful) or Shutdown.
type Agent struct {
	cfg Config
	log *slog.Logger
	cat *catalog.Catalog
	reg *prometheus.Registry // every component's metrics, served as /metrics

	// ctx lives from New to Shutdown: background loops and HTTP requests end with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// regMu serialises registrations, deregistrations and maintenance changes, across
	// both the local state and the health manager. Lock order: regMu, then mu. The
	// health manager is never called with mu held: it calls SetCheckStatus, which
	// takes mu, while holding a check's lock that Add and Remove wait for.
	regMu sync.Mutex

	mu        sync.Mutex // guards the fields below; held while writing this node's records
	started   bool
	stopped   bool
	dir       *dataDir // nil when in-memory
	nodeID    string
	writer    *catalog.Writer
	node      catalog.Node
	local     map[string]*localService // services registered here, by ID
	nodeMaint *string                  // node maintenance reason; nil when not in maintenance
	health    *health.Manager          // runs the local checks; nil before Start
	cl        cluster
	httpLn    net.Listener
	httpSrv   *http.Server
	peers     []string // peers last saved to peers.json

	// nodeChecks holds the standalone checks of the node itself (PUT
	// /v1/agent/check/register without ServiceID); its Service is zero.
	nodeChecks localService
	// gossipLeft is set once gossip has left the pool (Leave or RequestLeave);
	// leaveReq is closed, once, when an API client asked the agent to leave.
	gossipLeft bool
	leaveReq   chan struct{}
	leaveOnce  sync.Once

	shutdownOnce sync.Once
	shutdownErr  error
}

// New checks cfg and returns an agent that has not started: it holds an empty catalog
// and has touched neither the network nor the data dir.
func New(cfg Config) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cat, err := catalog.New(catalog.Config{Clock: cfg.Clock, ReapAfter: cfg.ReapAfter})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Agent{
		cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), cat: cat, reg: newRegistry(cat),
		ctx: ctx, cancel: cancel, local: make(map[string]*localService),
		leaveReq: make(chan struct{}),
	}, nil
}

// Start brings the agent up: it locks the data dir and loads the node's identity and
// services, starts gossip, publishes this node's records, joins Config.Join (failing
// if none answers), serves the HTTP API and starts the background loops (retry-join,
// maintenance). ctx bounds only the start itself (the initial join); the agent then
// runs until Leave or Shutdown. If Start fails, everything it started is stopped.
func (a *Agent) Start(ctx context.Context) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.stopped:
		return errors.New("agent: start: the agent was shut down; create a new one")
	case a.started:
		return errors.New("agent: start: already started")
	}
	a.started = true
	defer func() {
		if err != nil {
			a.abortLocked()
		}
	}()
	if err := a.loadIdentityLocked(); err != nil {
		return err
	}
	if err := a.startConfigLocked(); err != nil {
		return err
	}
	a.httpLn, err = net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("agent: HTTP API on %s: %w (is another agent running? choose another address with --http-addr)", a.cfg.HTTPAddr, err)
	}
	if a.httpLn, err = a.cfg.httpTLS(a.httpLn); err != nil {
		return err
	}
	keys, _ := a.cfg.keys() // checked by New
	newCluster := a.cfg.newCluster
	if newCluster == nil {
		newCluster = newGossip
	}
	a.cl, err = newCluster(clusterConfig{
		NodeName: a.cfg.NodeName, BindAddr: a.cfg.BindAddr, BindPort: a.cfg.BindPort,
		AdvertiseAddr: a.cfg.AdvertiseAddr, Profile: a.cfg.GossipProfile, Keys: keys,
		Store:      a.cat,
		Logger:     a.cfg.Logger.With("component", "gossip"), // gossip adds the node itself
		Registerer: a.reg,
		DebugNetem: netem.Config{Latency: a.cfg.DebugGossipDelay, Jitter: a.cfg.DebugGossipJitter},
	})
	if err != nil {
		return fmt.Errorf("agent: start gossip on %s:%d: %w", a.cfg.BindAddr, a.cfg.BindPort, err)
	}
	a.health, err = health.New(health.Config{
		Sink: checkSink{a}, Logger: a.cfg.Logger.With("node", a.cfg.NodeName),
		EnableScriptChecks: a.cfg.EnableScriptChecks, OnDeregister: a.deregisterCritical,
		Registerer: a.reg,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.node = a.nodeRecord(a.cl.LocalAddr())
	a.publishAllLocked()
	if len(a.cfg.Join) > 0 {
		n, err := a.cl.Join(ctx, a.cfg.Join)
		if err != nil {
			return fmt.Errorf("agent: join %s: %w (check the addresses and that agents run there, or use retry-join to keep trying in the background)", strings.Join(a.cfg.Join, ", "), err)
		}
		a.log.Info("joined the pool", "reached", n, "of", len(a.cfg.Join))
	}
	if err := a.serveHTTPLocked(); err != nil {
		return err
	}
	retry, what := a.cfg.RetryJoin, "retry-join"
	if len(retry) == 0 && len(a.cfg.Join) == 0 && a.dir != nil {
		retry, what = a.dir.loadPeers(), "known peers"
		a.peers = retry
	}
	if len(retry) > 0 {
		cl := a.cl
		a.wg.Go(func() { a.retryJoin(cl, retry, what) })
	}
	a.wg.Go(a.maintenance)
	// Last, so that a failed Start never has checks running: their Sink calls wait
	// for a.mu, which abortLocked holds while closing the manager.
	a.startChecksLocked()
	a.log.Info("agent started", "node_id", a.nodeID, "generation", a.writer.Generation(),
		"gossip", a.cl.LocalAddr().String(), "http", a.httpLn.Addr().String(),
		"services", len(a.local), "data_dir", a.cfg.DataDir)
	return nil
}

// loadIdentityLocked reads (or creates) the node ID, picks the generation and loads
// local services, from the data dir or, in memory, afresh.
func (a *Agent) loadIdentityLocked() error {
	if a.cfg.DataDir == "" {
		a.nodeID = newUUID()
		a.writer = catalog.NewWriter(a.cfg.NodeName, uint64(a.cfg.Clock.Now().UnixMilli()))
		return nil
	}
	dir, err := openDataDir(a.cfg.DataDir)
	if err != nil {
		return err
	}
	a.dir = dir
	if a.nodeID, err = dir.nodeID(); err != nil {
		return err
	}
	gen, err := dir.nextGeneration(a.cfg.Clock.Now())
	if err != nil {
		return err
	}
	a.writer = catalog.NewWriter(a.cfg.NodeName, gen)
	a.local, a.nodeMaint, a.nodeChecks, err = dir.loadState()
	return err
}

// nodeRecord describes this node, advertised at gossipAddr unless configured.
func (a *Agent) nodeRecord(gossipAddr netip.AddrPort) catalog.Node {
	addr := a.cfg.AdvertiseAddr
	if addr == "" && gossipAddr.IsValid() {
		addr = gossipAddr.Addr().Unmap().String()
	}
	n := catalog.Node{ID: a.nodeID, Name: a.cfg.NodeName, Address: addr,
		Datacenter: a.cfg.Datacenter, Meta: maps.Clone(a.cfg.NodeMeta)}
	if ip, err := netip.ParseAddr(addr); err == nil {
		fam := "ipv4"
		if ip.Is6() {
			fam = "ipv6"
		}
		n.TaggedAddresses = map[string]string{"lan": addr, "wan": addr, "lan_" + fam: addr, "wan_" + fam: addr}
	}
	return n
}

// serveHTTPLocked starts serving the HTTP API on the listener Start opened. There is
// no server-wide write timeout: blocking queries last minutes, and httpapi sets a
// deadline per request.
func (a *Agent) serveHTTPLocked() error {
	h, err := httpapi.New(httpapi.Config{Catalog: a.cat, Agent: apiAgent{a}, Checks: apiAgent{a}, Coordinates: apiAgent{a},
		Membership: apiAgent{a}, Token: a.cfg.HTTPToken, TokenReads: a.cfg.HTTPTokenReads, Logger: a.log.With("component", "http"),
		Metrics: a.reg, Registerer: a.reg, Keyring: apiKeyring{a}})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.httpSrv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return a.ctx },
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	srv, ln := a.httpSrv, a.httpLn
	a.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("HTTP API stopped", "error", err)
		}
	})
	return nil
}

// abortLocked undoes a failed Start.
func (a *Agent) abortLocked() {
	a.stopped = true
	a.cancel()
	if a.httpSrv != nil {
		_ = a.httpSrv.Close()
	} else if a.httpLn != nil {
		_ = a.httpLn.Close()
	}
	if a.health != nil {
		_ = a.health.Close() // no checks were added: Start adds them last
	}
	if a.cl != nil {
		_ = a.cl.Shutdown()
	}
	// Goroutines started so far never take a.mu, so waiting under it is safe.
	a.wg.Wait()
	if a.dir != nil {
		_ = a.dir.close()
	}
}

// Leave leaves the pool gracefully (peers see this node "left" and drop its records
// at once, rather than suspecting it), waiting at most until ctx ends for the goodbye
// to spread, then shuts the agent down.
func (a *Agent) Leave(ctx context.Context) error {
	a.mu.Lock()
	cl, running, left := a.cl, a.started && !a.stopped, a.gossipLeft
	a.gossipLeft = true
	a.mu.Unlock()
	var err error
	if running && cl != nil && !left {
		a.savePeers() // the pool as last seen, for the next start
		if err = cl.Leave(ctx); err != nil {
			err = fmt.Errorf("agent: leave: %w", err)
		}
	}
	return errors.Join(err, a.Shutdown())
}

// Shutdown stops the agent without a goodbye (peers will see it fail): the HTTP API,
// gossip and every goroutine the agent started, and waits for them. It is idempotent
// and may be called before Start.
func (a *Agent) Shutdown() error {
	a.shutdownOnce.Do(func() {
		a.mu.Lock()
		wasRunning := a.started && !a.stopped
		a.stopped = true
		srv, cl, dir, hm := a.httpSrv, a.cl, a.dir, a.health
		a.mu.Unlock()
		if !wasRunning {
			a.cancel()
			return
		}
		a.savePeers()
		a.cancel() // ends blocking queries and the background loops
		var errs []error
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
			cancel()
		}
		if hm != nil {
			// Before gossip stops, so the last status changes are still published;
			// without a.mu, which the manager's Sink calls take.
			_ = hm.Close()
		}
		if cl != nil {
			if err := cl.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("agent: stop gossip: %w", err))
			}
		}
		a.wg.Wait()
		if dir != nil {
			if err := dir.close(); err != nil {
				errs = append(errs, fmt.Errorf("agent: unlock data dir: %w", err))
			}
		}
		a.shutdownErr = errors.Join(errs...)
		a.log.Info("agent stopped")
	})
	return a.shutdownErr
}

// publishAllLocked writes and publishes every record of this node: the node, each
// service and each check. Used at start and after superseding an older incarnation,
// when the generation is new and so replaces the whole previous set everywhere.
func (a *Agent) publishAllLocked() {
	recs := []catalog.Record{a.writer.PutNode(&a.node)}
	if a.nodeMaint != nil {
		c := maintenanceCheck("", *a.nodeMaint)
		recs = append(recs, a.writer.PutCheck(&c))
	}
	for i := range a.nodeChecks.Checks {
		c := a.nodeChecks.checkRecord(&a.nodeChecks.Checks[i])
		recs = append(recs, a.writer.PutCheck(&c))
	}
	for _, id := range slices.Sorted(maps.Keys(a.local)) {
		recs = append(recs, a.serviceRecordsLocked(a.local[id])...)
	}
	a.applyLocked(recs)
}

// serviceRecordsLocked returns the records publishing ls: its service and its checks.
func (a *Agent) serviceRecordsLocked(ls *localService) []catalog.Record {
	recs := []catalog.Record{a.writer.PutService(&ls.Service)}
	for i := range ls.Checks {
		c := ls.checkRecord(&ls.Checks[i])
		recs = append(recs, a.writer.PutCheck(&c))
	}
	if ls.Maintenance != nil {
		c := maintenanceCheck(ls.Service.ID, *ls.Maintenance)
		recs = append(recs, a.writer.PutCheck(&c))
	}
	return recs
}

// applyLocked applies this node's new records to the catalog and broadcasts them.
func (a *Agent) applyLocked(recs []catalog.Record) {
	if _, err := a.cat.Apply(recs...); err != nil {
		// Registrations are validated before they get here: this is a bug.
		a.log.Error("own records rejected by the catalog", "error", err)
	}
	if a.cl != nil {
		a.cl.Publish(recs)
	}
}

// persistLocked saves local services, if there is a data dir.
func (a *Agent) persistLocked() error {
	if a.dir == nil {
		return nil
	}
	b, err := encodeState(a.local, a.nodeMaint, &a.nodeChecks)
	if err != nil {
		return fmt.Errorf("agent: encode local state: %w", err)
	}
	if err := writeFileAtomic(a.dir.file(servicesFile), b); err != nil {
		return fmt.Errorf("agent: save local state: %w", err)
	}
	return nil
}

// RegisterService adds or replaces a service of this node with its checks, persists
// it, publishes it and runs its checks. Checks of a previous registration of the same
// ID that the new one lacks are removed; those it keeps keep their status. Invalid
// input (a check rumor cannot run, a script check without EnableScriptChecks) yields
// an error wrapping catalog.ErrInvalid and changes nothing.
func (a *Agent) RegisterService(_ context.Context, svc definition.Service) error {
	ls, err := normalize(svc, a.policy())
	if err != nil {
		return fmt.Errorf("agent: register service %q: %w", svc.Name, err)
	}
	if err := a.lockRunning(); err != nil {
		return err
	}
	defer a.regMu.Unlock()
	id := ls.Service.ID
	for _, d := range ls.Checks {
		if other, _ := a.findCheckLocked(d.ID); other != nil && (other == &a.nodeChecks || other.Service.ID != id) {
			a.mu.Unlock()
			return fmt.Errorf("agent: register service %q: %w", svc.Name, &catalog.FieldError{Field: "service.checks.id",
				Reason: fmt.Sprintf("check ID %q is taken by %s: check IDs are unique per node", d.ID, other.owner())})
		}
	}
	old := a.local[id]
	if old != nil && old.Source == SourceConfig {
		a.mu.Unlock()
		return fmt.Errorf("agent: register service %q: %w", svc.Name, &catalog.FieldError{Field: "service.id",
			Reason: fmt.Sprintf("%q is defined in config file %s: edit the file and run `rumor reload`, or choose another ID", id, old.File)})
	}
	var removed []string
	if old != nil {
		// Kept checks keep their reported status, as the health manager keeps it.
		ls.Maintenance = old.Maintenance
		for _, d := range ls.Checks {
			if st, ok := old.Status[d.ID]; ok && slices.ContainsFunc(old.Checks, func(o definition.Check) bool { return o.ID == d.ID }) {
				if ls.Status == nil {
					ls.Status = make(map[string]checkState)
				}
				ls.Status[d.ID] = st
			}
		}
		for _, c := range old.Checks {
			if !slices.ContainsFunc(ls.Checks, func(d definition.Check) bool { return d.ID == c.ID }) {
				removed = append(removed, c.ID)
			}
		}
	}
	a.local[id] = &ls
	if err := a.persistLocked(); err != nil {
		if old != nil {
			a.local[id] = old
		} else {
			delete(a.local, id)
		}
		a.mu.Unlock()
		return err
	}
	recs := a.serviceRecordsLocked(&ls)
	for _, cid := range removed {
		recs = append(recs, a.writer.Delete(catalog.Key{Kind: catalog.KindCheck, ID: cid}))
	}
	a.applyLocked(recs)
	defs := a.healthDefsLocked(&ls)
	hm := a.health
	a.mu.Unlock()

	for _, cid := range removed {
		_ = hm.Remove(cid) // ErrUnknownCheck: it was of a kind rumor does not run
	}
	for _, d := range defs {
		if err := hm.Add(d); err != nil {
			a.log.Error("run check", "check", d.ID, "error", err)
		}
	}
	a.log.Info("service registered", "id", id, "name", ls.Service.Name, "checks", len(ls.Checks))
	return nil
}

// policy is what this agent allows in registrations beyond their own rules.
func (a *Agent) policy() definition.Policy {
	return definition.Policy{EnableScriptChecks: a.cfg.EnableScriptChecks}
}

// lockRunning takes regMu and then mu, as every change to the local state does, and
// returns ErrNotRunning, with both released, unless the agent runs. On success the
// caller holds both: it releases mu once done with the state and regMu once the change
// is published and persisted.
func (a *Agent) lockRunning() error {
	a.regMu.Lock()
	a.mu.Lock()
	if !a.started || a.stopped {
		a.mu.Unlock()
		a.regMu.Unlock()
		return ErrNotRunning
	}
	return nil
}

// DeregisterService removes a service of this node and its checks; catalog.ErrNotFound
// if there is none with that ID.
func (a *Agent) DeregisterService(_ context.Context, id string) error {
	if err := a.lockRunning(); err != nil {
		return err
	}
	defer a.regMu.Unlock()
	old := a.local[id]
	if old == nil {
		a.mu.Unlock()
		return fmt.Errorf("agent: deregister service %q: %w", id, catalog.ErrNotFound)
	}
	delete(a.local, id)
	if err := a.persistLocked(); err != nil {
		a.local[id] = old
		a.mu.Unlock()
		return err
	}
	recs := []catalog.Record{a.writer.Delete(catalog.Key{Kind: catalog.KindService, ID: id})}
	for _, c := range old.Checks {
		recs = append(recs, a.writer.Delete(catalog.Key{Kind: catalog.KindCheck, ID: c.ID}))
	}
	if old.Maintenance != nil {
		recs = append(recs, a.writer.Delete(catalog.Key{Kind: catalog.KindCheck, ID: serviceMaintenancePrefix + id}))
	}
	a.applyLocked(recs)
	hm := a.health
	a.mu.Unlock()
	for _, c := range old.Checks {
		_ = hm.Remove(c.ID)
	}
	a.log.Info("service deregistered", "id", id)
	return nil
}

// LocalServices returns the services registered on this node, sorted by ID.
func (a *Agent) LocalServices() []catalog.Service {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]catalog.Service, 0, len(a.local))
	for _, id := range slices.Sorted(maps.Keys(a.local)) {
		s := a.local[id].Service
		s.Tags, s.Meta, s.TaggedAddresses = slices.Clone(s.Tags), maps.Clone(s.Meta), maps.Clone(s.TaggedAddresses)
		out = append(out, s)
	}
	return out
}

// Catalog returns the agent's catalog, for reading and for wiring other adapters.
func (a *Agent) Catalog() *catalog.Catalog { return a.cat }

// NodeName returns this node's name.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// NodeID returns this node's persistent ID; "" before Start.
func (a *Agent) NodeID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodeID
}

// Generation returns the generation of this node's records; 0 before Start.
func (a *Agent) Generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.writer == nil {
		return 0
	}
	return a.writer.Generation()
}

// HTTPAddr returns the address the HTTP API listens on, or nil before Start.
func (a *Agent) HTTPAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.httpLn == nil {
		return nil
	}
	return a.httpLn.Addr()
}

// GossipAddr returns the address this node advertises for gossip; invalid before Start.
func (a *Agent) GossipAddr() netip.AddrPort {
	a.mu.Lock()
	cl := a.cl
	a.mu.Unlock()
	if cl == nil {
		return netip.AddrPort{}
	}
	return cl.LocalAddr()
}

// Members returns the gossip pool as this node sees it, itself included, by name.
func (a *Agent) Members() []gossip.Member {
	a.mu.Lock()
	cl := a.cl
	a.mu.Unlock()
	if cl == nil {
		return nil
	}
	return cl.Members()
}
