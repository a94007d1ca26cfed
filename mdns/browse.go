package mdns

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// Event kinds reported by Browse.
const (
	EventAdd    = "add"
	EventUpdate = "update"
	EventRemove = "remove"
)

// Event is one change seen by Browse: an instance (or, when browsing types, a service
// type) added, updated or removed.
type Event struct {
	Kind     string    `json:"event"`
	Type     string    `json:"type"`
	Instance *Instance `json:"instance,omitempty"`
}

// BrowseConfig configures Browse.
type BrowseConfig struct {
	// Type is the service type to list ("_http._tcp"); "" enumerates the LAN's types
	// (_services._dns-sd._udp.local).
	Type string
	// Ifaces and IfacesExclude are as in Config.
	Ifaces, IfacesExclude []string
	// Logger receives logs. Default: discard.
	Logger *slog.Logger
}

// Browse queries the LAN continuously until ctx ends and calls on, from one goroutine,
// for every change it sees. It needs no agent: `rumor browse` runs it.
func Browse(ctx context.Context, cfg BrowseConfig, on func(Event)) error {
	if err := checkGuard(); err != nil {
		return err
	}
	if cfg.Type != "" {
		if err := ValidateType(cfg.Type); err != nil {
			return err
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, _ := newMetrics(nil)
	var mu sync.Mutex
	last := map[string][]Instance{}
	onChange := func(iface, typ string, insts []Instance) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range diff(typ, last[iface], insts) {
			on(ev)
		}
		last[iface] = insts
	}
	var lastTypes []string
	onTypes := func(types []string) {
		for _, t := range types {
			if !slices.Contains(lastTypes, t) {
				on(Event{Kind: EventAdd, Type: t})
			}
		}
		for _, t := range lastTypes {
			if !slices.Contains(types, t) {
				on(Event{Kind: EventRemove, Type: t})
			}
		}
		lastTypes = types
	}
	var types []string
	if cfg.Type != "" {
		types = []string{strings.ToLower(cfg.Type)}
	}
	q, err := openQuerier(log, m, types, cfg.Type == "", onChange, onTypes)
	if err != nil {
		return err
	}
	ifs, err := systemIfaces()
	if err != nil {
		return err
	}
	q.setIfaces(Select(ifs, cfg.Ifaces, cfg.IfacesExclude))
	q.run(ctx)
	return nil
}

// diff returns the events that turn old into new (both sorted by name).
func diff(typ string, old, new []Instance) []Event {
	var out []Event
	for i := range new {
		j := slices.IndexFunc(old, func(o Instance) bool { return o.Name == new[i].Name })
		switch {
		case j < 0:
			out = append(out, Event{Kind: EventAdd, Type: typ, Instance: &new[i]})
		case !old[j].Equal(new[i]):
			out = append(out, Event{Kind: EventUpdate, Type: typ, Instance: &new[i]})
		}
	}
	for i := range old {
		if !slices.ContainsFunc(new, func(n Instance) bool { return n.Name == old[i].Name }) {
			out = append(out, Event{Kind: EventRemove, Type: typ, Instance: &old[i]})
		}
	}
	return out
}
