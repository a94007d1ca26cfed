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
// Every source of registrations (the HTTP API, config files, Docker) comes through
// the same methods, so the same [Limits] bound them all: services per node, checks
// per node and checks per service. A change past a limit is refused with a
// [*LimitError] (a 400 for the HTTP API, a file's error for config files); a state
// loaded past a limit stays as it is. Finding a check and the uniqueness rule use an
// index of check IDs, so a change costs the same at 10 services as at 10,000.
//
// Definitions come in as the definition package's types and are stored normalized:
// each entry holds the service record it publishes and its check definitions, with
// the checks' last reported statuses. Persistence sits behind [Store], whose Save is
// told which entries a change touched, so that the agent's store (an append-only log)
// writes only those: its cost per change does not grow with the number of services.
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
// another file), a saved state restored (and refused when it holds a check ID twice),
// and every limit reached through every method, config files naming the file.
package localstate
