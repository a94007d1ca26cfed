// Package definition is Consul's service and check definitions as rumor takes them:
// the types ([Service], [Check]), their decoding from JSON in Consul's spellings
// ([DecodeService], [DecodeCheck]), Consul's defaults ([Service.Normalize]), durations
// ([ParseDuration]), validation ([Service.Validate], [Check.Validate]) and the records
// they publish ([Service.Record], [Check.Record]).
//
// Every source of registrations produces these types: the HTTP API (PUT
// /v1/agent/service/register and /v1/agent/check/register) and `rumor register -f`
// decode JSON here; config files, JSON or HCL, go through the config package's reader
// (which matches keys with [Field] and reads durations with [ParseDuration]) into the
// same types. The agent stores and persists them as they are, the health package runs
// a [Check] as it is, and the catalog receives [Service.Record] and [Check.Record]:
// between a registration and its gossip record there is one change of representation.
// Adding a field to Service or Check is a change here only: both decoders find it by
// reflection, and the agent's state file stores it.
//
// The package is a domain package like catalog: it depends on catalog alone, performs
// no I/O and starts no goroutines. It knows nothing of the node: uniqueness of IDs
// across a node's services and checks, reserved check IDs and where a registration
// comes from are the agent's rules.
//
// # Concurrency
//
// Functions and methods are safe to call concurrently on different values; a value is
// not safe to mutate while another goroutine reads it.
//
// # Testing
//
// Table tests decode every spelling Consul accepts and every error path, with the
// field each error names; validation is table-tested rule by rule; the JSON decoders
// have fuzz targets (`go test ./definition -fuzz FuzzDecodeService`) checking that
// they never panic and that what they accept encodes back to JSON they decode alike.
package definition
