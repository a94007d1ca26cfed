package agent

import (
	"time"

	"github.com/rumor-sd/rumor/httpapi"
	"github.com/rumor-sd/rumor/reachability"
)

// Reachability (package reachability) is this agent's knowledge of which instances
// it can reach: from the local proxy's connect results, and with
// Config.ProbeReachability from lazy TCP probes of the instances asked about through
// the HTTP API. It orders answers (reachable first), serves ?reachable and
// /v1/rumor/reachability, and is never gossiped.

// startReachLocked creates the tracker; it probes only with ProbeReachability.
func (a *Agent) startReachLocked() error {
	t, err := reachability.New(reachability.Config{Probe: a.cfg.ProbeReachability,
		Logger: a.log.With("component", "reachability")})
	if err != nil {
		return err
	}
	a.reach = t
	t.Start()
	return nil
}

// apiReach adapts the tracker to httpapi.Reachability.
type apiReach struct{ t *reachability.Tracker }

var _ httpapi.Reachability = apiReach{}

func (x apiReach) Reachable(addr string) bool { return x.t.Reachable(addr) }
func (x apiReach) Active() bool               { return x.t.Probing() || x.t.Known() }

func (x apiReach) Unreachable() []httpapi.UnreachableEntry {
	es := x.t.Unreachable()
	out := make([]httpapi.UnreachableEntry, len(es))
	for i, e := range es {
		out[i] = httpapi.UnreachableEntry{Addr: e.Addr, Since: e.Since.UTC().Format(time.RFC3339Nano),
			Checked: e.Checked.UTC().Format(time.RFC3339Nano), Source: e.Source}
	}
	return out
}
