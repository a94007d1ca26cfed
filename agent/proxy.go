package agent

import (
	"slices"
	"time"

	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/httpapi"
	"github.com/rumor-sd/rumor/proxy"
)

// The local proxy (package proxy) listens for each upstream and forwards to the
// healthy instances of its service in the catalog. Upstreams come from the agent's
// config (--upstream, a config file's top-level "upstreams") and from the
// definitions of this node's services ("upstreams" in a service, through config
// files or the HTTP API); the proxy follows every change of the latter.

// ProxyConfig configures the local proxy.
type ProxyConfig struct {
	// Upstreams are listeners of the agent itself (--upstream, config files'
	// top-level "upstreams"). Default: none.
	Upstreams []definition.Upstream
	// DrainTimeout is how long connections to an instance that left rotation may
	// stay open. Default 30s.
	DrainTimeout time.Duration
	// SlowStart is how long a new instance takes to reach its full weight. Default
	// 10s.
	SlowStart time.Duration
	// Engine is how the proxy forwards connections (proxy.EngineEpoll,
	// proxy.EngineGoroutines). Default proxy.DefaultEngine.
	Engine proxy.Engine
}

// startProxyLocked creates the proxy and opens the listeners of the upstreams known
// at start. A listener of the agent's own upstreams that cannot be opened fails
// Start (the port is taken); one of a service's is logged, as a check that cannot
// run is, and the service stays registered.
func (a *Agent) startProxyLocked() error {
	cl, self := a.cl, a.cfg.NodeName
	// The proxy calls RTTs while a.mu is held (here, at Start): it must not take it.
	rtts := func() map[string]time.Duration {
		m, _ := gossip.RTTsFrom(cl.Members(), self)
		return m
	}
	p, err := proxy.New(proxy.Config{
		Catalog: a.cat, Logger: a.log.With("component", "proxy"), Registerer: a.reg,
		RTTs: rtts, Reporter: a.reach, DrainTimeout: a.cfg.Proxy.DrainTimeout, SlowStart: a.cfg.Proxy.SlowStart,
		Engine: a.cfg.Proxy.Engine,
	})
	if err != nil {
		return err
	}
	a.proxy = p
	if err := p.Set(a.cfg.Proxy.Upstreams); err != nil {
		return err
	}
	if err := p.Set(a.upstreamsLocked()); err != nil {
		a.log.Error("local proxy: the upstreams of services not all applied", "error", err)
	}
	return nil
}

// upstreamsLocked is every upstream: the agent's and its services'.
func (a *Agent) upstreamsLocked() []definition.Upstream {
	return slices.Concat(a.cfg.Proxy.Upstreams, a.local.Upstreams())
}

// syncUpstreams gives the proxy the upstreams after a change that moved them. A
// listener that cannot open is logged (the registration stands, like a check that
// cannot run).
func (a *Agent) syncUpstreams() {
	a.mu.Lock()
	p, ups := a.proxy, a.upstreamsLocked()
	a.mu.Unlock()
	if p == nil {
		return
	}
	if err := p.Set(ups); err != nil {
		a.log.Error("local proxy: upstreams not all applied", "error", err)
	}
}

// Upstreams reports the local proxy's upstreams and their instances.
func (a *Agent) Upstreams() []proxy.UpstreamStatus {
	a.mu.Lock()
	p := a.proxy
	a.mu.Unlock()
	if p == nil {
		return []proxy.UpstreamStatus{}
	}
	return p.Upstreams()
}

// apiProxy adapts the agent's proxy to httpapi.Proxy.
type apiProxy struct{ a *Agent }

var _ httpapi.Proxy = apiProxy{}

func (x apiProxy) Upstreams() []httpapi.Upstream {
	ups := x.a.Upstreams()
	out := make([]httpapi.Upstream, 0, len(ups))
	for _, u := range ups {
		hu := httpapi.Upstream{Service: u.Service, Tag: u.Tag, Near: u.Near, LocalBindAddress: u.LocalBindAddress,
			LocalBindPort: u.LocalBindPort, Listen: u.Listen, Instances: make([]httpapi.UpstreamInstance, 0, len(u.Instances))}
		for _, in := range u.Instances {
			hi := httpapi.UpstreamInstance{Node: in.Node, ServiceID: in.ServiceID, Address: in.Address, Weight: in.Weight,
				Active: in.Active, Failures: in.Failures, Ejections: in.Ejections, Draining: in.Draining}
			if !in.EjectedUntil.IsZero() {
				hi.EjectedUntil = in.EjectedUntil.UTC().Format(time.RFC3339Nano)
			}
			hu.Instances = append(hu.Instances, hi)
		}
		out = append(out, hu)
	}
	return out
}
