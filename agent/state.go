package agent

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/definition"
)

// The local state (localstate.Core) is persisted in the data dir's services.json,
// rewritten whole and atomically after every change: stateStore is the core's Store.

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

// stateStore saves the local state to services.json.
type stateStore struct{ d *dataDir }

var _ localstate.Store = stateStore{}

// Save implements localstate.Store: it writes the whole file, whatever changed.
func (s stateStore) Save(st *localstate.State, _ []string) error {
	b, err := encodeState(st)
	if err != nil {
		return fmt.Errorf("encode local state: %w", err)
	}
	if err := writeFileAtomic(s.d.file(servicesFile), b); err != nil {
		return fmt.Errorf("save local state: %w", err)
	}
	return nil
}

// encodeState renders services.json.
func encodeState(st *localstate.State) ([]byte, error) {
	sf := stateFile{Version: stateVersion}
	if n := st.Node; n != nil {
		sf.NodeMaintenance, sf.NodeChecks, sf.NodeCheckStatus = n.Maintenance, n.Checks, n.Status
	}
	for _, id := range slices.Sorted(maps.Keys(st.Services)) {
		sf.Services = append(sf.Services, st.Services[id])
	}
	if sf.Services == nil {
		sf.Services = []*localstate.Service{}
	}
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// loadState reads services.json, if any (nil if none). A file that does not parse is
// an error: starting without it would deregister every service it holds. The core
// validates what it holds.
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
		st.Services[s.Service.ID] = s
	}
	return st, nil
}
