package agent

import (
	"context"
	"errors"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/httpapi"
)

// ConfigService is a service defined in a config file, as the config package reads
// it for Config.ConfigServices: the definition as written and its file. The agent
// owns every service it is given so: Reload adds, replaces and removes them.
type ConfigService = localstate.ConfigService

// ReloadResult says what a reload changed, by service ID, each list sorted.
type ReloadResult = localstate.ConfigResult

// Reload re-reads the services of the config files (Config.ConfigServices) and
// applies the difference with those in force (localstate.Core.ApplyConfig):
// services added, changed and removed are published (or deregistered); unchanged
// ones keep their checks' state and produce no record, so nothing is re-broadcast.
// Services registered through the API are never touched. If the files are invalid,
// or a definition clashes with an API registration, nothing changes and the error
// (wrapping catalog.ErrInvalid) names every problem: the previous configuration
// stays in force.
func (a *Agent) Reload(_ context.Context) (ReloadResult, error) {
	var r ReloadResult
	defs, err := a.configServices()
	if err == nil {
		var refused error // the files' problems, one per line: not prefixed by change
		err = a.change(func(c *localstate.Core) (rd localstate.Ready, err error) {
			r, rd, err = c.ApplyConfig(defs)
			refused = err
			return rd, err
		})
		if refused != nil {
			err = refused
		}
	}
	switch {
	case err == nil:
		a.log.Info("configuration reloaded", "added", r.Added, "changed", r.Changed, "removed", r.Removed, "unchanged", len(r.Unchanged))
	case !errors.Is(err, ErrNotRunning):
		a.log.Error("reload refused; the previous configuration stays in force", "error", err)
	}
	return r, err
}

// configServices calls Config.ConfigServices; none without it. It reads files, so it
// runs without the agent's locks.
func (a *Agent) configServices() ([]ConfigService, error) {
	if a.cfg.ConfigServices == nil {
		return nil, nil
	}
	defs, err := a.cfg.ConfigServices()
	if err != nil {
		return nil, localstate.InvalidConfig(err)
	}
	return defs, nil
}

// startConfigLocked applies the config files' services at Start, over the local
// state just loaded: services defined as before keep their checks' state; those no
// longer defined are dropped. Nothing is published or run yet: Start publishes and
// runs everything.
func (a *Agent) startConfigLocked() error {
	defs, err := a.configServices()
	if err != nil {
		return err
	}
	r, _, err := a.local.ApplyConfig(defs)
	if err != nil {
		return err
	}
	if len(defs) > 0 || len(r.Removed) > 0 {
		a.log.Info("services from config files", "added", r.Added, "changed", r.Changed, "removed", r.Removed, "unchanged", len(r.Unchanged))
	}
	return nil
}

var _ httpapi.Reloader = apiAgent{}

// Reload implements httpapi.Reloader.
func (x apiAgent) Reload(ctx context.Context) (httpapi.ReloadResult, error) {
	r, err := x.a.Reload(ctx)
	return httpapi.ReloadResult(r), err
}
