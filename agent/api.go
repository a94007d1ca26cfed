package agent

import (
	"context"
	"maps"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/httpapi"
)

// apiAgent adapts an Agent to the httpapi.Agent interface.
type apiAgent struct{ a *Agent }

var _ httpapi.Agent = apiAgent{}

func (x apiAgent) Self() httpapi.Self {
	a := x.a
	a.mu.Lock()
	n := a.node
	a.mu.Unlock()
	n.Meta, n.TaggedAddresses = maps.Clone(n.Meta), maps.Clone(n.TaggedAddresses)
	return httpapi.Self{Node: n, GossipAddr: a.GossipAddr(), Version: a.cfg.Version}
}

func (x apiAgent) Members() []httpapi.Member {
	ms := x.a.Members()
	out := make([]httpapi.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, httpapi.Member{Name: m.Name, Addr: m.Addr, State: m.State})
	}
	return out
}

func (x apiAgent) LocalServices() []catalog.Service { return x.a.LocalServices() }

func (x apiAgent) RegisterService(ctx context.Context, reg httpapi.Registration) error {
	checks := make([]CheckDefinition, len(reg.Checks))
	for i, c := range reg.Checks {
		// The two types have the same fields by design; this conversion stops
		// compiling if they drift apart.
		checks[i] = CheckDefinition(c)
	}
	return x.a.RegisterService(ctx, reg.Service, checks)
}

func (x apiAgent) DeregisterService(ctx context.Context, id string) error {
	return x.a.DeregisterService(ctx, id)
}

var _ httpapi.Checks = apiAgent{}

func (x apiAgent) LocalChecks() []httpapi.LocalCheck {
	cs := x.a.LocalChecks()
	out := make([]httpapi.LocalCheck, len(cs))
	for i, c := range cs {
		out[i] = httpapi.LocalCheck{Check: c.Check, ServiceName: c.ServiceName, ServiceTags: c.ServiceTags,
			Definition: httpapi.CheckDefinition(c.Definition)}
	}
	return out
}

func (x apiAgent) UpdateTTL(ctx context.Context, id string, status catalog.Status, output string) error {
	return x.a.UpdateTTL(ctx, id, status, output)
}

func (x apiAgent) SetMaintenance(ctx context.Context, serviceID string, enable bool, reason string) error {
	return x.a.SetMaintenance(ctx, serviceID, enable, reason)
}
