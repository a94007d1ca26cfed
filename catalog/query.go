package catalog

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// NodeEntry is a node as queries report it: its record (only Name is set if its node
// record has not arrived yet) and its liveness.
type NodeEntry struct {
	Node     Node
	Liveness Liveness
	Since    time.Time // when Liveness last changed; zero if never reported
}

// Instance is one service instance with everything a consumer needs to use it.
type Instance struct {
	Node    NodeEntry
	Service Service
	// Checks holds the node-level serfHealth check first, then the node's other
	// node-level checks, then the service's checks, each group sorted by ID.
	Checks []Check
	// Status is the worst status among Checks.
	Status Status
}

// Order says how query results are ordered.
type Order uint8

// The orders a query may ask for.
const (
	// OrderSorted sorts by node name, then service ID: stable, for APIs and tests.
	OrderSorted Order = iota
	// OrderShuffled is a uniform random permutation: DNS round robin.
	OrderShuffled
	// OrderWeighted is a random permutation biased by Weights: an instance comes first
	// with probability proportional to its weight for its status (critical: never
	// before a non-critical one).
	OrderWeighted
)

// Filter narrows queries.
type Filter struct {
	// Tags lists tags an instance must all carry.
	Tags []string
	// PassingOnly keeps only instances whose every check passes.
	PassingOnly bool
	// NodeMeta lists node meta pairs the instance's node must all carry.
	NodeMeta map[string]string
	// Order of the results; the zero value sorts.
	Order Order
	// Rand drives OrderShuffled and OrderWeighted; nil uses math/rand/v2's global source.
	Rand *rand.Rand
}

func (f *Filter) nodeMatches(n *Node) bool {
	for k, v := range f.NodeMeta {
		if n == nil || n.Meta[k] != v {
			return false
		}
	}
	return true
}

// ServiceSummary is a service name with the union of its instances' tags.
type ServiceSummary struct {
	Name string
	Tags []string // sorted, without duplicates
}

// CheckEntry is a check with the node it runs on and the service it checks.
type CheckEntry struct {
	Node        string
	Check       Check
	ServiceName string // "" for node-level checks
}

// Services returns every service name with its tags, sorted by name. Only instances on
// nodes matching f.NodeMeta count; other fields of f are ignored.
func (c *Catalog) Services(f Filter) []ServiceSummary {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]ServiceSummary, 0, len(c.services))
	for name, set := range c.services {
		var tags []string
		found := false
		for s, o := range set.instances {
			if len(f.NodeMeta) > 0 && !f.nodeMatches(o.node) {
				continue
			}
			found = true
			tags = append(tags, s.Tags...)
		}
		if !found {
			continue
		}
		slices.Sort(tags)
		tags = slices.Compact(tags)
		if tags == nil {
			tags = []string{}
		}
		out = append(out, ServiceSummary{Name: name, Tags: tags})
	}
	slices.SortFunc(out, func(a, b ServiceSummary) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ServiceInstances returns the instances of the named service that pass f, with their
// health, in f.Order. An unknown service yields an empty result, not an error.
func (c *Catalog) ServiceInstances(name string, f Filter) []Instance {
	c.mu.RLock()
	set := c.services[name]
	if set == nil {
		c.mu.RUnlock()
		return []Instance{}
	}
	out := make([]Instance, 0, len(set.instances))
	for s, o := range set.instances {
		if !hasAllTags(s, f.Tags) {
			continue
		}
		if !f.nodeMatches(o.node) {
			continue
		}
		inst := c.instanceLocked(o, s)
		if f.PassingOnly && inst.Status != StatusPassing {
			continue
		}
		out = append(out, inst)
	}
	c.mu.RUnlock()
	orderInstances(out, f)
	return out
}

func hasAllTags(s *Service, tags []string) bool {
	for _, t := range tags {
		if !s.HasTag(t) {
			return false
		}
	}
	return true
}

// instanceLocked assembles one instance with copies of everything it holds.
func (c *Catalog) instanceLocked(o *origin, s *Service) Instance {
	inst := Instance{Node: c.nodeEntryLocked(o), Service: *s.clone()}
	inst.Checks = c.checksLocked(o, s.ID, true, inst.Checks)
	inst.Status = StatusPassing
	for i := range inst.Checks {
		inst.Status = Worse(inst.Status, inst.Checks[i].Status)
	}
	return inst
}

// checksLocked appends o's serfHealth check and node-level checks (if withNode), then
// the checks of serviceID (if not ""), each group sorted by ID.
// An origin holds a few dozen records, so scanning them beats keeping another index
// per origin (which would cost more memory than the scan costs time).
func (c *Catalog) checksLocked(o *origin, serviceID string, withNode bool, out []Check) []Check {
	if withNode {
		out = append(out, c.serfCheckLocked(o.name))
		out = appendChecksOf(out, o, "")
	}
	if serviceID != "" {
		out = appendChecksOf(out, o, serviceID)
	}
	return out
}

// appendChecksOf appends copies of o's checks of serviceID ("" = node-level), sorted by ID.
func appendChecksOf(out []Check, o *origin, serviceID string) []Check {
	start := len(out)
	for _, s := range o.records {
		if s.check != nil && s.check.ServiceID == serviceID {
			out = append(out, *s.check)
		}
	}
	slices.SortFunc(out[start:], func(a, b Check) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// serfCheckLocked derives the node-level check that reports a node's liveness.
func (c *Catalog) serfCheckLocked(node string) Check {
	state, _ := c.livenessLocked(node)
	ch := Check{ID: SerfCheckID, Name: "Serf Health Status", Type: "serf", Status: StatusPassing,
		Output: "Agent alive and reachable"}
	switch state {
	case LivenessSuspect:
		ch.Status, ch.Output = StatusCritical, "Agent suspected of failure: probes unanswered"
	case LivenessFailed:
		ch.Status, ch.Output = StatusCritical, "Agent not live or unreachable"
	case LivenessLeft:
		ch.Status, ch.Output = StatusCritical, "Agent left the cluster"
	}
	return ch
}

func (c *Catalog) nodeEntryLocked(o *origin) NodeEntry {
	e := NodeEntry{Node: Node{Name: o.name}}
	if o.node != nil {
		e.Node = *o.node.clone()
	}
	e.Liveness, e.Since = c.livenessLocked(o.name)
	return e
}

// orderInstances puts instances in the order f asks for.
func orderInstances(out []Instance, f Filter) {
	switch f.Order {
	case OrderShuffled:
		shuffle := rand.Shuffle
		if f.Rand != nil {
			shuffle = f.Rand.Shuffle
		}
		shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	case OrderWeighted:
		// Efraimidis–Spirakis: sort by u^(1/w) descending gives a weighted random
		// permutation; zero-weight (critical) instances go last, in random order.
		float := rand.Float64
		if f.Rand != nil {
			float = f.Rand.Float64
		}
		keys := make([]float64, len(out))
		for i := range out {
			w := float64(weightOf(&out[i]))
			u := float()
			if w > 0 {
				keys[i] = math.Pow(u, 1/w)
			} else {
				keys[i] = u - 2 // below every positive key, still random among themselves
			}
		}
		idx := make([]int, len(out))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(keys[b], keys[a]) }) // largest key first
		sorted := make([]Instance, len(out))
		for i, j := range idx {
			sorted[i] = out[j]
		}
		copy(out, sorted)
	default:
		slices.SortFunc(out, func(a, b Instance) int {
			if c := strings.Compare(a.Node.Node.Name, b.Node.Node.Name); c != 0 {
				return c
			}
			return strings.Compare(a.Service.ID, b.Service.ID)
		})
	}
}

// weightOf is an instance's load-balancing weight for its current status.
func weightOf(inst *Instance) int {
	switch inst.Status {
	case StatusPassing:
		return inst.Service.Weights.Passing
	case StatusWarning:
		return inst.Service.Weights.Warning
	}
	return 0
}

// Nodes returns every node matching f.NodeMeta, sorted by name. Nodes known only by
// liveness (no records) are left out.
func (c *Catalog) Nodes(f Filter) []NodeEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]NodeEntry, 0, len(c.origins))
	for _, o := range c.origins {
		if o.gen == 0 || !f.nodeMatches(o.node) {
			continue
		}
		out = append(out, c.nodeEntryLocked(o))
	}
	slices.SortFunc(out, func(a, b NodeEntry) int { return strings.Compare(a.Node.Name, b.Node.Name) })
	return out
}

// NodeServices returns a node and its services sorted by ID, or ErrNotFound.
func (c *Catalog) NodeServices(node string) (NodeEntry, []Service, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	o := c.origins[node]
	if o == nil || o.gen == 0 {
		return NodeEntry{}, nil, ErrNotFound
	}
	svcs := []Service{}
	for _, s := range o.records {
		if s.service != nil {
			svcs = append(svcs, *s.service.clone())
		}
	}
	slices.SortFunc(svcs, func(a, b Service) int { return strings.Compare(a.ID, b.ID) })
	return c.nodeEntryLocked(o), svcs, nil
}

// NodeChecks returns every check of a node, its serfHealth check included, sorted by
// ID; an unknown node has none.
func (c *Catalog) NodeChecks(node string) []CheckEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	o := c.origins[node]
	if o == nil || o.gen == 0 {
		return []CheckEntry{}
	}
	out := c.originChecksLocked(o, func(*CheckEntry) bool { return true }, nil)
	sortCheckEntries(out)
	return out
}

// ServiceChecks returns the checks of every instance of the named service (service
// checks only, as Consul's /v1/health/checks), sorted by node then ID.
func (c *Catalog) ServiceChecks(name string, f Filter) []CheckEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := []CheckEntry{}
	set := c.services[name]
	if set == nil {
		return out
	}
	for s, o := range set.instances {
		if !f.nodeMatches(o.node) {
			continue
		}
		for _, st := range o.records {
			if st.check != nil && st.check.ServiceID == s.ID {
				out = append(out, CheckEntry{Node: o.name, Check: *st.check, ServiceName: name})
			}
		}
	}
	sortCheckEntries(out)
	return out
}

// ChecksInState returns every check (serfHealth included) whose status is state, or
// every check if state is 0, sorted by node then ID.
func (c *Catalog) ChecksInState(state Status, f Filter) []CheckEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := []CheckEntry{}
	keep := func(e *CheckEntry) bool { return state == 0 || e.Check.Status == state }
	for _, o := range c.origins {
		if o.gen == 0 || !f.nodeMatches(o.node) {
			continue
		}
		out = c.originChecksLocked(o, keep, out)
	}
	sortCheckEntries(out)
	return out
}

// originChecksLocked appends o's checks, serfHealth first, that keep accepts.
func (c *Catalog) originChecksLocked(o *origin, keep func(*CheckEntry) bool, out []CheckEntry) []CheckEntry {
	serf := CheckEntry{Node: o.name, Check: c.serfCheckLocked(o.name)}
	if keep(&serf) {
		out = append(out, serf)
	}
	for _, st := range o.records {
		if st.check == nil {
			continue
		}
		e := CheckEntry{Node: o.name, Check: *st.check}
		if svc := o.storedService(st.check.ServiceID); svc != nil {
			e.ServiceName = svc.Name
		}
		if keep(&e) {
			out = append(out, e)
		}
	}
	return out
}

func sortCheckEntries(out []CheckEntry) {
	slices.SortFunc(out, func(a, b CheckEntry) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Check.ID, b.Check.ID)
	})
}
