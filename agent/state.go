package agent

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/definition"
)

// The local state (localstate.Core) is persisted in the data dir's services.log, an
// append-only log (stateLog). Before it, rumor rewrote services.json whole after
// every change; openState migrates such a file once.

// stateVersion is the schema version of services.json; a newer file is refused rather
// than half understood.
const stateVersion = 1

// stateFile is the content of services.json.
type stateFile struct {
	Version  int
	Services []*localstate.Service
	// NodeMaintenance is the reason the node is in maintenance mode; nil when it is not.
	NodeMaintenance *string `json:",omitempty"`
	// NodeChecks are the node's standalone checks, NodeCheckStatus their last
	// reported status by ID.
	NodeChecks      []definition.Check               `json:",omitempty"`
	NodeCheckStatus map[string]localstate.CheckState `json:",omitempty"`
}

// savedState is the local state a start finds, and the log to save it to from now on.
type savedState struct {
	st    *localstate.State
	log   *stateLog
	from  string // the file it was read from: services.log, or services.json migrated now
	fresh bool   // the log was created by this start
}

// openState returns the saved local state and the log to save it to from now on.
// Without services.log it creates one, from services.json if there is one; once the
// core has taken the state, settleState renames services.json to
// services.json.migrated, so that no later start reads it again. A crash in between
// leaves both, and the log wins.
func (d *dataDir) openState(logger *slog.Logger, reg prometheus.Registerer) (*savedState, error) {
	p := d.file(stateLogFile)
	m := newStateMetrics(reg)
	s := &savedState{from: p}
	r, err := replayLog(p)
	if isNotExist(err) {
		var st *localstate.State
		if st, err = d.loadState(); err != nil {
			return nil, err
		}
		if st == nil {
			st = &localstate.State{Services: map[string]*localstate.Service{}, Node: &localstate.Service{}}
		} else {
			s.from = d.file(servicesFile)
			logger.Info("migrating the local state to the log", "from", s.from, "to", p, "services", len(st.Services))
		}
		var entries map[string][]byte
		if entries, err = encodeEntries(st); err == nil {
			err = writeFileAtomic(p, encodeSnapshot(entries))
		}
		if err != nil {
			return nil, fmt.Errorf("agent: create the local state's log: %w", err)
		}
		s.fresh = true
		r, err = replayLog(p)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: local state: %w", err)
	}
	if s.log, err = openStateLog(p, r, logger, m); err != nil {
		return nil, fmt.Errorf("agent: local state: %w", err)
	}
	s.st = r.st
	return s, nil
}

// settleState ends opening the state once the core has taken it, or refused it
// (refused, which it returns naming the file). Taken, services.json is retired if
// there is one; refused, a log this start created from it goes again, so that
// services.json stays the state a fixed start reads.
func (d *dataDir) settleState(s *savedState, refused error) error {
	if refused != nil {
		if s.fresh {
			_ = os.Remove(d.file(stateLogFile)) // the caller closes the log
		}
		return fmt.Errorf("agent: local state %s: %w", s.from, refused)
	}
	return d.retireLegacy()
}

// retireLegacy renames services.json, once its content is in the log.
func (d *dataDir) retireLegacy() error {
	p := d.file(servicesFile)
	err := os.Rename(p, p+migratedSuffix)
	switch {
	case isNotExist(err):
		return nil
	case err == nil:
		err = syncDir(d.path)
	}
	if err != nil {
		return fmt.Errorf("agent: retire %s after migrating it: %w", p, err)
	}
	return nil
}

// loadState reads services.json (format version 1, before the log), if any (nil if
// none). A file that does not parse is an error: starting without it would
// deregister every service it holds. The core validates what it holds.
func (d *dataDir) loadState() (*localstate.State, error) {
	p := d.file(servicesFile)
	var sf stateFile
	found, err := readJSON(p, &sf)
	if err != nil {
		return nil, fmt.Errorf("agent: local state: %w (the file is written atomically, so this is outside damage: restore it from a backup, or move it away to start with no services)", err)
	}
	if !found {
		return nil, nil
	}
	if sf.Version != stateVersion {
		return nil, fmt.Errorf("agent: local state %s has version %d; this rumor reads version %d", p, sf.Version, stateVersion)
	}
	st := &localstate.State{Services: make(map[string]*localstate.Service, len(sf.Services)),
		Node: &localstate.Service{Checks: sf.NodeChecks, Status: sf.NodeCheckStatus, Maintenance: sf.NodeMaintenance}}
	for _, s := range sf.Services {
		if s == nil {
			return nil, fmt.Errorf("agent: local state %s: a service is null", p)
		}
		if s.Service.ID == "" {
			// rumor saved IDs normalized; "" would be taken for the node's own entry.
			return nil, fmt.Errorf("agent: local state %s: service %q has no ID (outside damage: restore the file from a backup)", p, s.Service.Name)
		}
		if _, dup := st.Services[s.Service.ID]; dup {
			// rumor never wrote two; keeping either would silently drop the other.
			return nil, fmt.Errorf("agent: local state %s: service ID %q appears twice (outside damage: restore the file from a backup, or remove one of them)", p, s.Service.ID)
		}
		st.Services[s.Service.ID] = s
	}
	return st, nil
}
