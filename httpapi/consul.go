package httpapi

import (
	"maps"
	"slices"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// The JSON shapes below are Consul's (github.com/hashicorp/consul/api: AgentMember,
// AgentService, Node, CatalogService, ServiceEntry, HealthCheck), field for field
// where rumor has the data. Clients decode them into those structs, so names and types
// must match exactly; maps and slices are sent empty rather than null.

// serf's member status numbers, which Consul sends as AgentMember.Status.
const (
	memberAlive   = 1
	memberLeaving = 2
	memberLeft    = 3
	memberFailed  = 4
)

// The protocol versions Consul reports for its members; rumor reports the same so
// clients that print them see plausible values.
const (
	protocolMin, protocolMax, protocolCur = 1, 5, 2
	delegateMin, delegateMax, delegateCur = 2, 5, 4
)

type agentMember struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

type weights struct {
	Passing int
	Warning int
}

type serviceAddress struct {
	Address string
	Port    int
}

type agentService struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	Weights           weights
	EnableTagOverride bool
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
	Datacenter        string `json:",omitempty"`
}

type node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string `json:",omitempty"`
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           weights
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

// checkDefinition is Consul's HealthCheckDefinition, the Definition of an AgentCheck
// and of a HealthCheck. Its durations are strings ("0s" when unset, never ""), as
// Consul's ReadableDuration marshals them: consul/api fails to decode an empty one.
// A check record from the catalog carries only its interval and timeout.
type checkDefinition struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	TCPUseTLS                      bool                `json:",omitempty"`
	UDP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	OSService                      string              `json:",omitempty"`
	ScriptArgs                     []string            `json:",omitempty"`
	TTL                            string
	Interval                       string
	Timeout                        string
	DeregisterCriticalServiceAfter string
}

// checkDefinitionOf is the Definition a local check shows.
func checkDefinitionOf(d *definition.Check) checkDefinition {
	return checkDefinition{
		HTTP: d.HTTP, Header: d.Header, Method: d.Method, Body: d.Body,
		TLSServerName: d.TLSServerName, TLSSkipVerify: d.TLSSkipVerify,
		TCP: d.TCP, TCPUseTLS: d.TCPUseTLS, UDP: d.UDP, GRPC: d.GRPC, GRPCUseTLS: d.GRPCUseTLS,
		OSService: d.OSService, ScriptArgs: d.ScriptArgs,
		TTL: d.TTL.String(), Interval: d.Interval.String(), Timeout: d.Timeout.String(),
		DeregisterCriticalServiceAfter: d.DeregisterCriticalServiceAfter.String(),
	}
}

type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	ExposedPort int
	Definition  checkDefinition
	CreateIndex uint64
	ModifyIndex uint64
}

type serviceEntry struct {
	Node    node
	Service agentService
	Checks  []healthCheck
}

// emptyMap returns m, or an empty map for nil, so JSON shows {} rather than null.
func emptyMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

func emptySlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// memberStatus maps liveness to serf's numbers; Consul shows a suspect node as alive.
func memberStatus(l catalog.Liveness) int {
	switch l {
	case catalog.LivenessFailed:
		return memberFailed
	case catalog.LivenessLeft:
		return memberLeft
	}
	return memberAlive
}

func toNode(n *catalog.Node, idx uint64) node {
	return node{
		ID: n.ID, Node: n.Name, Address: n.Address, Datacenter: n.Datacenter,
		TaggedAddresses: emptyMap(maps.Clone(n.TaggedAddresses)),
		Meta:            emptyMap(maps.Clone(n.Meta)),
		CreateIndex:     idx, ModifyIndex: idx,
	}
}

// serviceTagged turns rumor's tagged addresses (address only) into Consul's (address
// and port); the port is the service's own, which rumor does not store separately.
func serviceTagged(s *catalog.Service) map[string]serviceAddress {
	if len(s.TaggedAddresses) == 0 {
		return nil
	}
	out := make(map[string]serviceAddress, len(s.TaggedAddresses))
	for k, a := range s.TaggedAddresses {
		out[k] = serviceAddress{Address: a, Port: s.Port}
	}
	return out
}

func toAgentService(s *catalog.Service, dc string) agentService {
	return agentService{
		Kind: s.Kind, ID: s.ID, Service: s.Name,
		Tags:    emptySlice(slices.Clone(s.Tags)),
		Meta:    emptyMap(maps.Clone(s.Meta)),
		Port:    s.Port,
		Address: s.Address, TaggedAddresses: serviceTagged(s),
		Weights:    weights{Passing: s.Weights.Passing, Warning: s.Weights.Warning},
		Datacenter: dc,
	}
}

func toCatalogService(inst *catalog.Instance, idx uint64) catalogService {
	n, s := &inst.Node.Node, &inst.Service
	return catalogService{
		ID: n.ID, Node: n.Name, Address: n.Address, Datacenter: n.Datacenter,
		TaggedAddresses: emptyMap(maps.Clone(n.TaggedAddresses)),
		NodeMeta:        emptyMap(maps.Clone(n.Meta)),
		ServiceKind:     s.Kind,
		ServiceID:       s.ID, ServiceName: s.Name, ServiceAddress: s.Address,
		ServiceTaggedAddresses: serviceTagged(s),
		ServiceTags:            emptySlice(slices.Clone(s.Tags)),
		ServiceMeta:            emptyMap(maps.Clone(s.Meta)),
		ServicePort:            s.Port,
		ServiceWeights:         weights{Passing: s.Weights.Passing, Warning: s.Weights.Warning},
		CreateIndex:            idx, ModifyIndex: idx,
	}
}

// toHealthCheck describes check c of node nodeName; svc is the service it checks, if any.
func toHealthCheck(nodeName string, c *catalog.Check, svc *catalog.Service, idx uint64) healthCheck {
	hc := healthCheck{
		Node: nodeName, CheckID: c.ID, Name: c.Name, Status: c.Status.String(),
		Notes: c.Notes, Output: c.Output, ServiceID: c.ServiceID, Type: c.Type,
		ServiceTags: []string{},
		Definition: checkDefinition{
			TTL: "0s", Interval: c.Interval.String(), Timeout: c.Timeout.String(),
			DeregisterCriticalServiceAfter: "0s",
		},
		CreateIndex: idx, ModifyIndex: idx,
	}
	if c.ServiceID != "" && svc != nil && svc.ID == c.ServiceID {
		hc.ServiceName = svc.Name
		hc.ServiceTags = emptySlice(slices.Clone(svc.Tags))
	}
	return hc
}

func toServiceEntry(inst *catalog.Instance, idx uint64) serviceEntry {
	e := serviceEntry{
		Node:    toNode(&inst.Node.Node, idx),
		Service: toAgentService(&inst.Service, inst.Node.Node.Datacenter),
		Checks:  make([]healthCheck, 0, len(inst.Checks)),
	}
	e.Service.CreateIndex, e.Service.ModifyIndex = idx, idx
	for i := range inst.Checks {
		e.Checks = append(e.Checks, toHealthCheck(inst.Node.Node.Name, &inst.Checks[i], &inst.Service, idx))
	}
	return e
}
