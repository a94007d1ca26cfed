package catalog

// Stats counts what a catalog holds, for metrics.
type Stats struct {
	Nodes      int // origins with records (every node, external origins included)
	Services   int // distinct service names with at least one instance
	Instances  int // service instances across all nodes
	Records    int // live records of every kind
	Tombstones int // deleted records kept so late copies cannot resurrect them
}

// Stats returns the catalog's current counts. It visits each origin and service name once
// under the read lock: cheap enough for a metrics scrape, not for a hot path.
func (c *Catalog) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var s Stats
	for _, o := range c.origins {
		if o.gen == 0 {
			continue
		}
		s.Nodes++
		s.Records += len(o.records) - o.tombs
		s.Tombstones += o.tombs
	}
	s.Services = len(c.services)
	for _, set := range c.services {
		s.Instances += len(set.instances)
	}
	return s
}
