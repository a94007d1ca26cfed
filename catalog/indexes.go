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
