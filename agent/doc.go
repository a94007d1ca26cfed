// Package agent wires one rumor node: its identity (node name, a persistent node ID
// and a generation that grows across restarts, in the data dir), its local state (the
// services and checks registered on this host, persisted atomically so a restart or a
// crash loses nothing), the catalog, gossip, the HTTP API, and the lifecycle that
// starts and stops them in order. It holds no protocol logic: gossip, httpapi and the
// catalog do the work.
//
// An Agent has no globals: many can run in one process (tests run three on
// loopback), with ports from the Config (0 for a free one), an injected logger and
// clock, and no os.Exit.
//
// # Data dir
//
//	node-id        the node's UUID, written once and reused forever
//	generation     the last generation used; each start takes max(last+1, Unix ms)
//	services.json  local services with their check definitions
//	peers.json     gossip addresses of the other members, rejoined after a restart
//	lock           flock'ed while an agent uses the dir
//
// Every file is replaced atomically (temp file, fsync, rename, fsync of the dir), so a
// kill -9 at any moment leaves the old or the new content; temp files a crash left are
// removed at start.
//
// # Concurrency
//
// An Agent is safe for concurrent use. Writes of this node's records (registration,
// deregistration, superseding an older incarnation) are serialised by one mutex that
// is never held while waiting on the network. Start runs one background goroutine for
// maintenance, one for retry-join while it is needed, and the HTTP server's; Shutdown
// stops them all and waits.
//
// # Testing
//
// Unit tests replace gossip with a fake cluster (the cluster interface) and check
// persistence, identity, generations, crash-safety of the state file, supersede and
// that Shutdown leaves no goroutine behind; a cluster test runs three real agents on
// loopback.
package agent
