package ui

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// The model is the UI's own view of the catalog, kept up to date by reading only the
// nodes whose topic moved (Catalog.NodeIndexes), so that with 10,000 nodes a change
// costs the reading of one node, not of the whole catalog. From it come the per-
// service health counts and filters of the services page, the failing list with the
// time each check has been failing (the catalog keeps no such time: the model notes
// when this agent first saw each status), and the event log. Pages of one service
// read its instances from the catalog itself.
//
// One goroutine (UI.follow) calls refresh; pages read under mu's read lock.

// maxEvents bounds the event log.
const maxEvents = 1000

// model is the UI's view of the catalog.
type model struct {
	cat Catalog
	ag  Agent
	now func() time.Time

	// Owned by the refresh goroutine: no lock.
	indexes  map[string]uint64 // scratch for NodeIndexes; the index of each node read
	logIndex uint64            // the catalog's index when the model last learned what moved
	logged   []string          // scratch for NodesChangedSince
	attrs    map[string]*attrs // interned instance attributes, by key
	self     string

	mu       sync.RWMutex
	loaded   bool      // the first refresh is done
	loadedAt time.Time // when it was
	version  uint64    // moves with every change of the view
	changed  chan struct{}
	nodes    map[string]*nodeView
	names    []string // node names, sorted
	services map[string]*svcSummary
	svcNames []string // service names, sorted
	// Totals kept with every change, so pages need not visit every node.
	byState   [catalog.LivenessLeft + 1]int // nodes per liveness
	instances int                           // service instances
	failing   int                           // checks not passing, serfHealth aside
	trouble   map[string]bool               // nodes not alive or with a failing check
	events    []Event                       // a ring of the last maxEvents, oldest at evStart
	evStart   int
	evSeq     uint64
}

// nodeView is one node as the model holds it.
type nodeView struct {
	index    uint64
	Name     string
	ID       string
	Address  string
	Meta     map[string]string
	Liveness catalog.Liveness
	Since    time.Time // liveness since, as this agent saw it; zero if never reported
	Seen     time.Time // when this view first held the node
	Why      string    // the serfHealth output when not alive
	// Instances are its service instances, sorted by service name then ID.
	Instances []instView
	// Failing are its checks that are not passing, serfHealth aside, sorted by ID.
	Failing []failView
	// Moves are its forward pointers: instances that left it (moves.go).
	Moves []moveView
}

// instView is one service instance, compactly: what the services page counts.
type instView struct {
	Service string
	ID      string
	Status  catalog.Status
	attrs   *attrs
}

// attrs are an instance's tags, meta pairs ("k=v") and source, shared by every
// instance that has the same: most instances of a service have identical ones.
type attrs struct {
	key    string
	Tags   []string
	Meta   []string
	Source string
	refs   int
}

// failView is one check that is not passing.
type failView struct {
	Node        string
	CheckID     string
	Name        string
	ServiceID   string
	ServiceName string
	Status      catalog.Status
	Output      string
	// Since is when this agent first saw the check in Status; Approx when that was
	// the first look at the catalog (it may have been so for longer).
	Since  time.Time
	Approx bool
	// head and tail are its row of the failing page around its age (checkRow),
	// written once.
	head, tail string
}

// svcSummary is one service name's instances counted.
type svcSummary struct {
	Name      string
	Instances int
	Count     [catalog.StatusMaintenance + 1]int // by status
	tags      map[string]int
	meta      map[string]int
	sources   map[string]int
}

// Event is one line of the event log.
type Event struct {
	Seq     uint64
	Time    time.Time
	Kind    string // join, alive, suspect, failed, left, gone, register, deregister, check
	Node    string
	Service string // "" for node events
	Text    string
	// head and tail are the event's list item around its age (eventList), written once.
	head, tail string
}

func newModel(cat Catalog, ag Agent, now func() time.Time) *model {
	return &model{cat: cat, ag: ag, now: now, indexes: map[string]uint64{}, attrs: map[string]*attrs{},
		changed: make(chan struct{}), nodes: map[string]*nodeView{}, services: map[string]*svcSummary{},
		trouble: map[string]bool{}}
}

// wait returns the model's version and a channel closed when it next moves.
func (m *model) wait() (uint64, <-chan struct{}) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.version, m.changed
}

// refresh brings the model up to date with the catalog: it reads the nodes whose
// topic moved, then swaps them in under the lock. It learns which moved from the
// catalog's log of node changes (NodesChangedSince), which costs what moved; only
// the first time, and when the log no longer reaches back, does it compare every
// node's index (NodeIndexes).
func (m *model) refresh() {
	if m.self == "" {
		m.self = m.ag.Self().Name // not in newModel: the agent may hold its lock while creating the UI
	}
	m.mu.RLock()
	first := !m.loaded
	m.mu.RUnlock()
	var read, gone []string
	full := true
	if !first {
		names, idx, ok := m.cat.NodesChangedSince(m.logIndex, m.logged[:0])
		if ok {
			full = false
			m.logIndex = idx
			slices.Sort(names)
			read = slices.Compact(names)
			m.logged = names[:0]
			for _, name := range read {
				m.indexes[name] = idx // what read records as the node's index
			}
		}
	}
	if full {
		m.logIndex, _ = m.cat.Watch(catalog.TopicAll) // before NodeIndexes: a move in between is read again
		m.cat.NodeIndexes(m.indexes)
		m.mu.RLock()
		for name, idx := range m.indexes {
			if old := m.nodes[name]; old == nil || old.index != idx {
				read = append(read, name)
			}
		}
		if len(m.indexes) != len(m.nodes) || len(read) > 0 {
			for name := range m.nodes {
				if _, ok := m.indexes[name]; !ok {
					gone = append(gone, name)
				}
			}
		}
		m.mu.RUnlock()
	}
	if len(read) == 0 && len(gone) == 0 && !first {
		return
	}
	now := m.now()
	fresh := make([]*nodeView, 0, len(read))
	for _, name := range read {
		m.mu.RLock()
		old := m.nodes[name]
		m.mu.RUnlock()
		nv := m.read(name, m.indexes[name], old, now, first)
		if nv == nil {
			gone = append(gone, name) // it went between NodeIndexes and now
			continue
		}
		fresh = append(fresh, nv)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	setChanged := first
	for _, name := range gone {
		if old := m.nodes[name]; old != nil {
			m.count(old, -1)
			for i := range old.Instances {
				m.release(old.Instances[i].attrs)
			}
			delete(m.nodes, name)
			setChanged = true
			m.event(now, "gone", name, "", "node "+name+" is gone from the catalog (left or reaped)")
		}
	}
	for _, nv := range fresh {
		old := m.nodes[nv.Name]
		if old != nil {
			m.count(old, -1)
		} else {
			setChanged = true
		}
		m.count(nv, +1)
		m.nodes[nv.Name] = nv
		if !first {
			m.diff(now, old, nv)
		}
	}
	if setChanged {
		m.names = slices.Sorted(maps.Keys(m.nodes))
	}
	if first {
		m.loaded, m.loadedAt = true, now
	}
	m.version++
	close(m.changed)
	m.changed = make(chan struct{})
}

// read builds a node's view from the catalog; nil if the node is gone.
func (m *model) read(name string, idx uint64, old *nodeView, now time.Time, first bool) *nodeView {
	e, svcs, err := m.cat.NodeServices(name)
	if err != nil {
		return nil
	}
	checks := m.cat.NodeChecks(name)
	nv := &nodeView{index: idx, Name: name, ID: e.Node.ID, Address: e.Node.Address, Meta: e.Node.Meta,
		Liveness: e.Liveness, Since: e.Since, Seen: now, Moves: m.readMoves(name)}
	if old != nil {
		nv.Seen = old.Seen
	}
	nodeStatus := catalog.StatusPassing
	svcStatus := map[string]catalog.Status{}
	for i := range checks {
		c := &checks[i].Check
		if c.ServiceID == "" {
			nodeStatus = catalog.Worse(nodeStatus, c.Status)
		} else {
			svcStatus[c.ServiceID] = catalog.Worse(svcStatus[c.ServiceID], c.Status)
		}
		if c.ID == catalog.SerfCheckID {
			if c.Status != catalog.StatusPassing {
				nv.Why = c.Output
			}
			continue
		}
		if c.Status == catalog.StatusPassing {
			continue
		}
		f := failView{Node: name, CheckID: c.ID, Name: c.Name, ServiceID: c.ServiceID, ServiceName: checks[i].ServiceName,
			Status: c.Status, Output: c.Output, Since: now, Approx: first}
		var prev *failView
		if old != nil {
			if prev = old.failing(c.ID); prev != nil && prev.Status == c.Status {
				f.Since, f.Approx = prev.Since, prev.Approx
			}
		}
		if prev != nil && *prev == (failView{Node: name, CheckID: c.ID, Name: c.Name, ServiceID: c.ServiceID,
			ServiceName: checks[i].ServiceName, Status: c.Status, Output: c.Output, Since: f.Since, Approx: f.Approx,
			head: prev.head, tail: prev.tail}) {
			f.head, f.tail = prev.head, prev.tail // unchanged: so is its row
		} else {
			f.head, f.tail = checkRowHTML(&f)
		}
		nv.Failing = append(nv.Failing, f)
	}
	var local map[string]string
	if name == m.self {
		local = m.ag.LocalSources()
	}
	nv.Instances = make([]instView, 0, len(svcs))
	for i := range svcs {
		s := &svcs[i]
		nv.Instances = append(nv.Instances, instView{Service: s.Name, ID: s.ID,
			Status: catalog.Worse(nodeStatus, svcStatus[s.ID]), attrs: m.intern(s, sourceOf(name, s, local))})
	}
	// sort.Slice, not slices.SortFunc: a generic sort of this struct would add
	// about 10 KB to the binary (issue 18 caps the UI at 300 KB).
	sort.Slice(nv.Instances, func(i, j int) bool {
		a, b := &nv.Instances[i], &nv.Instances[j]
		return cmpStrings(a.Service, b.Service, a.ID, b.ID) < 0
	})
	if old != nil {
		for i := range old.Instances {
			m.release(old.Instances[i].attrs)
		}
	}
	return nv
}

func cmpStrings(a1, b1, a2, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}

// failing returns the node's failing check with that ID, or nil.
func (nv *nodeView) failing(id string) *failView {
	for i := range nv.Failing {
		if nv.Failing[i].CheckID == id {
			return &nv.Failing[i]
		}
	}
	return nil
}

// Sources of service instances, for the services page's filter.
const (
	SourceFile   = "file"   // a config file on this agent
	SourceAPI    = "api"    // the HTTP API or the CLI of this agent
	SourceAgent  = "agent"  // another node's agent (file or API: not said by gossip)
	SourceDocker = "docker" // the Docker watcher of its node
	SourceMDNS   = "mdns"   // imported from mDNS by an agent
)

// metaDockerContainer is the meta key the Docker watcher puts on its services.
const metaDockerContainer = "docker_container"

// sourceOf says where an instance comes from: mDNS imports have an origin
// "mdns:<iface>@<node>", Docker's services carry their container in their meta,
// Consul's convention "external-source" names other syncs, and this agent knows its
// own services' source; gossip does not say whether another node's service came
// from a file or its API.
func sourceOf(node string, s *catalog.Service, local map[string]string) string {
	switch {
	case strings.HasPrefix(node, "mdns:"):
		return SourceMDNS
	case s.Meta[metaDockerContainer] != "":
		return SourceDocker
	case s.Meta["external-source"] != "":
		return s.Meta["external-source"]
	case local[s.ID] != "":
		return local[s.ID]
	}
	return SourceAgent
}

// intern returns the shared attrs of a service with that source.
func (m *model) intern(s *catalog.Service, source string) *attrs {
	meta := make([]string, 0, len(s.Meta))
	for k, v := range s.Meta {
		meta = append(meta, k+"="+v)
	}
	slices.Sort(meta)
	tags := slices.Clone(s.Tags)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	key := source + "\x00" + strings.Join(tags, "\x01") + "\x00" + strings.Join(meta, "\x01")
	a := m.attrs[key]
	if a == nil {
		a = &attrs{key: key, Tags: tags, Meta: meta, Source: source}
		m.attrs[key] = a
	}
	a.refs++
	return a
}

// release drops one reference to a, forgetting it with the last.
func (m *model) release(a *attrs) {
	if a.refs--; a.refs == 0 {
		delete(m.attrs, a.key)
	}
}

// count adds (sign +1) or removes (-1) a node to the totals and its instances to
// the service summaries; mu is held.
func (m *model) count(nv *nodeView, sign int) {
	m.byState[nv.Liveness] += sign
	m.instances += sign * len(nv.Instances)
	m.failing += sign * len(nv.Failing)
	if nv.Liveness != catalog.LivenessAlive || len(nv.Failing) > 0 {
		if sign > 0 {
			m.trouble[nv.Name] = true
		} else {
			delete(m.trouble, nv.Name)
		}
	}
	for i := range nv.Instances {
		in := &nv.Instances[i]
		s := m.services[in.Service]
		if s == nil {
			s = &svcSummary{Name: in.Service, tags: map[string]int{}, meta: map[string]int{}, sources: map[string]int{}}
			m.services[in.Service] = s
			m.svcNames = insertSorted(m.svcNames, in.Service)
		}
		s.Instances += sign
		s.Count[in.Status] += sign
		add(s.tags, in.attrs.Tags, sign)
		add(s.meta, in.attrs.Meta, sign)
		add(s.sources, []string{in.attrs.Source}, sign)
		if s.Instances == 0 {
			delete(m.services, in.Service)
			if i, ok := slices.BinarySearch(m.svcNames, in.Service); ok {
				m.svcNames = slices.Delete(m.svcNames, i, i+1)
			}
		}
	}
}

func add(counts map[string]int, keys []string, sign int) {
	for _, k := range keys {
		if counts[k] += sign; counts[k] == 0 {
			delete(counts, k)
		}
	}
}

func insertSorted(names []string, name string) []string {
	i, found := slices.BinarySearch(names, name)
	if found {
		return names
	}
	return slices.Insert(names, i, name)
}

// diff logs what changed between two views of a node (old is nil for a new node).
func (m *model) diff(now time.Time, old, nv *nodeView) {
	name := nv.Name
	if old == nil {
		m.event(now, "join", name, "", "node "+name+" joined ("+nv.Liveness.String()+")")
	} else if old.Liveness != nv.Liveness {
		text := "node " + name + " is " + nv.Liveness.String()
		if nv.Why != "" {
			text += ": " + nv.Why
		}
		m.event(now, nv.Liveness.String(), name, "", text)
	}
	var before []instView
	if old != nil {
		before = old.Instances
	}
	for _, in := range nv.Instances {
		if !slices.ContainsFunc(before, func(o instView) bool { return o.ID == in.ID }) {
			m.event(now, "register", name, in.Service, "service "+in.Service+" ("+in.ID+") registered on "+name)
		}
	}
	for _, in := range before {
		if !slices.ContainsFunc(nv.Instances, func(o instView) bool { return o.ID == in.ID }) {
			m.event(now, "deregister", name, in.Service, "service "+in.Service+" ("+in.ID+") deregistered from "+name)
		}
	}
	var wasFailing []failView
	if old != nil {
		wasFailing = old.Failing
	}
	for _, f := range nv.Failing {
		if prev := old.failingOrNil(f.CheckID); prev == nil || prev.Status != f.Status {
			m.event(now, "check", name, f.ServiceName, "check "+f.CheckID+" on "+name+" is "+f.Status.String()+": "+firstLine(f.Output))
		}
	}
	for _, f := range wasFailing {
		if nv.failing(f.CheckID) == nil {
			m.event(now, "check", name, f.ServiceName, "check "+f.CheckID+" on "+name+" is passing again (or gone)")
		}
	}
	m.diffMoves(now, old, nv)
}

func (nv *nodeView) failingOrNil(id string) *failView {
	if nv == nil {
		return nil
	}
	return nv.failing(id)
}

// firstLine returns s up to its first newline, at most 200 bytes.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// event appends to the log; mu is held.
func (m *model) event(now time.Time, kind, node, service, text string) {
	m.evSeq++
	ev := Event{Seq: m.evSeq, Time: now, Kind: kind, Node: node, Service: service, Text: text}
	ev.head, ev.tail = eventHTML(&ev)
	if len(m.events) < maxEvents {
		m.events = append(m.events, ev)
		return
	}
	m.events[m.evStart] = ev
	m.evStart = (m.evStart + 1) % maxEvents
}

// recentEvents returns up to n events that keep accepts, newest first; mu is held.
func (m *model) recentEvents(n int, keep func(*Event) bool) []Event {
	var out []Event
	for i := len(m.events) - 1; i >= 0 && len(out) < n; i-- {
		ev := &m.events[(m.evStart+i)%len(m.events)]
		if keep == nil || keep(ev) {
			out = append(out, *ev)
		}
	}
	return out
}
