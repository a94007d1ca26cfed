package catalog

// Endpoint is a service instance reduced to what a load balancer needs: where to
// connect, how much traffic it takes, and its health. It is much cheaper to read than
// an Instance (no copies of tags, meta or checks).
type Endpoint struct {
	Node      string  // the origin (node name) holding the instance
	ServiceID string  // the instance's service ID, unique on Node
	Address   string  // the service's address, else its node's; "" if neither is known
	Port      int     // the service's port
	Weights   Weights // the service's load-balancing weights
	Status    Status  // worst of serfHealth, the node's checks and the service's checks
}

// Endpoints appends to dst the instances of the named service that carry tag (when
// not "") and returns it, in no particular order. It reads under the read lock, copies
// only strings and allocates nothing beyond dst's growth: it is what proxies call on
// every change of ServiceTopic(name).
func (c *Catalog) Endpoints(dst []Endpoint, name, tag string) []Endpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	set := c.services[name]
	if set == nil {
		return dst
	}
	for s, o := range set.instances {
		if tag != "" && !s.HasTag(tag) {
			continue
		}
		if o.records[Key{Kind: KindMove, ID: s.ID}].move != nil {
			// Its origin says it moved: new connections go where it went. (An agent
			// deletes a pointer when the instance registers again, so this holds only
			// while the two records of a move are seen apart.)
			continue
		}
		ep := Endpoint{Node: o.name, ServiceID: s.ID, Address: s.Address, Port: s.Port,
			Weights: s.Weights, Status: c.statusLocked(o, s.ID)}
		if ep.Address == "" && o.node != nil {
			ep.Address = o.node.Address
		}
		dst = append(dst, ep)
	}
	return dst
}

// statusLocked is the worst status of o's liveness, its node-level checks and the
// checks of serviceID, without copying any check.
func (c *Catalog) statusLocked(o *origin, serviceID string) Status {
	st := StatusPassing
	if l, _ := c.livenessLocked(o.name); l != LivenessAlive {
		st = StatusCritical
	}
	for _, r := range o.records {
		if r.check != nil && (r.check.ServiceID == "" || r.check.ServiceID == serviceID) {
			st = Worse(st, r.check.Status)
		}
	}
	return st
}

// ServiceIndexes fills dst with the topic index of every service name the catalog
// holds (see ServiceTopic), after clearing it: a reader following many services (the
// proxy's upstreams) compares them with the indexes it last saw and re-reads only the
// services that moved.
func (c *Catalog) ServiceIndexes(dst map[string]uint64) {
	clear(dst)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for name, set := range c.services {
		if set.watch != nil {
			dst[name] = set.watch.index
		} else {
			dst[name] = c.topicIndexLocked(ServiceTopic(name))
		}
	}
}
