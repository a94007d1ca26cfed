package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
	"github.com/rumor-sd/rumor/httpapi"
)

// ReloadResult says what a reload changed, by service ID, each list sorted.
type ReloadResult struct {
	Added     []string // defined in the files now, not before
	Changed   []string // defined differently: republished, kept checks keep their status
	Removed   []string // no longer defined: deregistered
	Unchanged []string // defined the same: untouched, not republished
}

// invalidConfig marks a configuration refused because it is wrong (not because
// saving failed): errors.Is(err, catalog.ErrInvalid) holds. Its message is the list
// of problems as they are, one per line, each naming its file: a prefix would
// label only the first line.
type invalidConfig struct{ err error }

func (e invalidConfig) Error() string   { return e.err.Error() }
func (e invalidConfig) Unwrap() []error { return []error{e.err, catalog.ErrInvalid} }

// Reload re-reads the services of the config files (Config.ConfigServices) and
// applies the difference with those in force: services added, changed and removed
// are published (or deregistered); unchanged ones keep their checks' state and
// produce no record, so nothing is re-broadcast. Services registered through the API
// are never touched. If the files are invalid, or a definition clashes with an API
// registration, nothing changes and the error (wrapping catalog.ErrInvalid) names
// every problem: the previous configuration stays in force.
func (a *Agent) Reload(ctx context.Context) (ReloadResult, error) {
	r, err := a.reload(ctx)
	if err != nil && !errors.Is(err, ErrNotRunning) {
		a.log.Error("reload refused; the previous configuration stays in force", "error", err)
	}
	return r, err
}

func (a *Agent) reload(_ context.Context) (ReloadResult, error) {
	defs, err := a.configServices()
	if err != nil {
		return ReloadResult{}, err
	}
	if err := a.lockRunning(); err != nil {
		return ReloadResult{}, err
	}
	defer a.regMu.Unlock()
	p, err := a.planConfigLocked(defs)
	if err != nil {
		a.mu.Unlock()
		return ReloadResult{}, err
	}
	prev := maps.Clone(a.local)
	p.applyTo(a.local)
	if err := a.persistLocked(); err != nil {
		a.local = prev // the previous configuration stays in force
		a.mu.Unlock()
		return ReloadResult{}, err
	}
	var recs []catalog.Record
	var defsToRun []definition.Check
	for _, ls := range p.put {
		recs = append(recs, a.serviceRecordsLocked(ls)...)
		defsToRun = append(defsToRun, a.healthDefsLocked(ls)...)
	}
	for _, cid := range p.droppedChecks {
		recs = append(recs, a.writer.Delete(catalog.Key{Kind: catalog.KindCheck, ID: cid}))
	}
	for _, ls := range p.removed {
		recs = append(recs, a.writer.Delete(catalog.Key{Kind: catalog.KindService, ID: ls.Service.ID}))
		if ls.Maintenance != nil {
			recs = append(recs, a.writer.Delete(catalog.Key{Kind: catalog.KindCheck, ID: serviceMaintenancePrefix + ls.Service.ID}))
		}
	}
	if len(recs) > 0 {
		a.applyLocked(recs)
	}
	hm := a.health
	a.mu.Unlock()

	for _, cid := range p.droppedChecks {
		_ = hm.Remove(cid) // ErrUnknownCheck: a kind rumor does not run
	}
	for _, d := range defsToRun {
		if err := hm.Add(d); err != nil {
			a.log.Error("run check", "check", d.ID, "error", err)
		}
	}
	r := p.result
	a.log.Info("configuration reloaded", "added", r.Added, "changed", r.Changed, "removed", r.Removed, "unchanged", len(r.Unchanged))
	return r, nil
}

// configServices calls Config.ConfigServices; none without it.
func (a *Agent) configServices() ([]ConfigService, error) {
	if a.cfg.ConfigServices == nil {
		return nil, nil
	}
	defs, err := a.cfg.ConfigServices()
	if err != nil {
		return nil, invalidConfig{err}
	}
	return defs, nil
}

// startConfigLocked applies the config files' services at Start, over the local
// state just loaded: services defined as before keep their checks' state; those no
// longer defined are dropped. Nothing is published yet (Start publishes everything).
func (a *Agent) startConfigLocked() error {
	defs, err := a.configServices()
	if err != nil {
		return err
	}
	p, err := a.planConfigLocked(defs)
	if err != nil {
		return err
	}
	p.applyTo(a.local)
	if len(p.result.Added)+len(p.result.Changed)+len(p.result.Removed) > 0 || len(defs) > 0 {
		if err := a.persistLocked(); err != nil {
			return err
		}
	}
	if r := p.result; len(defs) > 0 || len(r.Removed) > 0 {
		a.log.Info("services from config files", "added", r.Added, "changed", r.Changed, "removed", r.Removed, "unchanged", len(r.Unchanged))
	}
	return nil
}

// configPlan is what applying a set of config definitions to the local services
// means.
type configPlan struct {
	put           []*localService // added or changed, to publish and run
	removed       []*localService // config services no longer defined
	droppedChecks []string        // checks of changed or removed services that go away
	files         map[string]string
	result        ReloadResult
}

// applyTo makes local hold the planned services.
func (p *configPlan) applyTo(local map[string]*localService) {
	for _, ls := range p.put {
		local[ls.Service.ID] = ls
	}
	for _, ls := range p.removed {
		delete(local, ls.Service.ID)
	}
	for id, file := range p.files { // unchanged services may have moved to another file
		if ls := local[id]; ls != nil && ls.File != file {
			c := *ls
			c.File = file
			local[id] = &c
		}
	}
}

// planConfigLocked validates defs as registrations and diffs them against the
// config services in force. It reports every problem, each naming the file and the
// service; it changes nothing.
func (a *Agent) planConfigLocked(defs []ConfigService) (configPlan, error) {
	p := configPlan{files: map[string]string{}}
	var errs []error
	want := map[string]*localService{}
	for _, def := range defs {
		ls, err := normalize(def.Service, a.policy())
		id := ls.Service.ID
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: service %q: %w", def.File, id, err))
			continue
		}
		ls.Source, ls.File = SourceConfig, def.File
		if prev := want[id]; prev != nil {
			errs = append(errs, fmt.Errorf("%s: service %q is also defined in %s: service IDs are unique per node", def.File, id, prev.File))
			continue
		}
		if old := a.local[id]; old != nil && old.Source != SourceConfig {
			errs = append(errs, fmt.Errorf("%s: service %q: this ID is registered through the %s; deregister it (rumor deregister %s) or give the file's service another id", def.File, id, old.Source, id))
			continue
		}
		want[id] = &ls
	}
	// Check IDs are unique per node, across config and API services alike.
	owner := map[string]string{}
	for _, ls := range a.local {
		if ls.Source != SourceConfig {
			for _, d := range ls.Checks {
				owner[d.ID] = ls.Service.ID
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		for _, d := range want[id].Checks {
			if o, taken := owner[d.ID]; taken && o != id {
				errs = append(errs, fmt.Errorf("%s: service %q: check ID %q is taken by service %q: check IDs are unique per node", want[id].File, id, d.ID, o))
			}
			owner[d.ID] = id
		}
	}
	if len(errs) > 0 {
		return configPlan{}, invalidConfig{errors.Join(errs...)}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		ls, old := want[id], a.local[id]
		p.files[id] = ls.File
		switch {
		case old == nil:
			p.result.Added = append(p.result.Added, id)
		case sameDefinition(old, ls):
			p.result.Unchanged = append(p.result.Unchanged, id)
			continue
		default:
			p.result.Changed = append(p.result.Changed, id)
			carryOver(old, ls)
			for _, c := range old.Checks {
				if !slices.ContainsFunc(ls.Checks, func(d definition.Check) bool { return d.ID == c.ID }) {
					p.droppedChecks = append(p.droppedChecks, c.ID)
				}
			}
		}
		p.put = append(p.put, ls)
	}
	for _, id := range slices.Sorted(maps.Keys(a.local)) {
		if old := a.local[id]; old.Source == SourceConfig && want[id] == nil {
			p.removed = append(p.removed, old)
			p.result.Removed = append(p.result.Removed, id)
			for _, c := range old.Checks {
				p.droppedChecks = append(p.droppedChecks, c.ID)
			}
		}
	}
	return p, nil
}

// carryOver gives a new definition of a service what the old one had gained while
// running: its maintenance mode and the last status of every check it keeps.
func carryOver(old, ls *localService) {
	ls.Maintenance = old.Maintenance
	for _, d := range ls.Checks {
		st, ok := old.Status[d.ID]
		if !ok || !slices.ContainsFunc(old.Checks, func(o definition.Check) bool { return o.ID == d.ID }) {
			continue
		}
		if ls.Status == nil {
			ls.Status = make(map[string]checkState)
		}
		ls.Status[d.ID] = st
	}
}

// sameDefinition reports whether two local services are defined identically (their
// runtime state aside), treating empty and absent lists and maps as equal: a service
// read back from the state file must compare equal to the same one read from its
// config file.
func sameDefinition(a, b *localService) bool {
	x, y := a.Service, b.Service
	if !slices.Equal(x.Tags, y.Tags) || !maps.Equal(x.Meta, y.Meta) || !maps.Equal(x.TaggedAddresses, y.TaggedAddresses) {
		return false
	}
	x.Tags, x.Meta, x.TaggedAddresses = nil, nil, nil
	y.Tags, y.Meta, y.TaggedAddresses = nil, nil, nil
	if !reflect.DeepEqual(x, y) || len(a.Checks) != len(b.Checks) {
		return false
	}
	for i := range a.Checks {
		c, d := a.Checks[i], b.Checks[i]
		if !slices.Equal(c.ScriptArgs, d.ScriptArgs) || !maps.EqualFunc(c.Header, d.Header, slices.Equal) {
			return false
		}
		c.ScriptArgs, c.Header, d.ScriptArgs, d.Header = nil, nil, nil, nil
		if !reflect.DeepEqual(c, d) {
			return false
		}
	}
	return true
}

var _ httpapi.Reloader = apiAgent{}

// Reload implements httpapi.Reloader.
func (x apiAgent) Reload(ctx context.Context) (httpapi.ReloadResult, error) {
	r, err := x.a.Reload(ctx)
	return httpapi.ReloadResult(r), err
}
