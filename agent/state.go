package agent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// Source says who registered a local service, so a config reload (issue 5) touches
// only its own services and an API registration survives it.
type Source string

// The sources of local services.
const (
	SourceAPI    Source = "api"    // PUT /v1/agent/service/register or `rumor register`
	SourceConfig Source = "config" // a config file (--config-file, --config-dir), re-read by Reload
)

// localService is one service registered on this node with its checks.
type localService struct {
	Source Source
	// File is the config file that defines the service, for SourceConfig.
	File    string `json:",omitempty"`
	Service catalog.Service
	Checks  []definition.Check
	// Status holds each check's last reported status and output, by check ID; a check
	// missing here is at its initial status. A restart re-adds checks at this status.
	Status map[string]checkState `json:",omitempty"`
	// Maintenance is the reason the service is in maintenance mode; nil when it is not.
	Maintenance *string `json:",omitempty"`
}

// checkState is a check's reported status and output, as the health manager last
// told the agent.
type checkState struct {
	Status catalog.Status
	Output string `json:",omitempty"`
}

// persisted is the policy persisted checks are loaded under: they were accepted when
// registered, and a script check kept while script checks are off is kept, not run.
var persisted = definition.Policy{EnableScriptChecks: true}

// stateVersion is the schema version of services.json; a newer file is refused rather
// than half understood.
const stateVersion = 1

// stateFile is the content of services.json.
type stateFile struct {
	Version  int
	Services []localService
	// NodeMaintenance is the reason the node is in maintenance mode; nil when it is not.
	NodeMaintenance *string `json:",omitempty"`
	// NodeChecks are the node's standalone checks, NodeCheckStatus their last
	// reported status by ID.
	NodeChecks      []definition.Check    `json:",omitempty"`
	NodeCheckStatus map[string]checkState `json:",omitempty"`
}

// normalize fills Consul's defaults into a registration and validates it (p says
// whether script checks are allowed), returning the local service it becomes: the
// service record it publishes and its checks.
func normalize(svc definition.Service, p definition.Policy) (localService, error) {
	svc = svc.Clone()
	svc.Normalize()
	err := svc.Validate(p)
	return localService{Source: SourceAPI, Service: svc.Record(), Checks: svc.Checks}, err
}

// definitionOf is the definition a local service was registered with, as far as its
// record keeps it (tagged addresses keep no port of their own), for validating what
// the state file holds as a registration is validated.
func definitionOf(svc catalog.Service, checks []definition.Check) definition.Service {
	d := definition.Service{ID: svc.ID, Name: svc.Name, Tags: svc.Tags, Address: svc.Address, Port: svc.Port,
		Meta: svc.Meta, Kind: svc.Kind, Weights: svc.Weights, Checks: checks}
	for k, a := range svc.TaggedAddresses {
		if d.TaggedAddresses == nil {
			d.TaggedAddresses = make(map[string]definition.ServiceAddress, len(svc.TaggedAddresses))
		}
		d.TaggedAddresses[k] = definition.ServiceAddress{Address: a}
	}
	return d
}

// encodeState renders services.json.
func encodeState(services map[string]*localService, nodeMaint *string, nodeChecks *localService) ([]byte, error) {
	sf := stateFile{Version: stateVersion, Services: make([]localService, 0, len(services)), NodeMaintenance: nodeMaint,
		NodeChecks: nodeChecks.Checks, NodeCheckStatus: nodeChecks.Status}
	for _, ls := range services {
		sf.Services = append(sf.Services, *ls)
	}
	slices.SortFunc(sf.Services, func(a, b localService) int { return strings.Compare(a.Service.ID, b.Service.ID) })
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// loadState reads services.json, if any. A file that does not parse is an error:
// starting without it would deregister every service it holds.
func (d *dataDir) loadState() (map[string]*localService, *string, localService, error) {
	p := d.file(servicesFile)
	var sf stateFile
	var none localService
	found, err := readJSON(p, &sf)
	if err != nil {
		return nil, nil, none, fmt.Errorf("agent: local state: %w (the file is written atomically, so this is outside damage: restore it from a backup, or move it away to start with no services)", err)
	}
	out := make(map[string]*localService)
	if !found {
		return out, nil, none, nil
	}
	if sf.Version != stateVersion {
		return nil, nil, none, fmt.Errorf("agent: local state %s has version %d; this rumor reads version %d", p, sf.Version, stateVersion)
	}
	for i := range sf.Services {
		ls, err := normalize(definitionOf(sf.Services[i].Service, sf.Services[i].Checks), persisted)
		if err != nil {
			return nil, nil, none, fmt.Errorf("agent: local state %s: service %q: %w", p, sf.Services[i].Service.ID, err)
		}
		ls.Source, ls.File = sf.Services[i].Source, sf.Services[i].File
		ls.Status, ls.Maintenance = sf.Services[i].Status, sf.Services[i].Maintenance
		out[ls.Service.ID] = &ls
	}
	nodeChecks := localService{Checks: sf.NodeChecks, Status: sf.NodeCheckStatus}
	for i := range nodeChecks.Checks {
		if err := normalizeNodeCheck(&nodeChecks.Checks[i], persisted); err != nil {
			return nil, nil, none, fmt.Errorf("agent: local state %s: node check %q: %w", p, nodeChecks.Checks[i].ID, err)
		}
	}
	return out, sf.NodeMaintenance, nodeChecks, nil
}
