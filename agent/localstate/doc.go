// Package localstate is the agent's local state as a core: the services and checks
// registered on this node, maintenance mode, their persistence, and the rules that
// govern them (one each for check-ID uniqueness, takenBy, and for what a new
// definition keeps of the old, carryOver).
//
// In the manner of etcd raft's RawNode, a [Core] takes changes through synchronous
// methods (RegisterService, RegisterCheck, SetMaintenance, SetCheckStatus,
// ApplyConfig, …) and returns a [Ready]: the records this node must apply to its
// catalog and broadcast, and the checks the health manager must start and stop. It
// starts no goroutines, does no I/O but through its [Store], and reads no clock; the
// agent wires it to the catalog, gossip, the health manager and the HTTP API, and
// serialises calls. A change touches the entries it replaces, is saved before
// anything is published (and undone if saving fails), and publishes only what
// differs, so an unchanged definition re-read from a config file costs nothing on
// the wire.
//
// Each service remembers its source: the API, a config file (ApplyConfig owns
// those), or the Docker watcher (SourceDocker: Owned lists them, ApplyOwned adds,
// replaces and removes them in one change). A registration never replaces a
// service of another source.
//
// Definitions come in as the definition package's types and are stored normalized:
// each entry holds the service record it publishes and its check definitions, with
// the checks' last reported statuses. Persistence sits behind [Store], whose Save is
// told which entries a change touched, so a store whose cost per change does not
// grow with the number of services (an append-only log) can replace the agent's
// whole-file one without touching the core.
//
// # Concurrency
//
// A Core is not safe for concurrent use; the agent holds its mutex around every call.
//
// # Testing
//
// Table tests drive a Core with an in-memory Store and check the Ready of each
// change: records that differ and only those, checks started and stopped, status
// carried over, IDs refused when taken, a failed save undoing the change (but not a
// check's reported status), config diffs (added, changed, removed, unchanged, moved to
// another file) and a saved state restored.
package localstate
