package ui

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// perPage is how many rows a page shows; the rest is behind "next".
const perPage = 50

// pager is a page's place in a long list.
type pager struct {
	Total, From, To  int // rows in all; the 1-based range shown
	Page, Pages      int
	PrevURL, NextURL string // "" at either end
}

// paginate picks the page ?page= asks for among total rows.
func paginate(r *http.Request, total int) pager {
	p := pager{Total: total, Pages: max(1, (total+perPage-1)/perPage)}
	p.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	p.Page = min(max(p.Page, 1), p.Pages)
	p.From = min((p.Page-1)*perPage+1, total)
	p.To = min(p.Page*perPage, total)
	link := func(n int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		return r.URL.Path + "?" + q.Encode()
	}
	if p.Page > 1 {
		p.PrevURL = link(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.NextURL = link(p.Page + 1)
	}
	return p
}

// slice returns the rows of the pager's page.
func pageOf[T any](rows []T, p pager) []T {
	if p.Total == 0 {
		return nil
	}
	return rows[p.From-1 : p.To]
}

func (u *UI) self() Self { return u.cfg.Agent.Self() }

// ---- Failing now ----

type failingData struct {
	Loaded   bool
	Down     []nodeRow   // nodes not alive
	Checks   []*failView // this page of them (the model's: never modified)
	Critical int
	Warning  int
	Nodes    int
	Services int
	Pager    pager
	// Unreachable are the instance addresses this host cannot reach.
	Unreachable []unreachRow
}

// unreachRow is an address this host cannot reach, with the proxy's instances at
// it when the proxy forwards there (a probed address names no instance).
type unreachRow struct {
	Unreachable
	Instances []UpstreamInstance
	Services  []string // the upstreams' services, parallel to Instances
}

func (u *UI) failingView(r *http.Request, now time.Time) (any, int) {
	m := u.model
	m.mu.RLock()
	d := failingData{Loaded: m.loaded, Nodes: len(m.nodes), Services: len(m.services)}
	var rows []*failView
	for _, name := range slices.Sorted(maps.Keys(m.trouble)) {
		nv := m.nodes[name]
		if nv.Liveness != catalog.LivenessAlive {
			d.Down = append(d.Down, u.nodeRow(nv, now))
		}
		for i := range nv.Failing {
			rows = append(rows, &nv.Failing[i]) // a node's view is replaced, never changed
		}
	}
	m.mu.RUnlock()
	for i := range rows {
		switch rows[i].Status {
		case catalog.StatusCritical:
			d.Critical++
		case catalog.StatusWarning:
			d.Warning++
		}
	}
	// Worst first, then the newest failure first: what just broke is at the top.
	slices.SortStableFunc(rows, func(a, b *failView) int {
		if c := cmp.Compare(b.Status, a.Status); c != 0 {
			return c
		}
		return b.Since.Compare(a.Since)
	})
	d.Pager = paginate(r, len(rows))
	d.Checks = pageOf(rows, d.Pager)
	d.Unreachable = u.unreachable()
	return d, http.StatusOK
}

// unreachable lists what this host cannot reach, naming the proxy's instances at
// each address.
func (u *UI) unreachable() []unreachRow {
	if u.cfg.Reachability == nil {
		return nil
	}
	es := u.cfg.Reachability.Unreachable()
	if len(es) == 0 {
		return nil
	}
	at := map[string]*unreachRow{}
	out := make([]unreachRow, len(es))
	for i, e := range es {
		out[i].Unreachable = e
		at[e.Addr] = &out[i]
	}
	for _, up := range u.cfg.Agent.Upstreams() {
		for _, in := range up.Instances {
			if row := at[in.Address]; row != nil {
				row.Instances = append(row.Instances, in)
				row.Services = append(row.Services, up.Service)
			}
		}
	}
	return out
}

// ---- Services ----

type servicesFilter struct {
	Q, Tag, Meta, Health, Source, Node string
}

type servicesData struct {
	Filter   servicesFilter
	Sources  []string // every source seen, for the filter's choices
	Rows     []serviceRow
	Pager    pager
	All      int // services in the catalog
	Problems []string
}

type serviceRow struct {
	Name                                    string
	Instances                               int
	Passing, Warning, Critical, Maintenance int
	Tags                                    []string // the first few, sorted
	MoreTags                                int
	Sources                                 []string
}

// healthFilters are the choices of the services page's health filter.
var healthFilters = []string{"critical", "warning", "maintenance", "passing"}

func (u *UI) servicesView(r *http.Request, _ time.Time) (any, int) {
	q := r.URL.Query()
	f := servicesFilter{Q: strings.TrimSpace(q.Get("q")), Tag: strings.TrimSpace(q.Get("tag")),
		Meta: strings.TrimSpace(q.Get("meta")), Health: q.Get("health"), Source: q.Get("source"),
		Node: strings.TrimSpace(q.Get("node"))}
	d := servicesData{Filter: f}
	var metaKey, metaPair string
	if f.Meta != "" {
		k, v, hasValue := strings.Cut(strings.Replace(f.Meta, ":", "=", 1), "=")
		if hasValue {
			metaPair = k + "=" + v
		} else {
			metaKey = k + "="
		}
	}
	var health catalog.Status
	if f.Health != "" {
		st, err := catalog.ParseStatus(f.Health)
		if err != nil {
			d.Problems = append(d.Problems, "health must be one of "+strings.Join(healthFilters, ", ")+"; "+strconv.Quote(f.Health)+" is not")
		}
		health = st
	}
	m := u.model
	m.mu.RLock()
	defer m.mu.RUnlock()
	d.All = len(m.services)
	var onNode map[string]bool
	if f.Node != "" {
		onNode = map[string]bool{}
		if nv := m.nodes[f.Node]; nv != nil {
			for _, in := range nv.Instances {
				onNode[in.Service] = true
			}
		} else {
			d.Problems = append(d.Problems, "no node named "+strconv.Quote(f.Node)+" in the catalog")
		}
	}
	sources := map[string]bool{}
	var rows []*svcSummary
	for _, name := range m.svcNames {
		s := m.services[name]
		for src := range s.sources {
			sources[src] = true
		}
		switch { // 500 services: a scan costs less than a page's rendering
		case f.Q != "" && !strings.Contains(strings.ToLower(name), strings.ToLower(f.Q)),
			f.Tag != "" && s.tags[f.Tag] == 0,
			metaPair != "" && s.meta[metaPair] == 0,
			metaKey != "" && !hasKeyPrefix(s.meta, metaKey),
			f.Source != "" && s.sources[f.Source] == 0,
			onNode != nil && !onNode[name],
			health == catalog.StatusPassing && s.Count[catalog.StatusPassing] != s.Instances,
			health > catalog.StatusPassing && s.Count[health] == 0:
			continue
		}
		rows = append(rows, s)
	}
	d.Sources = slices.Sorted(maps.Keys(sources))
	d.Pager = paginate(r, len(rows))
	for _, s := range pageOf(rows, d.Pager) {
		row := serviceRow{Name: s.Name, Instances: s.Instances, Passing: s.Count[catalog.StatusPassing],
			Warning: s.Count[catalog.StatusWarning], Critical: s.Count[catalog.StatusCritical],
			Maintenance: s.Count[catalog.StatusMaintenance], Sources: slices.Sorted(maps.Keys(s.sources))}
		tags := slices.Sorted(maps.Keys(s.tags))
		const shown = 6
		if len(tags) > shown {
			row.MoreTags, tags = len(tags)-shown, tags[:shown]
		}
		row.Tags = tags
		d.Rows = append(d.Rows, row)
	}
	return d, http.StatusOK
}

func hasKeyPrefix(m map[string]int, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// ---- One service ----

type serviceData struct {
	Name     string
	Found    bool
	Health   string
	Counts   [catalog.StatusMaintenance + 1]int
	Total    int
	Rows     []instanceRow
	Pager    pager
	Curl     string
	Dig      string // empty when the agent serves no DNS or the name is no DNS label
	Problems []string
	Moves    []moveRow // instances of it that moved to another node (moves.go)
}

type instanceRow struct {
	Node     string
	Liveness catalog.Liveness
	ID       string
	Address  string
	Port     int
	Status   catalog.Status
	Weights  catalog.Weights
	Tags     []string
	Meta     []string // "k=v", sorted
	Source   string
	Checks   []catalog.Check
}

func (u *UI) serviceView(r *http.Request, _ time.Time) (any, int) {
	name := r.PathValue("name")
	d := serviceData{Name: name, Health: r.URL.Query().Get("health")}
	insts := u.cfg.Catalog.ServiceInstances(name, catalog.Filter{})
	if len(insts) == 0 {
		return d, http.StatusNotFound
	}
	d.Found, d.Total = true, len(insts)
	var health catalog.Status
	if d.Health != "" {
		st, err := catalog.ParseStatus(d.Health)
		if err != nil {
			d.Problems = append(d.Problems, "health must be one of "+strings.Join(healthFilters, ", "))
		}
		health = st
	}
	for i := range insts {
		d.Counts[insts[i].Status]++
	}
	insts = slices.DeleteFunc(insts, func(in catalog.Instance) bool { return health != 0 && in.Status != health })
	// The worst first: a failing instance is what one opens the page for.
	slices.SortStableFunc(insts, func(a, b catalog.Instance) int { return cmp.Compare(b.Status, a.Status) })
	d.Pager = paginate(r, len(insts))
	self := u.self().Name
	var local map[string]string
	for _, in := range pageOf(insts, d.Pager) {
		if in.Node.Node.Name == self && local == nil {
			local = u.cfg.Agent.LocalSources()
		}
		addr := cmp.Or(in.Service.Address, in.Node.Node.Address)
		meta := make([]string, 0, len(in.Service.Meta))
		for k, v := range in.Service.Meta {
			meta = append(meta, k+"="+v)
		}
		slices.Sort(meta)
		d.Rows = append(d.Rows, instanceRow{Node: in.Node.Node.Name, Liveness: in.Node.Liveness, ID: in.Service.ID,
			Address: addr, Port: in.Service.Port, Status: in.Status, Weights: in.Service.Weights,
			Tags: in.Service.Tags, Meta: meta, Source: sourceOf(in.Node.Node.Name, &in.Service, local),
			Checks: in.Checks})
	}
	d.Curl = fmt.Sprintf("curl -s 'http://%s/v1/health/service/%s?passing'", r.Host, url.PathEscape(name))
	d.Dig = digLine(u.cfg.DNSAddr, u.cfg.DNSDomain, name)
	d.Moves = u.serviceMoves(name)
	return d, http.StatusOK
}

// digLine is the dig command that asks the agent's DNS server for a service's
// instances (SRV: addresses and ports), as Consul's interface answers
// <name>.service.<domain>; empty without a DNS server or when name is not a DNS label
// (RFC 1123 §2.1: letters, digits and inner hyphens, at most 63).
func digLine(addr, domain, name string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !isLabel(name) {
		return ""
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	p := ""
	if port != "53" {
		p = " -p " + port
	}
	return fmt.Sprintf("dig @%s%s %s.service.%s SRV", host, p, name, domain)
}

// isLabel says whether s is one DNS label as host names use them (RFC 1123 §2.1).
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ---- Nodes ----

type nodesData struct {
	Q, State string
	Counts   [catalog.LivenessLeft + 1]int
	Rows     []nodeRow
	Pager    pager
	States   [catalog.LivenessLeft + 1][]float64 // members per state, sampled
	Timeline []Event
	Problems []string
}

type nodeRow struct {
	Name     string
	Address  string
	Liveness catalog.Liveness
	Since    time.Time
	Approx   bool // Since is when this agent first saw the node
	Why      string
	RTT      float64 // ms; gap if unknown
	Services int
	Failing  int
	Meta     []string
}

// nodeRow describes a node for the lists; the model's lock is held.
func (u *UI) nodeRow(nv *nodeView, _ time.Time) nodeRow {
	row := nodeRow{Name: nv.Name, Address: nv.Address, Liveness: nv.Liveness, Since: nv.Since, Why: nv.Why,
		Services: len(nv.Instances), Failing: len(nv.Failing), RTT: u.rttOf(nv.Name)}
	if row.Since.IsZero() {
		row.Since, row.Approx = nv.Seen, true
	}
	for _, k := range slices.Sorted(maps.Keys(nv.Meta)) {
		row.Meta = append(row.Meta, k+"="+nv.Meta[k])
	}
	return row
}

// rttOf returns the last sampled round trip to a node, in ms; gap if unknown.
func (u *UI) rttOf(name string) float64 {
	u.samp.mu.RLock()
	defer u.samp.mu.RUnlock()
	return u.samp.rtt[name].last()
}

func (u *UI) nodesView(r *http.Request, now time.Time) (any, int) {
	q := r.URL.Query()
	d := nodesData{Q: strings.TrimSpace(q.Get("q")), State: q.Get("state")}
	state := catalog.Liveness(255)
	if d.State != "" {
		for l := catalog.LivenessAlive; l <= catalog.LivenessLeft; l++ {
			if l.String() == d.State {
				state = l
			}
		}
		if state == 255 {
			d.Problems = append(d.Problems, "state must be alive, suspect, failed or left")
		}
	}
	m := u.model
	m.mu.RLock()
	d.Counts = m.byState
	match := m.names // unfiltered: no need to visit every node
	if d.State != "" || d.Q != "" {
		match = nil
		for _, name := range m.names {
			nv := m.nodes[name]
			if (d.State == "" || nv.Liveness == state) && (d.Q == "" || strings.Contains(strings.ToLower(name), strings.ToLower(d.Q))) {
				match = append(match, name)
			}
		}
	}
	d.Pager = paginate(r, len(match))
	for _, name := range pageOf(match, d.Pager) {
		d.Rows = append(d.Rows, u.nodeRow(m.nodes[name], now))
	}
	d.Timeline = m.recentEvents(30, func(e *Event) bool { return e.Service == "" && e.Kind != "check" })
	m.mu.RUnlock()
	u.samp.mu.RLock()
	for st := range d.States {
		d.States[st] = u.samp.states[st].values()
	}
	u.samp.mu.RUnlock()
	return d, http.StatusOK
}

// ---- One node ----

type nodeData struct {
	Name      string
	Found     bool
	Row       nodeRow
	ID        string
	RTT       []float64
	Instances []nodeInstance
	Checks    []catalog.CheckEntry
	Events    []Event
	Moves     []moveView // instances that moved away from it (moves.go)
}

type nodeInstance struct {
	Service, ID, Source string
	Status              catalog.Status
	Tags                []string
}

func (u *UI) nodeView(r *http.Request, now time.Time) (any, int) {
	name := r.PathValue("name")
	d := nodeData{Name: name}
	m := u.model
	m.mu.RLock()
	nv := m.nodes[name]
	if nv != nil {
		d.Found, d.Row, d.ID = true, u.nodeRow(nv, now), nv.ID
		for _, in := range nv.Instances {
			d.Instances = append(d.Instances, nodeInstance{Service: in.Service, ID: in.ID, Source: in.attrs.Source,
				Status: in.Status, Tags: in.attrs.Tags})
		}
		d.Moves = nv.Moves
	}
	d.Events = m.recentEvents(50, func(e *Event) bool { return e.Node == name })
	m.mu.RUnlock()
	if !d.Found {
		return d, http.StatusNotFound
	}
	d.Checks = u.cfg.Catalog.NodeChecks(name)
	u.samp.mu.RLock()
	d.RTT = u.samp.rtt[name].values()
	u.samp.mu.RUnlock()
	return d, http.StatusOK
}

// ---- This agent ----

type agentData struct {
	Self        Self
	Uptime      time.Time
	HTTPRate    []float64
	ChangeRate  []float64
	DNSRate     []float64 // nil when the agent serves no DNS
	Nodes       int
	Services    int
	Instances   int
	Down        int
	Failing     int
	Events      []Event
	SampleEvery time.Duration
	Upstreams   []upstreamRow
}

// upstreamRow is one listener of the local proxy, its instances counted.
type upstreamRow struct {
	Upstream
	Healthy, Ejected, Draining int // instances in rotation, ejected now, draining
	Active                     int64
	Ejections                  int32 // in all, over its instances
}

func (u *UI) agentView(_ *http.Request, _ time.Time) (any, int) {
	d := agentData{Self: u.self(), SampleEvery: u.cfg.SampleEvery}
	m := u.model
	m.mu.RLock()
	d.Nodes, d.Services, d.Instances, d.Failing = len(m.nodes), len(m.services), m.instances, m.failing
	d.Down = len(m.nodes) - m.byState[catalog.LivenessAlive]
	d.Events = m.recentEvents(100, nil)
	m.mu.RUnlock()
	u.samp.mu.RLock()
	d.HTTPRate, d.ChangeRate = u.samp.http.values(), u.samp.changes.values()
	if u.cfg.DNSAddr != "" {
		d.DNSRate = u.samp.dns.values()
	}
	u.samp.mu.RUnlock()
	now := u.cfg.Now()
	for _, up := range u.cfg.Agent.Upstreams() {
		row := upstreamRow{Upstream: up}
		for _, in := range up.Instances {
			switch {
			case in.EjectedUntil.After(now):
				row.Ejected++
			case in.Draining:
				row.Draining++
			default:
				row.Healthy++
			}
			row.Active += in.Active
			row.Ejections += in.Ejections
		}
		d.Upstreams = append(d.Upstreams, row)
	}
	return d, http.StatusOK
}

// ---- LAN (mDNS) ----

// The LAN page lists the instances imported from mDNS: the records of the external
// origins "mdns:<iface>@<node>" (agent/mdns.go), every agent's imports included.

// lanPrefix starts the name of every mDNS origin.
const lanPrefix = "mdns:"

type lanData struct {
	Origins  []lanOrigin
	Rows     []lanRow // this page of them
	Pager    pager
	Services int // service types among them
}

// lanOrigin is one interface of one agent that imports.
type lanOrigin struct {
	Name, Iface, Node string
	Liveness          catalog.Liveness
	Instances         int
}

type lanRow struct {
	Service, ID string
	Address     string // host:port
	Status      catalog.Status
	Origin      lanOrigin
	Tags        []string
}

func (u *UI) lanView(r *http.Request, _ time.Time) (any, int) {
	var d lanData
	var rows []lanRow
	services := map[string]bool{}
	m := u.model
	m.mu.RLock()
	i, _ := slices.BinarySearch(m.names, lanPrefix)
	for ; i < len(m.names) && strings.HasPrefix(m.names[i], lanPrefix); i++ {
		nv := m.nodes[m.names[i]]
		iface, node, _ := strings.Cut(strings.TrimPrefix(nv.Name, lanPrefix), "@")
		o := lanOrigin{Name: nv.Name, Iface: iface, Node: node, Liveness: nv.Liveness, Instances: len(nv.Instances)}
		d.Origins = append(d.Origins, o)
		for _, in := range nv.Instances {
			rows = append(rows, lanRow{Service: in.Service, ID: in.ID, Status: in.Status, Origin: o, Tags: in.attrs.Tags})
			services[in.Service] = true
		}
	}
	m.mu.RUnlock()
	d.Services = len(services)
	// sort.SliceStable: a generic stable sort of this struct would add about 10 KB
	// to the binary (issue 18 caps the UI at 300 KB).
	sort.SliceStable(rows, func(i, j int) bool {
		return cmpStrings(rows[i].Service, rows[j].Service, rows[i].ID, rows[j].ID) < 0
	})
	d.Pager = paginate(r, len(rows))
	d.Rows = pageOf(rows, d.Pager)
	addrs := map[string]map[string]string{} // origin -> service ID -> host:port, for this page's origins
	for i := range d.Rows {
		row := &d.Rows[i]
		byID, ok := addrs[row.Origin.Name]
		if !ok {
			byID = map[string]string{}
			if e, svcs, err := u.cfg.Catalog.NodeServices(row.Origin.Name); err == nil {
				for _, s := range svcs {
					byID[s.ID] = net.JoinHostPort(cmp.Or(s.Address, e.Node.Address), strconv.Itoa(s.Port))
				}
			}
			addrs[row.Origin.Name] = byID
		}
		row.Address = byID[row.ID]
	}
	return d, http.StatusOK
}
