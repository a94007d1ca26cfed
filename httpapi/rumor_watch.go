package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// GET /v1/rumor/watch streams catalog changes as server-sent events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html):
//
//	?service=web (repeatable)  the instances of these services
//	(no parameter)             the instances of every service
//	?nodes                     every node: its record and liveness
//
// ?tag=, ?passing and ?node-meta= filter instances as in /v1/health/service; ?dc must
// name this datacenter; ?filter is refused as elsewhere.
//
// Each connection starts with one event per subject (the snapshot), then an event
// named "synced", then one event each time a subject changes:
//
//	id: 42
//	event: service
//	data: {"Index":42,"Service":"web","Instances":[…/v1/health/service entries…]}
//
//	event: node
//	data: {"Index":43,"Node":"n1","Deleted":false,"Liveness":"alive",…}
//
// A service stream also carries a "moved" event for each forward pointer of its
// services (an instance that moved to another node, see GET /v1/rumor/moves), once
// per version of the pointer, after the services' events:
//
//	event: moved
//	data: {"Index":44,"Service":"web","From":"n1","ServiceID":"web-1","To":"n2",…}
//
// A service whose last instance went away gets an event with no instances; a node
// that went away gets "Deleted": true. Index is the catalog index of the change (the
// topic index of that service or node). While nothing changes, a comment line is sent
// every WatchHeartbeat so proxies keep the stream open.
//
// The stream is level-triggered like blocking queries: a burst of changes to one
// subject may arrive as one event with the final state, and a slow reader only holds
// up its own stream (each write has a deadline; a reader that stops reading is cut
// off). A reconnecting client gets a fresh snapshot; Last-Event-ID is not replayed.
// The stream ends when the client goes away or the agent shuts down.

// DefaultWatchHeartbeat is Config.WatchHeartbeat's default.
const DefaultWatchHeartbeat = 15 * time.Second

// watchServiceEvent is the data of a "service" event.
type watchServiceEvent struct {
	Index     uint64
	Service   string
	Instances []serviceEntry
}

// watchMovedEvent is the data of a "moved" event.
type watchMovedEvent struct {
	Index uint64
	MoveEntry
}

// watchNodeEvent is the data of a "node" event.
type watchNodeEvent struct {
	Index           uint64
	Node            string
	Deleted         bool
	ID              string            `json:",omitempty"`
	Address         string            `json:",omitempty"`
	Datacenter      string            `json:",omitempty"`
	TaggedAddresses map[string]string `json:",omitempty"`
	Meta            map[string]string `json:",omitempty"`
	Liveness        string            `json:",omitempty"`
	// LivenessSince is when Liveness last changed, as this agent saw it.
	LivenessSince *time.Time `json:",omitempty"`
}

// watchSource is one kind of stream: what to wait on, and how to turn the catalog's
// current state into events for the subjects that changed.
type watchSource interface {
	// wake is the topic whose move may change some subject.
	wake() catalog.Topic
	// changes returns the events for subjects that changed since the last call (all
	// of them on the first call), in a stable order.
	changes() []sseEvent
}

// sseEvent is one event to send: its id (the index), name and JSON data.
type sseEvent struct {
	id   uint64
	name string
	data any
}

func (h *Handler) watch(w http.ResponseWriter, r *http.Request) {
	q, err := h.parseQuery(r)
	if err == nil && q.expr != nil {
		// Events carry several shapes (instances, nodes, deletions): no one struct for
		// an expression to select on.
		err = checkFilter(q.expr, r.URL.Path, nil)
	}
	if err != nil {
		h.failQuery(w, r, err)
		return
	}
	v := r.URL.Query()
	var src watchSource
	_, nodes := v["nodes"]
	services := slices.DeleteFunc(slices.Clone(v["service"]), func(s string) bool { return s == "" })
	switch {
	case nodes && len(services) > 0:
		h.fail(w, r, http.StatusBadRequest, "watch either ?service= or ?nodes, not both: open two streams")
		return
	case nodes:
		src = &nodeSource{cat: h.cat, f: q.filter, sent: map[string][]byte{}}
	default:
		src = &serviceSource{cat: h.cat, f: q.filter, names: services, sent: map[string]uint64{}, moved: map[string]string{}}
	}

	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	// send writes buf to the client with a fresh deadline; false if the client is gone.
	send := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeSlack)) // unsupported by some writers (tests)
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		if err == nil {
			err = rc.Flush()
		}
		return err == nil
	}
	ctx := r.Context()
	last := uint64(0)
	synced := false
	for {
		// Read the index before the state, so a change between the two wakes us again
		// rather than being missed.
		idx := h.cat.TopicIndex(src.wake())
		for _, ev := range src.changes() {
			if err := writeEvent(&buf, ev); err != nil {
				h.log.Error("watch: encode event", "error", err)
				return
			}
		}
		if !synced {
			synced = true
			fmt.Fprintf(&buf, "event: synced\ndata: {\"Index\":%d}\n\n", max(idx, 1))
		}
		if buf.Len() > 0 && !send() {
			return
		}
		last = idx
		for {
			wctx, cancel := context.WithTimeout(ctx, h.watchHeartbeat)
			_, err := h.cat.WaitIndex(wctx, src.wake(), last)
			cancel()
			if ctx.Err() != nil {
				return // client gone or agent shutting down
			}
			if err == nil {
				break
			}
			buf.WriteString(": heartbeat\n\n")
			if !send() {
				return
			}
		}
	}
}

// writeEvent appends one event in the SSE wire format. JSON never contains a raw
// newline, so the data fits on one line.
func writeEvent(buf *bytes.Buffer, ev sseEvent) error {
	data, err := json.Marshal(ev.data)
	if err != nil {
		return err
	}
	fmt.Fprintf(buf, "id: %d\nevent: %s\ndata: %s\n\n", ev.id, ev.name, data)
	return nil
}

// serviceSource streams instances of the named services, or of every service.
type serviceSource struct {
	cat   Catalog
	f     catalog.Filter
	names []string          // empty: every service
	sent  map[string]uint64 // topic index last sent, by service
	moved map[string]string // pointer version last sent, by "from/serviceID"
}

func (s *serviceSource) wake() catalog.Topic {
	if len(s.names) == 1 {
		return catalog.ServiceTopic(s.names[0])
	}
	return catalog.TopicAll
}

func (s *serviceSource) changes() []sseEvent {
	names, gone := s.names, map[string]bool{}
	if len(names) == 0 {
		current := map[string]bool{}
		for _, sum := range s.cat.Services(catalog.Filter{NodeMeta: s.f.NodeMeta}) {
			names = append(names, sum.Name)
			current[sum.Name] = true
		}
		// Services that went away since the last call get one last, empty event.
		for name := range s.sent {
			if !current[name] {
				names = append(names, name)
				gone[name] = true
			}
		}
		slices.Sort(names)
	}
	var out []sseEvent
	for _, name := range names {
		ti := s.cat.TopicIndex(catalog.ServiceTopic(name))
		if prev, seen := s.sent[name]; seen && ti <= prev && !gone[name] {
			continue
		}
		ev := watchServiceEvent{Index: ti, Service: name, Instances: []serviceEntry{}}
		if gone[name] {
			delete(s.sent, name)
		} else {
			s.sent[name] = ti
			insts := s.cat.ServiceInstances(name, s.f)
			for i := range insts {
				ev.Instances = append(ev.Instances, toServiceEntry(&insts[i], ti))
			}
		}
		out = append(out, sseEvent{id: ti, name: "service", data: ev})
	}
	return append(out, s.movedEvents()...)
}

// movedEvents returns a "moved" event for each pointer of the watched services not
// sent at its current version.
func (s *serviceSource) movedEvents() []sseEvent {
	mc, ok := s.cat.(movesCatalog)
	if !ok {
		return nil
	}
	var ms []catalog.MoveEntry
	if len(s.names) == 0 {
		ms = mc.Moves("")
	}
	for _, name := range s.names {
		ms = append(ms, mc.Moves(name)...)
	}
	var out []sseEvent
	for i := range ms {
		e := &ms[i]
		key, ver := e.From+"/"+e.ServiceID, e.Version.String()
		if s.moved[key] == ver {
			continue
		}
		s.moved[key] = ver
		idx := s.cat.TopicIndex(catalog.ServiceTopic(e.Move.Service))
		out = append(out, sseEvent{id: idx, name: "moved", data: watchMovedEvent{Index: idx, MoveEntry: toMoveEntry(e)}})
	}
	return out
}

// nodeSource streams every node's record and liveness. A node's topic also moves when
// its services change, so events are sent only when what they show changed.
type nodeSource struct {
	cat  Catalog
	f    catalog.Filter
	sent map[string][]byte // the event last sent, rendered without its index, by node
}

func (s *nodeSource) wake() catalog.Topic { return catalog.TopicNodes }

func (s *nodeSource) changes() []sseEvent {
	idx := s.cat.TopicIndex(catalog.TopicNodes)
	current := map[string]bool{}
	var out []sseEvent
	for _, e := range s.cat.Nodes(s.f) {
		n := &e.Node
		current[n.Name] = true
		ev := watchNodeEvent{Node: n.Name, ID: n.ID, Address: n.Address, Datacenter: n.Datacenter,
			TaggedAddresses: maps.Clone(n.TaggedAddresses), Meta: maps.Clone(n.Meta),
			Liveness: e.Liveness.String()}
		if !e.Since.IsZero() {
			since := e.Since
			ev.LivenessSince = &since
		}
		rendered, err := json.Marshal(ev)
		if err != nil || bytes.Equal(rendered, s.sent[n.Name]) {
			continue
		}
		s.sent[n.Name] = rendered
		ev.Index = s.cat.TopicIndex(catalog.NodeTopic(n.Name))
		out = append(out, sseEvent{id: ev.Index, name: "node", data: ev})
	}
	for _, name := range slices.Sorted(maps.Keys(s.sent)) {
		if !current[name] {
			delete(s.sent, name)
			out = append(out, sseEvent{id: idx, name: "node", data: watchNodeEvent{Index: idx, Node: name, Deleted: true}})
		}
	}
	return out
}
