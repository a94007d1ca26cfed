// Package testkit is the test support the packages of this module share: polling a
// condition with a deadline ([Eventually], [Poll]), starting something that has Start and
// Shutdown (an agent) for the length of a test ([Running]), a self-signed
// certificate for 127.0.0.1 ([SelfSigned]), a goroutine-leak check that allows
// memberlist's late probes their time ([NoLeaks]) and a buffer safe for concurrent
// log writes ([Buffer]).
//
// It imports nothing of this module, so any package's tests may use it, the agent's
// own included; the shipped binary never links it (layering_test.go checks).
//
// # Concurrency
//
// Helpers run on the test's goroutine; a Buffer is safe for concurrent use.
//
// # Testing
//
// The helpers are tested against themselves: a condition met late and one never met
// (on a fake testing.TB), a certificate a TLS client trusts, a leak caught.
package testkit
