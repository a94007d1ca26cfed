package catalog

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Clock tells the catalog the time. The agent passes the wall clock, tests a fake one.
type Clock interface {
	Now() time.Time
}

// Config configures a Catalog. The zero value of every field but Clock means its default.
type Config struct {
	// Clock supplies the time for liveness changes, tombstone ages and reaping.
	// Required: the catalog never reads the wall clock itself.
	Clock Clock

	// ReapAfter is how long the records of a failed node are kept (reported critical)
	// before Expire drops them. Long enough that a healed partition only moves what
	// changed during the split. Default 72h, like Consul's reconnect timeout.
	ReapAfter time.Duration

	// TombstoneTTL is how long a deleted record's tombstone is kept so that late or
	// duplicate copies of the live record cannot resurrect it. It must exceed the
	// longest time a replica can miss a deletion and still come back (a partition
	// shorter than ReapAfter); Default 24h, like serf's tombstone timeout.
	TombstoneTTL time.Duration

	// Self, if set, is the origin of the node that holds this catalog. Its records are
	// written only by ApplyOwn: Apply never stores a record of Self (the owner's local
	// state always wins over any copy of its records from elsewhere) and hands such
	// records to OnOwnRecords instead, so the owner can notice versions of its origin
	// it did not issue (a forged record, an older incarnation) and supersede them.
	Self string
	// OnOwnRecords, if set, receives the valid records of Self that Apply refused, after
	// Apply has released the catalog; it must return promptly and not call back into
	// the catalog's writers on the same goroutine for long (the agent only notes the
	// highest version and wakes a goroutine of its own).
	OnOwnRecords func(recs []Record)
}

// Defaults for Config fields left zero.
const (
	DefaultReapAfter    = 72 * time.Hour
	DefaultTombstoneTTL = 24 * time.Hour
)

// ErrNotFound is returned by lookups of a node or record the catalog does not hold.
var ErrNotFound = errors.New("not found")

// Catalog holds every origin's records and the liveness of every node, and answers
// queries over them. Create it with New.
type Catalog struct {
	cfg Config

	mu       sync.RWMutex
	origins  map[string]*origin
	liveness map[string]*liveState  // by node name; absent means alive
	services map[string]*serviceSet // by service name: every instance, for queries
	buckets  [NumBuckets]uint64     // digest hash per bucket, kept incrementally
	watch    map[Topic]*watchState  // per-topic index and waiters
	pending  []*watchState          // topics touched by the mutation in progress
	// The entries of the unnamed topics, cached.
	servicesWatch, nodesWatch *watchState
	index                     uint64  // global index, ≥ 1
	absent                    uint64  // index reported for topics without a watch entry
	orphans                   int     // watch entries whose subject no longer exists
	nodeLog                   nodeLog // the last node topic moves (NodesChangedSince)
	// moveOrigins counts the move records (live or expired) of each origin that holds
	// any, so reading pointers skips the origins without.
	moveOrigins map[*origin]int
	movesWatch  *watchState // TopicMoves' entry
}

// origin is one origin's current set of records: those of its newest generation.
type origin struct {
	name    string
	bucket  int
	gen     uint64 // current generation; 0 until a record arrives
	max     uint64 // highest counter seen in gen
	hash    uint64 // XOR of the hashes of all records held, tombstones included
	records map[Key]stored
	tombs   int // tombstones in records, so Expire skips origins without any
	// checks holds the values of the live check records, in no order: the status of
	// an instance (Endpoints, for every instance of a proxy's upstream) reads these
	// rather than every record of the node.
	checks []*Check
	// gcFloor is the highest counter of a tombstone collected in gen: a late copy of
	// such a tombstone for an absent key is not stored again.
	gcFloor uint64

	// gone, if non-zero, is an origin tombstone: the origin left or was reaped, and
	// every record at or below this version is dropped on arrival.
	gone   Version
	goneAt time.Time

	node  *Node       // the node record's value, if any (queries read it for every instance)
	watch *watchState // NodeTopic(name)'s entry, once looked up
}

// stored is a record as the catalog keeps it, by value in its origin's map under its
// Key: no allocation of its own and no copy of the origin's name, which is most of
// what merging a million records costs in time and memory. At most one value is set;
// none means a tombstone.
type stored struct {
	version   Version
	deletedAt int64 // local time (Unix ns) the tombstone arrived, for garbage collection
	node      *Node
	service   *Service
	check     *Check
	move      *Move
}

func (s *stored) deleted() bool {
	return s.node == nil && s.service == nil && s.check == nil && s.move == nil
}

// record rebuilds the Record s was stored from.
func (s *stored) record(origin string, k Key) Record {
	return Record{Origin: origin, Key: k, Version: s.version, Deleted: s.deleted(),
		Node: s.node, Service: s.service, Check: s.check, Move: s.move}
}

// storedService returns o's live service with the given ID, or nil.
func (o *origin) storedService(id string) *Service {
	return o.records[Key{Kind: KindService, ID: id}].service
}

// liveState is a node's liveness and when it last changed.
type liveState struct {
	state Liveness
	since time.Time
}

// serviceSet is the set of instances of one service name across origins.
type serviceSet struct {
	name      string // the one copy of the name its instances share
	instances map[*Service]*origin
	watch     *watchState // ServiceTopic(name)'s entry, once looked up
}

// New returns an empty catalog at index 1.
func New(cfg Config) (*Catalog, error) {
	if cfg.Clock == nil {
		return nil, errors.New("catalog: config has no Clock")
	}
	if cfg.ReapAfter < 0 || cfg.TombstoneTTL < 0 {
		return nil, fmt.Errorf("catalog: negative ReapAfter %s or TombstoneTTL %s", cfg.ReapAfter, cfg.TombstoneTTL)
	}
	if cfg.ReapAfter == 0 {
		cfg.ReapAfter = DefaultReapAfter
	}
	if cfg.TombstoneTTL == 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	c := &Catalog{
		cfg:      cfg,
		origins:  make(map[string]*origin),
		liveness: make(map[string]*liveState),
		services: make(map[string]*serviceSet),
		watch:    make(map[Topic]*watchState),
		index:    1,
		absent:   1,

		moveOrigins: make(map[*origin]int),
	}
	c.servicesWatch, c.nodesWatch = c.state(TopicServices), c.state(TopicNodes)
	c.movesWatch = c.state(TopicMoves)
	return c, nil
}

// Apply merges records into the catalog. For each (origin, key) the higher version
// wins; a record of a newer generation first drops everything older of its origin;
// records at or below an origin tombstone are dropped. Invalid records are skipped and
// reported in the returned error (all of them, joined); valid records in the same call
// are still applied, so one bad record cannot block the rest.
//
// It returns the records that changed the catalog, in input order: the ones seen for
// the first time, which gossip re-broadcasts. Duplicates and stale versions are not
// returned. Apply takes ownership of the records' values; the caller must not modify
// them afterwards.
//
// Records of Config.Self are not applied: they go to Config.OnOwnRecords (see Config).
func (c *Catalog) Apply(recs ...Record) (changed []Record, err error) {
	changed, own, err := c.applyAll(recs, false)
	if len(own) > 0 && c.cfg.OnOwnRecords != nil {
		c.cfg.OnOwnRecords(own)
	}
	return changed, err
}

// ApplyOwn is Apply for the owner's own records (Config.Self's), which Apply refuses:
// the node's agent writes its records with it.
func (c *Catalog) ApplyOwn(recs ...Record) (changed []Record, err error) {
	changed, _, err = c.applyAll(recs, true)
	return changed, err
}

func (c *Catalog) applyAll(recs []Record, own bool) (changed, refused []Record, err error) {
	var errs []error
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock.Now()
	for i := range recs {
		r := &recs[i]
		if verr := r.Validate(); verr != nil {
			errs = append(errs, verr)
			continue
		}
		if !own && c.cfg.Self != "" && r.Origin == c.cfg.Self {
			refused = append(refused, *r)
			continue
		}
		if c.apply(r, now) {
			changed = append(changed, *r)
		}
	}
	c.commit()
	return changed, refused, errors.Join(errs...)
}

// apply merges one valid record and reports whether it changed anything.
func (c *Catalog) apply(r *Record, now time.Time) bool {
	o := c.origins[r.Origin]
	if o == nil {
		o = &origin{name: r.Origin, bucket: bucketOf(r.Origin)}
		c.origins[r.Origin] = o
	}
	if o.gone != (Version{}) && !o.gone.Less(r.Version) {
		return false // the origin left or was reaped after this record was written
	}
	if r.Version.Gen < o.gen {
		return false
	}
	before := o.digestHash()
	if r.Version.Gen > o.gen {
		c.resetOrigin(o)
		o.gen = r.Version.Gen
	}
	old, had := o.records[r.Key]
	if had && !old.version.Less(r.Version) {
		return false // already have this version or a newer one
	}
	if !had && r.Deleted && r.Version.Counter <= o.gcFloor {
		// A late copy of a tombstone this replica already collected: the key is absent,
		// which is what the tombstone says. Storing it again would make replicas that
		// collect at slightly different times hand it back and forth forever.
		return false
	}
	if had {
		c.unindex(o, &old)
		o.hash ^= recordHash(r.Key, old.version)
		if old.deleted() {
			o.tombs--
		}
	}
	if o.records == nil {
		o.records = make(map[Key]stored)
	}
	s := stored{version: r.Version, node: r.Node, service: r.Service, check: r.Check, move: r.Move}
	if r.Deleted {
		s.deletedAt = now.UnixNano()
		o.tombs++
	}
	if s.service != nil {
		// Share one copy of the name among all instances of the service.
		if set := c.services[s.service.Name]; set != nil {
			s.service.Name = set.name
		}
	}
	o.records[r.Key] = s
	o.hash ^= recordHash(r.Key, r.Version)
	c.index1(o, &s)
	o.max = max(o.max, r.Version.Counter)
	c.buckets[o.bucket] ^= before ^ o.digestHash()
	return true
}

// resetOrigin drops all of o's records (a new generation replaces the whole set).
func (c *Catalog) resetOrigin(o *origin) {
	o.checks = nil // not one by one: unindex finds nothing to remove
	for _, s := range o.records {
		c.unindex(o, &s)
	}
	o.records, o.tombs, o.max, o.gen, o.hash, o.gcFloor = nil, 0, 0, 0, 0, 0
	c.touchNode(o)
	c.touchState(c.nodesWatch)
}

// index1 adds a stored record's value to the query indexes and marks affected topics.
func (c *Catalog) index1(o *origin, s *stored) {
	switch {
	case s.node != nil:
		o.node = s.node
		c.touchAllServicesOf(o)
		c.touchState(c.nodesWatch)
	case s.service != nil:
		set := c.services[s.service.Name]
		if set == nil {
			set = &serviceSet{name: s.service.Name, instances: make(map[*Service]*origin)}
			c.services[s.service.Name] = set
		}
		set.instances[s.service] = o
		c.touchService(s.service.Name, true)
	case s.check != nil:
		o.checks = append(o.checks, s.check)
		c.touchCheck(o, s.check)
	case s.move != nil:
		c.moveOrigins[o]++
		c.touchMove(s.move)
	}
	// Even a tombstone changes the node's record set, though no query by itself (its
	// live predecessor was unindexed already).
	c.touchNode(o)
}

// unindex removes a stored record's value from the query indexes and marks affected
// topics. It runs before the record leaves o.records.
func (c *Catalog) unindex(o *origin, s *stored) {
	switch {
	case s.node != nil:
		o.node = nil
		c.touchAllServicesOf(o)
		c.touchState(c.nodesWatch)
	case s.service != nil:
		c.touchService(s.service.Name, true)
		if set := c.services[s.service.Name]; set != nil {
			delete(set.instances, s.service)
			if len(set.instances) == 0 {
				delete(c.services, s.service.Name)
				c.orphans++
			}
		}
	case s.check != nil:
		o.dropCheck(s.check)
		c.touchCheck(o, s.check)
	case s.move != nil:
		if c.moveOrigins[o]--; c.moveOrigins[o] <= 0 {
			delete(c.moveOrigins, o)
		}
		c.touchMove(s.move)
	}
	c.touchNode(o)
}

// dropCheck removes ch from o.checks, if there.
func (o *origin) dropCheck(ch *Check) {
	if i := slices.Index(o.checks, ch); i >= 0 {
		last := len(o.checks) - 1
		o.checks[i] = o.checks[last]
		o.checks[last] = nil
		o.checks = o.checks[:last]
	}
}

// touchMove marks the topics a pointer's change can affect: the moves list and its
// service's, whose consumers (DNS, proxies, watches) show where instances went.
func (c *Catalog) touchMove(m *Move) {
	c.touchState(c.movesWatch)
	c.touchService(m.Service, false)
}

// touchCheck marks the topics a check's change can affect: its service's, or every
// service of the node for a node-level check.
func (c *Catalog) touchCheck(o *origin, ch *Check) {
	if ch.ServiceID == "" {
		c.touchAllServicesOf(o)
		return
	}
	if s := o.storedService(ch.ServiceID); s != nil {
		c.touchService(s.Name, false)
	}
}

func (c *Catalog) touchAllServicesOf(o *origin) {
	for _, s := range o.records {
		if s.service != nil {
			c.touchService(s.service.Name, false)
		}
	}
}

// SetLiveness records what failure detection says about node. Suspect and failed nodes
// keep their records (reported critical); a node that left has its records dropped at
// once, behind an origin tombstone; a node seen alive again lifts its origin tombstone
// so its records can flow back (a partition healed after the node was reaped).
func (c *Catalog) SetLiveness(node string, state Liveness) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock.Now()
	ls := c.liveness[node]
	cur := LivenessAlive
	if ls != nil {
		cur = ls.state
	}
	o := c.origins[node]
	if state == LivenessAlive && o != nil && o.gone != (Version{}) {
		o.gone, o.goneAt = Version{}, time.Time{}
	}
	if cur == state && ls != nil {
		return
	}
	if ls == nil {
		ls = &liveState{}
		c.liveness[node] = ls
	}
	ls.state, ls.since = state, now
	if state == LivenessLeft && o != nil {
		c.dropOrigin(o, now)
	}
	if o != nil {
		c.touchAllServicesOf(o)
		c.touchNode(o)
	}
	c.touchState(c.nodesWatch)
	c.commit()
}

// Liveness returns a node's liveness and when it last changed; a node failure detection
// never spoke of is alive since the zero time.
func (c *Catalog) Liveness(node string) (Liveness, time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.livenessLocked(node)
}

func (c *Catalog) livenessLocked(node string) (Liveness, time.Time) {
	if ls := c.liveness[node]; ls != nil {
		return ls.state, ls.since
	}
	return LivenessAlive, time.Time{}
}

// dropOrigin removes all of o's records behind an origin tombstone at its current version.
func (c *Catalog) dropOrigin(o *origin, now time.Time) {
	before := o.digestHash()
	if o.gen != 0 {
		o.gone = Version{Gen: o.gen, Counter: o.max}
		o.goneAt = now
	}
	c.resetOrigin(o)
	c.buckets[o.bucket] ^= before ^ o.digestHash()
}

// Expire performs the catalog's time-driven upkeep; the agent calls it periodically
// (every few seconds). It drops the records of nodes failed for at least ReapAfter,
// garbage-collects tombstones and origin tombstones older than TombstoneTTL, and
// forgets watch entries of vanished subjects once there are many of them. It returns
// the names of the nodes it reaped.
func (c *Catalog) Expire() (reaped []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock.Now()
	for name, ls := range c.liveness {
		if ls.state == LivenessFailed && now.Sub(ls.since) >= c.cfg.ReapAfter {
			if o := c.origins[name]; o != nil && o.gen != 0 {
				c.dropOrigin(o, now)
				reaped = append(reaped, name)
			}
		}
		// Forget the liveness of nodes long gone, so the map does not grow with every
		// node ever seen; a node that comes back is alive by default anyway.
		_, held := c.origins[name]
		switch {
		case ls.state == LivenessLeft && now.Sub(ls.since) >= c.cfg.TombstoneTTL,
			ls.state == LivenessFailed && !held && now.Sub(ls.since) >= c.cfg.ReapAfter+c.cfg.TombstoneTTL:
			delete(c.liveness, name)
		}
	}
	for name, o := range c.origins {
		if o.tombs > 0 {
			before := o.digestHash()
			for k, s := range o.records {
				if s.deleted() && now.UnixNano()-s.deletedAt >= int64(c.cfg.TombstoneTTL) {
					delete(o.records, k)
					o.tombs--
					o.hash ^= recordHash(k, s.version)
					o.gcFloor = max(o.gcFloor, s.version.Counter)
				}
			}
			c.buckets[o.bucket] ^= before ^ o.digestHash()
		}
		// An origin that left or was reaped is forgotten with its origin tombstone. One
		// whose records were all deleted keeps its (gen, max) so stale copies stay out.
		if o.gen == 0 && o.gone != (Version{}) && now.Sub(o.goneAt) >= c.cfg.TombstoneTTL {
			delete(c.origins, name)
		}
	}
	c.forgetOrphans()
	c.commit()
	return reaped
}

// Index returns the catalog's global index: it grows whenever any answer may have changed.
func (c *Catalog) Index() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.index
}

// Len returns the number of origins and of live records held.
func (c *Catalog) Len() (origins, records int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, o := range c.origins {
		if o.gen != 0 {
			origins++
		}
		records += len(o.records) - o.tombs
	}
	return origins, records
}

// Records returns a copy of every record of origin (live and tombstones), or nil.
func (c *Catalog) Records(origin string) []Record {
	c.mu.RLock()
	defer c.mu.RUnlock()
	o := c.origins[origin]
	if o == nil {
		return nil
	}
	out := make([]Record, 0, len(o.records))
	for k, s := range o.records {
		out = append(out, s.record(o.name, k))
	}
	sortRecords(out)
	return out
}

// OriginVersion returns the newest version held for origin; the zero Version if none.
// An agent uses it to notice an older incarnation of itself with a higher generation.
func (c *Catalog) OriginVersion(origin string) Version {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if o := c.origins[origin]; o != nil && o.gen != 0 {
		return Version{Gen: o.gen, Counter: o.max}
	}
	return Version{}
}
