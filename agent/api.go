package agent

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/gossip"
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
		hm := httpapi.Member{Name: m.Name, Addr: m.Addr, State: m.State, Since: m.Since, RTT: m.RTT}
		if c := m.Coordinate; c != nil {
			hm.Coordinate = &httpapi.Coordinate{Vec: slices.Clone(c.Vec), Error: c.Error, Adjustment: c.Adjustment, Height: c.Height}
		}
		out = append(out, hm)
	}
	return out
}

var _ httpapi.Coordinates = apiAgent{}

// RTTsFrom estimates round trips from a node with gossip's coordinates.
func (x apiAgent) RTTsFrom(from string) (map[string]time.Duration, bool) {
	return gossip.RTTsFrom(x.a.Members(), from)
}

func (x apiAgent) LocalServices() []catalog.Service { return x.a.LocalServices() }

func (x apiAgent) RegisterService(ctx context.Context, svc definition.Service) error {
	return x.a.RegisterService(ctx, svc)
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
			Definition: c.Definition}
	}
	return out
}

func (x apiAgent) UpdateTTL(ctx context.Context, id string, status catalog.Status, output string) error {
	return x.a.UpdateTTL(ctx, id, status, output)
}

func (x apiAgent) RegisterCheck(ctx context.Context, def definition.Check) error {
	return x.a.RegisterCheck(ctx, def)
}

func (x apiAgent) DeregisterCheck(ctx context.Context, id string) error {
	return x.a.DeregisterCheck(ctx, id)
}

func (x apiAgent) SetMaintenance(ctx context.Context, serviceID string, enable bool, reason string) error {
	return x.a.SetMaintenance(ctx, serviceID, enable, reason)
}
