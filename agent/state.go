package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// Source says who registered a local service, so a config reload (issue 5) touches
// only its own services and an API registration survives it.
type Source string

// The sources of local services.
const (
	SourceAPI Source = "api" // PUT /v1/agent/service/register or `rumor register`
)

// CheckDefinition is a check as registered with a service (Consul's service
// definition schema, durations parsed). The agent stores definitions, publishes each
// as a check record with its initial status (critical unless Status says otherwise,
// as in Consul) and runs the http, tcp, grpc, script and ttl ones with the health
// package; registration refuses the kinds rumor cannot run.
type CheckDefinition struct {
	ID        string
	Name      string
	Notes     string
	ServiceID string
	// Status is the initial status; zero means critical.
	Status catalog.Status `json:",omitempty"`

	ScriptArgs        []string            `json:",omitempty"`
	DockerContainerID string              `json:",omitempty"`
	Shell             string              `json:",omitempty"`
	HTTP              string              `json:",omitempty"`
	Method            string              `json:",omitempty"`
	Header            map[string][]string `json:",omitempty"`
	Body              string              `json:",omitempty"`
	DisableRedirects  bool                `json:",omitempty"`
	TLSServerName     string              `json:",omitempty"`
	TLSSkipVerify     bool                `json:",omitempty"`
	TCP               string              `json:",omitempty"`
	TCPUseTLS         bool                `json:",omitempty"`
	UDP               string              `json:",omitempty"`
	GRPC              string              `json:",omitempty"`
	GRPCUseTLS        bool                `json:",omitempty"`
	H2PING            string              `json:",omitempty"`
	H2PingUseTLS      bool                `json:",omitempty"`
	OSService         string              `json:",omitempty"`
	AliasNode         string              `json:",omitempty"`
	AliasService      string              `json:",omitempty"`

	TTL                            time.Duration `json:",omitempty"`
	Interval                       time.Duration `json:",omitempty"`
	Timeout                        time.Duration `json:",omitempty"`
	DeregisterCriticalServiceAfter time.Duration `json:",omitempty"`

	SuccessBeforePassing   int `json:",omitempty"`
	FailuresBeforeWarning  int `json:",omitempty"`
	FailuresBeforeCritical int `json:",omitempty"`
	OutputMaxSize          int `json:",omitempty"`
}

// Type names the kind of check ("http", "tcp", "ttl", ...), as Consul's check Type.
func (d *CheckDefinition) Type() string {
	switch {
	case d.DockerContainerID != "":
		return "docker"
	case len(d.ScriptArgs) > 0:
		return "script"
	case d.HTTP != "":
		return "http"
	case d.TCP != "":
		return "tcp"
	case d.UDP != "":
		return "udp"
	case d.GRPC != "":
		return "grpc"
	case d.H2PING != "":
		return "h2ping"
	case d.OSService != "":
		return "os_service"
	case d.TTL > 0:
		return "ttl"
	case d.AliasNode != "" || d.AliasService != "":
		return "alias"
	}
	return ""
}

// kinds counts how many kinds of check d asks for at once.
func (d *CheckDefinition) kinds() int {
	n := 0
	for _, set := range []bool{len(d.ScriptArgs) > 0, d.HTTP != "", d.TCP != "", d.UDP != "",
		d.GRPC != "", d.H2PING != "", d.OSService != "", d.TTL > 0, d.AliasNode != "" || d.AliasService != ""} {
		if set {
			n++
		}
	}
	return n
}

// validate checks d's own rules (the catalog validates the published check); field
// names use the registration's spelling, prefixed by field.
func (d *CheckDefinition) validate(field string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	switch n := d.kinds(); {
	case n == 0:
		bad("says nothing to check: give one of HTTP, TCP, UDP, GRPC, H2PING, OSService, ScriptArgs (Args), TTL or AliasService")
	case n > 1:
		bad("gives %d kinds of check at once; give exactly one", n)
	}
	if d.DockerContainerID != "" && len(d.ScriptArgs) == 0 {
		bad("DockerContainerID needs ScriptArgs, the command to run in the container")
	}
	switch d.Type() {
	case "ttl", "alias", "":
	default:
		if d.Interval <= 0 {
			bad("a %s check needs an Interval such as \"10s\"", d.Type())
		}
	}
	if d.Status == catalog.StatusMaintenance {
		bad("Status: initial status must be passing, warning or critical")
	}
	return errors.Join(errs...)
}

// localService is one service registered on this node with its checks.
type localService struct {
	Source  Source
	Service catalog.Service
	Checks  []CheckDefinition
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
	NodeChecks      []CheckDefinition     `json:",omitempty"`
	NodeCheckStatus map[string]checkState `json:",omitempty"`
}

// checkRecord is the check record published for a definition.
func (d *CheckDefinition) checkRecord() catalog.Check {
	st := d.Status
	if st == 0 {
		st = catalog.StatusCritical
	}
	return catalog.Check{
		ID: d.ID, Name: d.Name, ServiceID: d.ServiceID, Status: st, Notes: d.Notes,
		Type:     d.Type(),
		Interval: d.Interval, Timeout: d.Timeout,
	}
}

// normalize fills defaults into a registration and validates it as the records it
// will publish: the service ID defaults to its name; checks get Consul's default IDs
// ("service:<id>", numbered from 1 when there are several) and names.
func normalize(svc catalog.Service, checks []CheckDefinition) (localService, error) {
	ls := localService{Source: SourceAPI, Service: svc, Checks: slices.Clone(checks)}
	s := &ls.Service
	if s.ID == "" {
		s.ID = s.Name
	}
	if s.Weights == (catalog.Weights{}) {
		s.Weights = catalog.DefaultWeights
	}
	var errs []error
	if err := s.Validate(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i := range ls.Checks {
		d := &ls.Checks[i]
		field := fmt.Sprintf("service.checks[%d]", i)
		if d.ServiceID != "" && d.ServiceID != s.ID {
			errs = append(errs, &catalog.FieldError{Field: field + ".service_id",
				Reason: fmt.Sprintf("%q: a service's check belongs to that service (%q)", d.ServiceID, s.ID)})
		}
		d.ServiceID = s.ID
		if d.ID == "" {
			d.ID = "service:" + s.ID
			if len(ls.Checks) > 1 {
				d.ID = fmt.Sprintf("service:%s:%d", s.ID, i+1)
			}
		}
		if d.Name == "" {
			d.Name = fmt.Sprintf("Service '%s' check", s.Name)
		}
		if seen[d.ID] {
			errs = append(errs, &catalog.FieldError{Field: field + ".id", Reason: fmt.Sprintf("%q is used twice", d.ID)})
		}
		seen[d.ID] = true
		if err := d.validate(field); err != nil {
			errs = append(errs, err)
		}
		c := d.checkRecord()
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	return ls, errors.Join(errs...)
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
		ls, err := normalize(sf.Services[i].Service, sf.Services[i].Checks)
		if err != nil {
			return nil, nil, none, fmt.Errorf("agent: local state %s: service %q: %w", p, sf.Services[i].Service.ID, err)
		}
		ls.Source = sf.Services[i].Source
		ls.Status, ls.Maintenance = sf.Services[i].Status, sf.Services[i].Maintenance
		out[ls.Service.ID] = &ls
	}
	nodeChecks := localService{Checks: sf.NodeChecks, Status: sf.NodeCheckStatus}
	for i := range nodeChecks.Checks {
		if err := normalizeNodeCheck(&nodeChecks.Checks[i]); err != nil {
			return nil, nil, none, fmt.Errorf("agent: local state %s: node check %q: %w", p, nodeChecks.Checks[i].ID, err)
		}
	}
	return out, sf.NodeMaintenance, nodeChecks, nil
}
