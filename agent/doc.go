// Package agent wires one rumor node: its identity (node name, a persistent node ID
// and a generation that grows across restarts, in the data dir), its local state (the
// services and checks registered on this host, persisted atomically so a restart or a
// crash loses nothing), the catalog, gossip, the HTTP API, the health checks, and the
// lifecycle that starts and stops them in order. It holds no protocol logic: gossip,
// httpapi, health and the catalog do the work.
//
// # Local state
//
// The services, checks and maintenance modes of this node live in a
// localstate.Core, which decides what every change means and returns it (the records
// to publish, the checks to start and stop). The agent only carries that out: every
// change goes through Agent.change, which calls the core with the locks held, applies
// the records to the catalog and hands them to gossip, then starts and stops checks
// on the health manager. The core saves each change to the data dir's log
// (stateLog, services.log) before anything is published, and the change is
// acknowledged once the log is fsynced (see Data dir). The core also holds the
// node's limits (Config.Limits: services, checks, checks per service), so every
// source of registrations is bounded the same way.
//
// # Health checks
//
// A registration (a definition.Service, or a definition.Check on its own) is
// normalized and validated by the definition package (script checks only with
// Config.EnableScriptChecks and, through the API, Config.HTTPToken; from config files
// with Config.EnableLocalScriptChecks too); its checks are stored in the local state at their initial
// status, published, and added to a health.Manager. The local state is the Manager's
// Sink: a status change (or a rate-limited output change) updates the check in the
// local state, persists it and publishes the check record, so only changes are
// gossiped. A restart re-adds persisted checks at their persisted status. TTL
// heartbeats go to Manager.UpdateTTL. Maintenance mode (node or service) is not a
// Manager check but a persisted check record with status maintenance
// ("_node_maintenance", "_service_maintenance:<id>"), as in Consul.
//
// # Membership and lifecycle
//
// Leave says goodbye to the pool (peers mark the node left and drop its records at
// once) and then shuts down; Shutdown alone stops without a goodbye. Join and
// ForceLeave (PUT /v1/agent/join, /v1/agent/force-leave) act on gossip while the
// agent runs. PUT /v1/agent/leave calls RequestLeave, which leaves the pool but
// cannot stop the HTTP server serving that very request: it closes LeaveRequested,
// and the agent's owner (`rumor agent`) then calls Leave, which skips the goodbye
// already said, and exits.
//
// # Config files
//
// Every local service is tagged with its source: localstate.SourceAPI (registered over
// HTTP or the CLI) or SourceConfig (defined in a config file, which Config.ConfigServices
// reads; the config package parses the files). At Start the config services are
// applied over the persisted state; Reload (SIGHUP, PUT /v1/agent/reload) re-reads
// them and applies the diff: added, changed and removed services are published or
// deleted, unchanged ones produce no record at all (their versions do not move, so
// nothing is re-broadcast) and keep their checks' state. API services are never
// touched by a reload, and the API cannot overwrite a config service. An invalid
// configuration changes nothing and is reported with every problem.
//
// # Docker
//
// With Config.Docker.Enabled the agent runs a docker.Watcher (agent/docker.go), the
// registrator: its registrations are local services of source localstate.SourceDocker,
// changed in batches (Core.ApplyOwned, one save per batch), persisted and published
// like any other, and its checks are ttl checks it renews through the health
// manager. The agent registers the watcher's node check (_rumor_docker) at Start,
// starts the watcher last (its calls take the locks) and closes it first at
// Shutdown; with Docker off, Start drops what an earlier run's watcher registered.
//
// An Agent has no globals: many can run in one process (tests run three on
// loopback), with ports from the Config (0 for a free one), an injected logger and
// clock, and no os.Exit.
//
// # Data dir
//
//	node-id        the node's UUID, written once and reused forever
//	generation     the last generation used; each start takes max(last+1, Unix ms)
//	services.log   the local state: services with their source (api, config file
//	               or docker), check definitions, check statuses and maintenance reasons,
//	               as an append-only log of changes (statelog_format.go)
//	services.json.migrated
//	               services.json of a rumor before the log, kept once migrated
//	peers.json     gossip addresses of the other members, rejoined after a restart
//	lock           flock'ed while an agent uses the dir
//
// The local state's cost per change does not grow with the number of services: a
// change appends one line holding the entries it touched (a service with its checks,
// or the node's own checks), written with one write(2) under the agent's lock, so a
// kill -9 loses nothing written. A registration (or any change through the API or a
// reload) is acknowledged only once the log is fsynced, outside the locks, and the
// changes that come meanwhile share that fsync (group commit). A check's status,
// runtime state that the check re-establishes, is not waited for: it is fsynced by
// the next such fsync or by the maintenance loop within MaintenanceInterval (1s), so
// only a power failure can lose the last second of statuses, never a kill. Once the
// log holds twice as many superseded bytes as live ones, it is compacted in the
// background (a new log of the live entries, fsynced and renamed over the old one
// with what was appended meanwhile). At start a torn last line (a write a crash cut short) is cut
// off; anything else that does not read is refused with the file and byte offset. A
// services.json from before the log is migrated at the first start.
//
// The other files are replaced atomically (temp file, fsync, rename, fsync of the
// dir), so a kill -9 at any moment leaves the old or the new content; temp files a
// crash left (of these writes or of a compaction) are removed at start.
//
// # Concurrency
//
// An Agent is safe for concurrent use. Writes of this node's records (registration,
// deregistration, superseding an older incarnation) are serialised by one mutex that
// is never held while waiting on the network; it guards the local-state core. A
// second mutex serialises changes across the core and the health Manager; the Manager is never
// called with the first one held, because its Sink calls take it while holding a
// check's lock that Manager.Add and Remove wait for. Start runs one background
// goroutine for maintenance, one for retry-join while it is needed, the HTTP server's
// and the Manager's (one per check); Shutdown closes the Manager before gossip stops,
// so the last status changes still go out, and waits for them all.
//
// # Testing
//
// The local-state core has its own table tests (package localstate). Unit tests here
// replace gossip with a fake cluster (the cluster interface) and check
// persistence, identity, generations, supersede and that Shutdown leaves no
// goroutine behind; reload diffs (add, change, remove, unchanged records not
// republished, invalid config keeps the state); the local state's log (round trip,
// compaction with appends during it, group commit, torn tails, damage refused, a
// failed write repaired, the migration of a services.json written by the rumor
// before the log) and the limits over HTTP and in config files; kill -9 of a child
// process changing the local state at random moments (every acknowledged change
// survives, compactions included) and of one replacing a file atomically (old or new
// content, never a mix); BenchmarkLocalState and BenchmarkLocalStateCost measure
// changes at 10,000 services; check tests drive dev agents through
// their HTTP API on loopback (TTL heartbeats and expiry, an HTTP check against an
// httptest server, script checks, maintenance, bad input, restart); a cluster test
// runs three real agents on loopback; a goroutine-leak test (goleak) stops two real
// agents with gossip, HTTP and checks running.
package agent
