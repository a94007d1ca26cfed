package catalog

import (
	"slices"
	"strings"
)

// NumBuckets is how many buckets a Summary splits origins into. 256 keeps a summary at
// 2 KiB while a single differing origin among 10,000 costs a digest of about 40.
const NumBuckets = 256

// Summary is the first, tiny step of anti-entropy: one hash per bucket of origins.
// Two replicas holding the same records have equal summaries.
type Summary struct {
	Buckets [NumBuckets]uint64
}

// Hash folds the whole summary into one value, to compare before sending the buckets.
func (s *Summary) Hash() uint64 {
	var h uint64
	for i, b := range s.Buckets {
		h ^= mix(b + uint64(i))
	}
	return h
}

// Diff returns the buckets in which s and o differ, ascending.
func (s *Summary) Diff(o *Summary) []int {
	var out []int
	for i := range s.Buckets {
		if s.Buckets[i] != o.Buckets[i] {
			out = append(out, i)
		}
	}
	return out
}

// OriginDigest says how far a replica has an origin: its generation, the highest
// counter seen, and a hash of the (key, version) pairs of the records held.
type OriginDigest struct {
	Origin  string
	Version Version // Gen and highest Counter held
	Hash    uint64
}

// Digest is the second step of anti-entropy: the OriginDigests of some buckets.
type Digest struct {
	// Buckets lists the buckets this digest covers, ascending; nil means all. An origin
	// of a covered bucket that is missing from Origins is one the sender lacks.
	Buckets []int
	// Origins is sorted by origin name.
	Origins []OriginDigest
}

// covers reports whether bucket b is in the digest.
func (d *Digest) covers(b int) bool {
	if d.Buckets == nil {
		return true
	}
	_, ok := slices.BinarySearch(d.Buckets, b)
	return ok
}

// OriginKeys is the third step, for an origin whose digests agree on version but not
// on hash: every key the sender holds with its counter (tombstones included).
type OriginKeys struct {
	Origin string
	Gen    uint64
	Keys   []KeyVersion
}

// KeyVersion is one key and the counter of the version held.
type KeyVersion struct {
	Key     Key
	Counter uint64
}

// Summary returns the catalog's bucket hashes.
func (c *Catalog) Summary() Summary {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Summary{Buckets: c.buckets}
}

// Digest returns the digest of the given buckets (nil: all buckets).
func (c *Catalog) Digest(buckets []int) Digest {
	if buckets != nil {
		buckets = slices.Clone(buckets)
		slices.Sort(buckets)
		buckets = slices.Compact(buckets)
	}
	d := Digest{Buckets: buckets}
	c.mu.RLock()
	for _, o := range c.origins {
		if o.gen != 0 && d.covers(o.bucket) {
			d.Origins = append(d.Origins, OriginDigest{Origin: o.name, Version: Version{o.gen, o.max}, Hash: o.hash})
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(d.Origins, func(a, b OriginDigest) int { return strings.Compare(a.Origin, b.Origin) })
	return d
}

// Missing compares a peer's digest with this catalog and returns the records the peer
// lacks as far as the digest can tell: all records of origins the peer does not hold
// or holds at an older generation, and the records newer than the peer's highest
// counter otherwise. Origins where the digest cannot prove the peer will then hold
// everything — both at the same version but with different hashes, or the peer behind
// (it may also have missed records below its highest counter, which the fast path
// delivers out of order) — are returned in unsure; repair them with KeyVersions and
// MissingKeys.
func (c *Catalog) Missing(peer Digest) (recs []Record, unsure []string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, o := range c.origins {
		if o.gen == 0 || !peer.covers(o.bucket) {
			continue
		}
		i, found := slices.BinarySearchFunc(peer.Origins, o.name, func(d OriginDigest, name string) int {
			return strings.Compare(d.Origin, name)
		})
		var pv Version
		var ph uint64
		if found {
			pv, ph = peer.Origins[i].Version, peer.Origins[i].Hash
		}
		switch {
		case pv.Gen < o.gen:
			for k, s := range o.records {
				recs = append(recs, s.record(o.name, k))
			}
		case pv.Gen > o.gen:
			// The peer is ahead; it will send to us.
		case pv.Counter < o.max:
			for k, s := range o.records {
				if s.version.Counter > pv.Counter {
					recs = append(recs, s.record(o.name, k))
				}
			}
			// The peer may also lack records below its highest counter (the fast path
			// delivered a later record before earlier ones): only keys can tell.
			unsure = append(unsure, o.name)
		case pv.Counter == o.max && ph != o.hash:
			unsure = append(unsure, o.name)
		}
	}
	sortRecords(recs)
	slices.Sort(unsure)
	return recs, unsure
}

// KeyVersions returns every key held for the named origins, for the key-by-key repair
// of origins Missing reported as unsure. Unknown origins are left out.
func (c *Catalog) KeyVersions(origins []string) []OriginKeys {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []OriginKeys
	for _, name := range origins {
		o := c.origins[name]
		if o == nil || o.gen == 0 {
			continue
		}
		ok := OriginKeys{Origin: name, Gen: o.gen, Keys: make([]KeyVersion, 0, len(o.records))}
		for k, s := range o.records {
			ok.Keys = append(ok.Keys, KeyVersion{Key: k, Counter: s.version.Counter})
		}
		slices.SortFunc(ok.Keys, func(a, b KeyVersion) int { return compareKeys(a.Key, b.Key) })
		out = append(out, ok)
	}
	return out
}

// MissingKeys returns the records of the given origins that the peer, holding peer's
// keys, lacks or holds at an older version.
func (c *Catalog) MissingKeys(peer []OriginKeys) []Record {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var recs []Record
	for _, pk := range peer {
		o := c.origins[pk.Origin]
		if o == nil || o.gen == 0 || pk.Gen > o.gen {
			continue
		}
		have := make(map[Key]uint64, len(pk.Keys))
		if pk.Gen == o.gen {
			for _, kv := range pk.Keys {
				have[kv.Key] = kv.Counter
			}
		}
		for k, s := range o.records {
			if cnt, ok := have[k]; !ok || cnt < s.version.Counter {
				recs = append(recs, s.record(o.name, k))
			}
		}
	}
	sortRecords(recs)
	return recs
}

// digestHash is o's contribution to its bucket's hash; 0 for an origin with no records.
func (o *origin) digestHash() uint64 {
	if o.gen == 0 {
		return 0
	}
	return mix(stringHash(o.name) ^ mix(o.gen) ^ mix(o.max^0x9e3779b97f4a7c15) ^ o.hash)
}

// recordHash identifies a record's (key, version); XOR of these is an origin's hash.
func recordHash(k Key, v Version) uint64 {
	h := fnvAdd(fnvOffset, k.ID)
	h = mix(h ^ uint64(k.Kind))
	return mix(h ^ mix(v.Gen) ^ mix(v.Counter+1))
}

// FNV-1a, written out because hash/fnv allocates on this hot path (every Apply).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func stringHash(s string) uint64 { return fnvAdd(fnvOffset, s) }

// bucketOf places an origin in a bucket by a stable hash of its name, the same on
// every replica and across restarts.
func bucketOf(origin string) int { return int(mix(stringHash(origin)) % NumBuckets) }

// mix is splitmix64's finaliser: it spreads bits so XOR-folding hashes stays robust.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func compareKeys(a, b Key) int {
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	return strings.Compare(a.ID, b.ID)
}

// sortRecords orders records by origin, key and version, so outputs are deterministic.
func sortRecords(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int {
		if c := strings.Compare(a.Origin, b.Origin); c != 0 {
			return c
		}
		if c := compareKeys(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.Version.Less(b.Version):
			return -1
		case b.Version.Less(a.Version):
			return 1
		}
		return 0
	})
}
