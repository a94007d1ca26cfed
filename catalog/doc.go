// Package catalog is rumor's eventually consistent service catalog: it stores every
// origin's versioned records (nodes, services, checks, and the forward pointers of
// instances that moved: Move), merges them deterministically,
// answers queries over them and tells waiters when an answer may have changed.
//
// It is the one place that decides what is true. Adapters (gossip, mDNS, health, HTTP,
// DNS, Docker) only feed it records and liveness facts, or read from it. It performs no
// I/O, starts no goroutines and never reads the wall clock: time comes from the Clock in
// its Config.
//
// # Consistency model
//
// Every record has exactly one origin, the only writer of its records. An origin
// versions its records with (generation, counter); a record carries its version and
// either a value or a tombstone. Apply keeps the higher version per (origin, kind, id),
// and a record of a higher generation replaces the origin's whole set. Apply is
// therefore commutative, associative and idempotent: replicas that received the same
// records hold the same catalog, in any order and any number of times.
//
// Liveness is kept apart from content. SetLiveness records what failure detection
// said about a node; a suspect or failed node keeps its records, but queries report its
// instances with a critical node-level check ([SerfCheckID]); Expire removes the records
// of nodes failed for longer than Config.ReapAfter. A node that left has its records
// dropped at once.
//
// Anti-entropy works in three steps so that bandwidth does not grow with the catalog
// on every exchange: compare a [Summary] (bucketed hashes, a few KiB), exchange the
// [Digest] of the buckets that differ (origin → version and hash), then ship only the
// records the peer lacks ([Catalog.Missing]); an origin whose counters agree but whose
// hashes do not is repaired key by key ([Catalog.KeyVersions], [Catalog.MissingKeys]).
//
// # Concurrency
//
// A Catalog is safe for concurrent use. Queries take a read lock; Apply, SetLiveness
// and Expire take a write lock and never block on a waiter: watches are level-triggered
// (an index plus a channel closed on change), so a slow reader cannot stall a writer.
//
// # Testing
//
// Property tests (pgregory.net/rapid) check the merge laws, delivery-order independence
// and that the indexed queries agree with a brute-force model; the record decoder is
// fuzzed; benchmarks cover merge throughput, query latency, memory and reconciliation.
package catalog
