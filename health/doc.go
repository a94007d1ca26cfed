// Package health runs rumor's health checks (http, tcp, grpc, script and ttl) on the
// local node and reports their status changes to a [Sink], the agent's local state.
//
// It knows nothing of gossip, the catalog's records or the HTTP API: it never writes
// a record, never talks to another node and never decides anything about services
// other than by calling [Config.OnDeregister]. It runs a definition.Check as it is:
// decoding, defaults and validation are the definition package's. The agent wires it:
// it records each check's initial record in its local state, calls [Manager.Add] (and
// [Manager.Remove] when a check goes), and forwards heartbeats to [Manager.UpdateTTL].
//
// # Reporting
//
// A probe's raw result goes through Consul's anti-flapping rules (see
// definition.Check.SuccessBeforePassing): a passing or warning result is reported once
// SuccessBeforePassing of them are consecutive; a critical one turns the check
// warning after FailuresBeforeWarning and critical after FailuresBeforeCritical
// consecutive failures. As in Consul, the counts start at their thresholds, so the
// first result after Add is reported at once. Only a change of the reported status
// reaches the Sink at once; an output change alone reaches it at most once per
// [Config.OutputInterval], the newest output winning, because every Sink call becomes
// a gossiped record and a check printing a timestamp must not flood the cluster. ttl
// checks skip anti-flapping: a heartbeat's status is reported as is, and no
// heartbeat within the TTL reports critical.
//
// # Concurrency
//
// A Manager is safe for concurrent use. Each check has one goroutine that sleeps
// until its next event (a probe, a TTL expiry, a deferred output, a deregistration);
// the first probe comes at a random point of the interval so that checks added
// together do not probe together. At most [Config.MaxConcurrent] probes run at once.
// Every probe runs under a context with the check's timeout, cancelled when the check
// is removed or the Manager closed; a script's whole process group is killed then.
// The Sink is called with the check's lock held, so calls for one check are ordered;
// it must not call back into the Manager. [Manager.Close] waits for every goroutine.
//
// # Testing
//
// The anti-flapping, output rate limiting and deregistration logic are pure state
// machines (state.go), table-tested without a clock. The Manager's timing (spread,
// TTL expiry, deregistration, output rate limiting, cancellation) is tested inside
// testing/synctest bubbles with a scripted prober. Each probe type is tested against
// real servers on 127.0.0.1 (httptest, a TCP listener, grpc's health server, scripts
// in a temporary directory) on real time, including black-holed addresses that must
// time out within the check's timeout. BenchmarkManager1000TCP measures the CPU that
// 1,000 tcp checks cost.
package health
