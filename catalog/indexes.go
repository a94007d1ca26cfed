package catalog

// NodeIndexes fills dst with the topic index of every node holding records (the
// nodes Nodes reports), by name, after clearing it. A reader that keeps its own view
// of the catalog (the web UI) compares these with the indexes it last saw and reads
// again only the nodes that moved: a node's topic moves with anything of the node, its
// records, their checks and its liveness (see NodeTopic). It visits each node once
// under the read lock and allocates nothing when dst is large enough.
func (c *Catalog) NodeIndexes(dst map[string]uint64) {
	clear(dst)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for name, o := range c.origins {
		if o.gen == 0 {
			continue
		}
		if o.watch != nil {
			dst[name] = o.watch.index
		} else {
			dst[name] = c.topicIndexLocked(NodeTopic(name))
		}
	}
}

// nodeLogLen is how many node changes the catalog remembers for NodesChangedSince:
// a reader that comes back within that many changes reads only what moved.
const nodeLogLen = 4096

// nodeLog is a ring of the last nodeLogLen node topic moves, oldest first from next.
type nodeLog struct {
	entries [nodeLogLen]nodeChange
	n, next int
	floor   uint64 // the index of the newest move dropped from the ring; 0 if none
}

type nodeChange struct {
	index uint64
	node  string
}

func (l *nodeLog) add(index uint64, node string) {
	if l.n == nodeLogLen {
		l.floor = l.entries[l.next].index
	} else {
		l.n++
	}
	l.entries[l.next] = nodeChange{index, node}
	l.next = (l.next + 1) % nodeLogLen
}

// NodesChangedSince appends to dst the name of every node whose topic moved after
// index after (a name may come more than once), and returns them with the catalog's
// index now, to pass as after next time. A reader keeping its own view of the nodes
// (the web UI) so reads only what moved, without visiting every node as NodeIndexes
// does. ok is false when the catalog no longer remembers every move since after (it
// keeps the last few thousand): the reader must compare every node (NodeIndexes). A
// node that went is reported like any other move; reading it finds it gone.
func (c *Catalog) NodesChangedSince(after uint64, dst []string) (names []string, index uint64, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if after < c.nodeLog.floor {
		return dst, c.index, false // moves since after were dropped from the ring
	}
	l := &c.nodeLog
	for i := 1; i <= l.n; i++ {
		e := &l.entries[(l.next-i+nodeLogLen)%nodeLogLen]
		if e.index <= after {
			break
		}
		dst = append(dst, e.node)
	}
	return dst, c.index, true
}
