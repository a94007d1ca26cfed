package agent

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/reachability"
	"github.com/rumor-sd/rumor/ui"
)

// The web UI (package ui) is served by the HTTP API at /ui/ unless Config.DisableUI.
// It reads the catalog directly and this node through uiAgent.

// This file is the agent's only reference to package ui, so that scripts/ui-size.sh
// can measure what the UI adds to the binary by building with
// agent/testdata/noui/ui.go in its place (go build -overlay): that file declares the
// same names as this one (webUI, newUI, countRequests), and TestNoUIOverlay builds
// the agent with it.

// webUI is what the agent uses of its web UI (*ui.UI).
type webUI interface {
	http.Handler
	Start()
	Close() error
}

var _ webUI = (*ui.UI)(nil)

// newUI returns the agent's web UI, not yet started; nil when disabled.
func (a *Agent) newUI() (webUI, error) {
	if a.cfg.DisableUI {
		return nil, nil
	}
	cfg := ui.Config{Catalog: a.cat, Agent: uiAgent{a, a.cfg.Clock.Now()}, Token: a.cfg.HTTPToken,
		TokenReads: a.cfg.HTTPTokenReads, Logger: a.log.With("component", "ui"), Now: a.cfg.Clock.Now}
	if a.reach != nil { // newUI runs after Start created it
		cfg.Reachability = uiReach{a.reach}
	}
	if a.dns != nil && a.dnsStarted { // Start starts DNS before the UI: its port is known
		cfg.DNSAddr, cfg.DNSDomain = a.dns.Addr().String(), a.cfg.DNS.Domain
	}
	u, err := ui.New(cfg)
	if err != nil {
		return nil, err // not a nil *ui.UI in a non-nil interface
	}
	return u, nil
}

// uiAgent adapts an Agent to ui.Agent.
type uiAgent struct {
	a       *Agent
	started time.Time
}

var _ ui.Agent = uiAgent{}

func (x uiAgent) Self() ui.Self {
	s := apiAgent{x.a}.Self()
	return ui.Self{Name: s.Node.Name, ID: s.Node.ID, Datacenter: s.Node.Datacenter, Address: s.Node.Address,
		GossipAddr: s.GossipAddr.String(), Version: s.Version, Started: x.started}
}

func (x uiAgent) Members() []ui.Member {
	ms := x.a.Members()
	out := make([]ui.Member, len(ms))
	for i, m := range ms {
		out[i] = ui.Member{Name: m.Name, Addr: m.Addr.String(), State: m.State, Since: m.Since, RTT: m.RTT}
	}
	return out
}

func (x uiAgent) Counters() ui.Counters {
	c := ui.Counters{HTTPRequests: x.a.httpRequests.Load()}
	if x.a.dns != nil { // set in New, never changed
		c.DNSQueries = x.a.dns.Answered()
	}
	return c
}

func (x uiAgent) LocalSources() map[string]string {
	x.a.mu.Lock()
	defer x.a.mu.Unlock()
	out := map[string]string{}
	if x.a.local == nil {
		return out
	}
	for id, src := range x.a.local.Sources() {
		switch src {
		case localstate.SourceConfig:
			out[id] = ui.SourceFile
		case localstate.SourceAPI:
			out[id] = ui.SourceAPI
		default:
			out[id] = string(src)
		}
	}
	return out
}

// uiReach adapts the reachability tracker to ui.Reachability.
type uiReach struct{ t *reachability.Tracker }

var _ ui.Reachability = uiReach{}

func (x uiReach) Version() uint64 { return x.t.Version() }

func (x uiReach) Unreachable() []ui.Unreachable {
	es := x.t.Unreachable()
	out := make([]ui.Unreachable, len(es))
	for i, e := range es {
		out[i] = ui.Unreachable{Addr: e.Addr, Since: e.Since, Checked: e.Checked, Source: e.Source}
	}
	return out
}

func (x uiAgent) Upstreams() []ui.Upstream {
	ups := x.a.Upstreams()
	out := make([]ui.Upstream, len(ups))
	for i, u := range ups {
		out[i] = ui.Upstream{Service: u.Service, Tag: u.Tag, Listen: u.Listen, Instances: make([]ui.UpstreamInstance, len(u.Instances))}
		for j, in := range u.Instances {
			out[i].Instances[j] = ui.UpstreamInstance{Node: in.Node, ServiceID: in.ServiceID, Address: in.Address,
				Weight: in.Weight, Active: in.Active, Failures: in.Failures, Ejections: in.Ejections,
				EjectedUntil: in.EjectedUntil, Draining: in.Draining}
		}
	}
	return out
}

// countRequests counts every HTTP request the agent answers, for the UI's rate.
func countRequests(next http.Handler, n *atomic.Uint64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		next.ServeHTTP(w, r)
	})
}
