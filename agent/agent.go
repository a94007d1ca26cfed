package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/dnsserver"
	"github.com/rumor-sd/rumor/docker"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/health"
	"github.com/rumor-sd/rumor/httpapi"
	"github.com/rumor-sd/rumor/proxy"
	"github.com/rumor-sd/rumor/reachability"
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

	// regMu serialises changes to the local state across the core and the health
	// manager (see change). Lock order: regMu, then mu. The health manager is never
	// called with mu held: it calls SetCheckStatus, which takes mu, while holding a
	// check's lock that Add and Remove wait for.
	regMu sync.Mutex

	mu      sync.Mutex // guards the fields below; held while writing this node's records
	started bool
	stopped bool
	dir     *dataDir // nil when in-memory
	nodeID  string
	node    catalog.Node
	local   *localstate.Core // services, checks, maintenance; nil before Start
	state   *stateLog        // where local saves its changes; nil in memory
	health  *health.Manager  // runs the local checks; nil before Start
	docker  *docker.Watcher  // registers containers' services; nil unless Config.Docker.Enabled
	mdns    *agentMDNS       // mDNS announce, import and zero-config join; nil when off
	cl      cluster
	httpLn  net.Listener
	httpSrv *http.Server
	ui      webUI // the web UI; nil when disabled or before Start
	// dns is the DNS server (dns.go); nil when off. dnsStarted is set once it listens.
	dns        *dnsserver.Server
	dnsStarted bool
	// httpRequests counts the HTTP requests answered, for the UI's rate.
	httpRequests atomic.Uint64
	peers        []string // peers last saved to peers.json

	// gossipLeft is set once gossip has left the pool (Leave or RequestLeave);
	// leaveReq is closed, once, when an API client asked the agent to leave.
	gossipLeft bool
	leaveReq   chan struct{}
	leaveOnce  sync.Once

	// proxy is the local proxy (agent/proxy.go); nil before Start.
	proxy *proxy.Proxy
	// reach is what this host can reach (agent/reachability.go); nil before Start.
	reach *reachability.Tracker

	shutdownOnce sync.Once
	shutdownErr  error

	// moves holds the deregistered instances watched for a move (moves.go).
	moves *moveWatch

	// own watches for versions of this node's records it did not issue (ownrecords.go).
	own *ownRecords
	// failed is closed, once, when the agent cannot go on (Failed, Err: ownrecords.go).
	failed   chan struct{}
	failOnce sync.Once
	failErr  error
}

// New checks cfg and returns an agent that has not started: it holds an empty catalog
// and has touched neither the network nor the data dir.
func New(cfg Config) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	own := newOwnRecords() // integrity: copies of this node's records from elsewhere (ownrecords.go)
	cat, err := catalog.New(catalog.Config{Clock: cfg.Clock, ReapAfter: cfg.ReapAfter,
		Self: cfg.NodeName, OnOwnRecords: own.seen})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg := newRegistry(cat)
	moves := newMoveWatch() // moves.go
	reg.MustRegister(own.repairs, moves.recorded)
	a := &Agent{
		cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), cat: cat, reg: reg,
		ctx: ctx, cancel: cancel, leaveReq: make(chan struct{}),
		own: own, failed: make(chan struct{}), moves: moves,
	}
	if a.dns, err = a.newDNS(); err != nil {
		cancel()
		return nil, err
	}
	return a, nil
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
	if err := a.setupDockerLocked(); err != nil {
		return err
	}
	a.httpLn, err = net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("agent: HTTP API on %s: %w (is another agent running? choose another address with --http-addr)", a.cfg.HTTPAddr, err)
	}
	// The limit counts TCP connections, under TLS, so the server still sees *tls.Conn.
	a.httpLn = newLimitListener(a.httpLn, a.cfg.HTTPMaxConns, a.reg, a.log.With("component", "http"))
	if a.httpLn, err = a.cfg.httpTLS(a.httpLn); err != nil {
		return err
	}
	keys, err := a.keyringKeys()
	if err != nil {
		return err
	}
	var saveKeys func([][]byte) error
	if a.dir != nil {
		saveKeys = a.dir.saveKeyring
	}
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
		Hook:       a.cfg.GossipHook,
		// The keyring is saved in the data dir at every change (keyringfile.go).
		OnKeyringChange: saveKeys,
		NodeID:          a.nodeID, // in the node meta: a name conflict fails the join
	})
	if err != nil {
		return fmt.Errorf("agent: start gossip on %s:%d: %w", a.cfg.BindAddr, a.cfg.BindPort, err)
	}
	a.health, err = health.New(health.Config{
		Sink: checkSink{a}, Logger: a.cfg.Logger.With("node", a.cfg.NodeName),
		EnableScriptChecks: a.configPolicy().EnableScriptChecks, OnDeregister: a.deregisterCritical,
		Registerer: a.reg,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.node = a.nodeRecord(a.cl.LocalAddr())
	a.local.SetNode(a.node)
	a.applyLocked(a.local.All())
	if err := a.startReachLocked(); err != nil {
		return fmt.Errorf("agent: reachability: %w", err)
	}
	if err := a.startProxyLocked(); err != nil {
		return fmt.Errorf("agent: local proxy: %w", err)
	}
	if len(a.cfg.Join) > 0 {
		n, err := a.cl.Join(ctx, withGossipPort(a.cfg.Join))
		if err != nil {
			return fmt.Errorf("agent: join %s: %w (check the addresses and that agents run there, or use retry-join to keep trying in the background)", strings.Join(a.cfg.Join, ", "), err)
		}
		a.log.Info("joined the pool", "reached", n, "of", len(a.cfg.Join))
	}
	// DNS before HTTP: the web UI shows the DNS server's address (its dig line).
	if err := a.startDNSLocked(ctx); err != nil {
		return err
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
	a.wg.Go(a.repairOwnLoop)
	a.wg.Go(a.movesLoop)
	// Last, so that a failed Start never has checks running: their Sink calls wait
	// for a.mu, which abortLocked holds while closing the manager. Add never waits
	// for a Sink call, so holding a.mu is safe here.
	a.runChecks(a.health, localstate.Ready{Start: a.local.Runnable()})
	a.startDocker() // last too: its calls wait for a.mu
	a.startMDNSLocked(keys)
	a.log.Info("agent started", "node_id", a.nodeID, "generation", a.local.Generation(),
		"gossip", a.cl.LocalAddr().String(), "http", a.httpLn.Addr().String(),
		"services", a.local.Len(), "data_dir", a.cfg.DataDir)
	return nil
}

// loadIdentityLocked reads (or creates) the node ID, picks the generation and loads
// the local state, from the data dir or, in memory, afresh.
func (a *Agent) loadIdentityLocked() error {
	cfg := localstate.Config{Policy: a.policy(), ConfigPolicy: a.configPolicy(), Limits: a.cfg.Limits}
	var saved *savedState
	if a.cfg.DataDir == "" {
		a.nodeID = newUUID()
		cfg.Writer = catalog.NewWriter(a.cfg.NodeName, uint64(a.cfg.Clock.Now().UnixMilli()))
	} else {
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
		cfg.Writer = catalog.NewWriter(a.cfg.NodeName, gen)
		if saved, err = dir.openState(a.log, a.reg); err != nil {
			return err
		}
		cfg.State, cfg.Store, a.state = saved.st, saved.log, saved.log
		if cfg.Moves, err = dir.loadMoves(a.cfg.NodeName, a.log.Warn); err != nil {
			return err
		}
	}
	local, err := localstate.New(cfg) // only a loaded state can be refused
	if saved != nil {
		err = a.dir.settleState(saved, err)
	}
	if err != nil {
		return err
	}
	a.local = local
	return nil
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
	web, err := a.newUI()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	var webHandler http.Handler // a nil *ui.UI would be a non-nil handler
	if web != nil {
		a.ui, webHandler = web, web
		web.Start()
	}
	h, err := httpapi.New(httpapi.Config{UI: webHandler, Catalog: a.cat, Agent: apiAgent{a}, Checks: apiAgent{a}, Coordinates: apiAgent{a},
		Membership: apiAgent{a}, Token: a.cfg.HTTPToken, TokenReads: a.cfg.HTTPTokenReads, Logger: a.log.With("component", "http"),
		Metrics: a.reg, Registerer: a.reg, Keyring: apiKeyring{a},
		Proxy: apiProxy{a}, Reachability: apiReach{a.reach}, Mover: a})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.httpSrv = &http.Server{
		Handler:           boundBodies(countRequests(h, &a.httpRequests), a.cfg.HTTPBodyTimeout),
		ReadHeaderTimeout: httpHeaderTimeout, // see httplimits.go for the server's bounds
		IdleTimeout:       httpIdleTimeout,
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
	if a.ui != nil {
		_ = a.ui.Close()
	}
	if a.dns != nil && a.dnsStarted {
		_ = a.dns.Close()
	}
	if a.health != nil {
		_ = a.health.Close() // no checks were added: Start adds them last
	}
	if a.docker != nil {
		_ = a.docker.Close() // never started: Start starts it last
	}
	if a.proxy != nil {
		_ = a.proxy.Close()
	}
	if a.reach != nil {
		_ = a.reach.Close()
	}
	if a.cl != nil {
		_ = a.cl.Shutdown()
	}
	// Goroutines started so far never take a.mu, so waiting under it is safe.
	a.wg.Wait()
	if a.state != nil {
		_ = a.state.close()
	}
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
		a.closeMDNS() // goodbyes on the LAN; imports withdrawn while gossip still runs
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
		srv, cl, dir, hm, web, st := a.httpSrv, a.cl, a.dir, a.health, a.ui, a.state
		px, reach := a.proxy, a.reach
		a.mu.Unlock()
		if !wasRunning {
			a.cancel()
			return
		}
		a.savePeers()
		a.cancel() // ends blocking queries and the background loops
		if web != nil {
			_ = web.Close() // ends the UI's live streams, which srv.Shutdown would wait for
		}
		a.closeDocker()
		a.closeMDNS()
		var errs []error
		if err := a.closeDNS(); err != nil {
			errs = append(errs, err)
		}
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
			cancel()
		}
		if px != nil {
			_ = px.Close()
		}
		if reach != nil {
			_ = reach.Close()
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
		if st != nil { // after the manager: its last status changes are saved
			if err := st.close(); err != nil {
				errs = append(errs, fmt.Errorf("agent: close the local state: %w", err))
			}
		}
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

// applyLocked applies this node's new records to the catalog and broadcasts them.
func (a *Agent) applyLocked(recs []catalog.Record) {
	a.own.noteIssued(recs)   // before Publish: an echo never looks foreign
	a.noteDeregistered(recs) // before the catalog forgets the names (moves.go)
	if _, err := a.cat.ApplyOwn(recs...); err != nil {
		// Registrations are validated before they get here: this is a bug.
		a.log.Error("own records rejected by the catalog", "error", err)
	}
	if a.cl != nil {
		a.cl.Publish(recs)
	}
}

// policy is what this agent allows in registrations through the API (and the
// Docker watcher) beyond their own rules: script checks need EnableScriptChecks and
// a token that guards the API's writes.
func (a *Agent) policy() definition.Policy {
	p := definition.Policy{EnableScriptChecks: a.cfg.EnableScriptChecks && a.cfg.HTTPToken != ""}
	if a.cfg.EnableScriptChecks && a.cfg.HTTPToken == "" {
		p.ScriptChecksRefused = definition.ErrScriptChecksNeedToken
	}
	return p
}

// configPolicy is policy for the services of config files, which only who can
// write them can change: script checks with either flag. The health manager runs
// script checks under the wider of the two, the core deciding which to run.
func (a *Agent) configPolicy() definition.Policy {
	return definition.Policy{EnableScriptChecks: a.cfg.EnableScriptChecks || a.cfg.EnableLocalScriptChecks}
}

// change makes one change to the local state, the only way anything changes it: f
// runs on the core with both locks held (the core appends the change to the log), its
// records are applied and published before a.mu is released, and its checks are
// started and stopped after (the health manager may not be called with a.mu held) but
// before regMu is, so changes reach the manager in order. It returns once the change
// is durable, waiting for the log's fsync without the locks, so that the changes made
// meanwhile share it (group commit). Errors from the core are wrapped as the agent's.
func (a *Agent) change(f func(*localstate.Core) (localstate.Ready, error)) error {
	a.regMu.Lock()
	a.mu.Lock()
	if !a.started || a.stopped || a.local == nil {
		a.mu.Unlock()
		a.regMu.Unlock()
		return ErrNotRunning
	}
	rd, err := f(a.local)
	if err == nil {
		a.applyLocked(rd.Records)
		if rd.MovesChanged {
			a.saveMovesLocked()
		}
	}
	hm, st := a.health, a.state
	var seq uint64
	if st != nil {
		seq = st.last()
	}
	a.mu.Unlock()
	if err != nil {
		a.regMu.Unlock()
		return fmt.Errorf("agent: %w", err)
	}
	a.runChecks(hm, rd)
	if rd.UpstreamsChanged {
		a.syncUpstreams()
	}
	a.regMu.Unlock()
	a.announceLocal()
	if st != nil {
		if err := st.flush(seq); err != nil {
			return fmt.Errorf("agent: the change is made but may not survive a power failure: %w", err)
		}
	}
	return nil
}

// runChecks starts and stops what a change asks of the health manager.
func (a *Agent) runChecks(hm *health.Manager, rd localstate.Ready) {
	for _, id := range rd.Stop {
		_ = hm.Remove(id) // ErrUnknownCheck: it was never run (a kind rumor does not run)
	}
	for _, d := range rd.Start {
		if err := hm.Add(d); err != nil {
			a.log.Error("run check", "check", d.ID, "error", err)
		}
	}
}

// RegisterService adds or replaces a service of this node with its checks (see
// localstate.Core.RegisterService), persists it, publishes it and runs its checks.
// Invalid input yields an error wrapping catalog.ErrInvalid and changes nothing.
func (a *Agent) RegisterService(_ context.Context, svc definition.Service) error {
	err := a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.RegisterService(svc) })
	if err == nil {
		a.log.Info("service registered", "id", cmp.Or(svc.ID, svc.Name), "name", svc.Name)
	}
	return err
}

// DeregisterService removes a service of this node and its checks; catalog.ErrNotFound
// if there is none with that ID.
func (a *Agent) DeregisterService(_ context.Context, id string) error {
	err := a.change(func(c *localstate.Core) (localstate.Ready, error) { return c.DeregisterService(id) })
	if err == nil {
		a.log.Info("service deregistered", "id", id)
	}
	return err
}

// LocalServices returns the services registered on this node, sorted by ID.
func (a *Agent) LocalServices() []catalog.Service {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.local == nil {
		return []catalog.Service{}
	}
	return a.local.Services()
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
	if a.local == nil {
		return 0
	}
	return a.local.Generation()
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
