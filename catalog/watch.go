package catalog

import (
	"context"
)

// Topic names a family of query answers that move together, so a blocking query wakes
// only when its own answer may have changed: a change to service "db" moves
// ServiceTopic("db") and not ServiceTopic("web").
type Topic struct {
	kind topicKind
	name string
}

type topicKind uint8

const (
	topicAll topicKind = iota
	topicServices
	topicNodes
	topicService
	topicNode
	topicMoves
)

// The topics without a name.
var (
	// TopicAll moves on every change (health by state, anything not covered below).
	TopicAll = Topic{kind: topicAll}
	// TopicServices moves when the set of service names or their tags may have changed.
	TopicServices = Topic{kind: topicServices}
	// TopicNodes moves when the set of nodes, their records or liveness may have changed.
	TopicNodes = Topic{kind: topicNodes}
	// TopicMoves moves when a forward pointer (Move) is written, rewritten or deleted.
	TopicMoves = Topic{kind: topicMoves}
)

// ServiceTopic moves when the instances of the named service, their checks, their
// nodes or their nodes' liveness may have changed.
func ServiceTopic(name string) Topic { return Topic{kind: topicService, name: name} }

// NodeTopic moves when anything of the named node may have changed.
func NodeTopic(name string) Topic { return Topic{kind: topicNode, name: name} }

// String returns e.g. "service:web".
func (t Topic) String() string {
	switch t.kind {
	case topicAll:
		return "all"
	case topicServices:
		return "services"
	case topicNodes:
		return "nodes"
	case topicService:
		return "service:" + t.name
	case topicMoves:
		return "moves"
	default:
		return "node:" + t.name
	}
}

// watchState is a topic's index and the channel its current waiters hold. Origins and
// service sets keep a pointer to theirs, so merging a record marks its topics without
// hashing their names.
type watchState struct {
	index   uint64
	ch      chan struct{} // closed and cleared when the topic moves; nil if nobody waits
	pending bool          // touched by the mutation in progress
	node    string        // the node's name, for a NodeTopic: commit logs it (nodeLog)
}

// orphanLimit is how many watch entries of vanished services may pile up before
// Expire forgets them (and, to stay monotonic, raises the index of absent topics).
const orphanLimit = 4096

// state returns t's watch entry, creating it at its current index.
func (c *Catalog) state(t Topic) *watchState {
	w := c.watch[t]
	if w == nil {
		w = &watchState{index: c.topicIndexLocked(t)}
		if t.kind == topicNode {
			w.node = t.name
		}
		c.watch[t] = w
	}
	return w
}

// touchState marks a topic as changed by the mutation in progress; commit publishes it.
func (c *Catalog) touchState(w *watchState) {
	if !w.pending {
		w.pending = true
		c.pending = append(c.pending, w)
	}
}

// touch marks topics by name; the hot paths use touchNode and touchService instead.
func (c *Catalog) touch(ts ...Topic) {
	for _, t := range ts {
		c.touchState(c.state(t))
	}
}

// touchNode marks o's node topic.
func (c *Catalog) touchNode(o *origin) {
	if o.watch == nil {
		o.watch = c.state(NodeTopic(o.name))
	}
	c.touchState(o.watch)
}

// touchService marks a service's topic and, when its instances come or go, the
// service list's.
func (c *Catalog) touchService(name string, listToo bool) {
	if set := c.services[name]; set != nil {
		if set.watch == nil {
			set.watch = c.state(ServiceTopic(name))
		}
		c.touchState(set.watch)
	} else {
		c.touch(ServiceTopic(name))
	}
	if listToo {
		c.touchState(c.servicesWatch)
	}
}

// commit gives every touched topic a new index and wakes its waiters. One mutation
// (an Apply batch, a liveness change) moves the index once.
func (c *Catalog) commit() {
	if len(c.pending) == 0 {
		return
	}
	c.index++
	c.touch(TopicAll)
	for _, w := range c.pending {
		if w.node != "" {
			c.nodeLog.add(c.index, w.node)
		}
		w.index, w.pending = c.index, false
		if w.ch != nil {
			close(w.ch)
			w.ch = nil
		}
	}
	clear(c.pending)
	c.pending = c.pending[:0]
}

// topicIndexLocked returns a topic's index. A topic never touched (or forgotten) has
// had the same answer since c.absent, so that is its index: stable until it moves.
func (c *Catalog) topicIndexLocked(t Topic) uint64 {
	if t.kind == topicAll {
		return c.index
	}
	if w := c.watch[t]; w != nil {
		return w.index
	}
	return c.absent
}

// TopicIndex returns the index of t: the global index at which its answer last may
// have changed. It is ≥ 1, never decreases, and does not move while t's answer stays.
func (c *Catalog) TopicIndex(t Topic) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.topicIndexLocked(t)
}

// Watch returns t's index and a channel that is closed when t next moves. It is
// level-triggered: call Watch again after each wake. The catalog never blocks on the
// channel's reader.
func (c *Catalog) Watch(t Topic) (uint64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.state(t)
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.index, w.ch
}

// WaitIndex blocks until t's index exceeds after or ctx ends, and returns the index.
// It returns at once if the index already exceeds after. On ctx's end it returns the
// current index and ctx's error; a blocking query then answers with what it has.
func (c *Catalog) WaitIndex(ctx context.Context, t Topic, after uint64) (uint64, error) {
	for {
		idx, ch := c.Watch(t)
		if idx > after {
			return idx, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return c.TopicIndex(t), ctx.Err()
		}
	}
}

// forgetOrphans drops watch entries of services and nodes that no longer exist once
// there are many, so clients asking for random names cannot grow memory without bound.
// Waiters on them are woken (a spurious wake is harmless: they re-query and wait
// again), and absent topics now report the current index, which keeps every topic's
// index monotonic.
func (c *Catalog) forgetOrphans() {
	if c.orphans < orphanLimit && len(c.watch) < orphanLimit+4*len(c.services)+4*len(c.origins) {
		return
	}
	for t, w := range c.watch {
		var exists bool
		switch t.kind {
		case topicService:
			_, exists = c.services[t.name]
		case topicNode:
			_, exists = c.origins[t.name]
		default:
			exists = true // the unnamed topics, cached in the Catalog itself
		}
		if exists {
			continue
		}
		if w.ch != nil {
			close(w.ch)
		}
		delete(c.watch, t)
	}
	c.absent = c.index
	c.orphans = 0
}
