// Package dockertest supports the tests of the Docker watcher: a fake engine
// ([Engine], an HTTP server on a unix socket answering ping, list, inspect and
// events from scripted containers, whose streams can be cut and which can go down
// and come back), and helpers for the real engine: [RequireEngine] (skip on a
// developer machine without one, fail in CI), [BuildImage] (a FROM scratch image of
// the static test server in ./testserver, built inside the test, as there is no
// registry), [Run], [Network] and [Sweep]. Everything created on the real engine is
// named with [Prefix] and the PID, labelled [LabelTest], and removed when the test
// ends, failed or not; Sweep removes what crashed runs left. Ports are published on
// 127.0.0.1 only. It is test support: production code never imports it.
//
// # Concurrency
//
// An Engine is safe for concurrent use: the test scripts it while the watcher
// queries it. The real-engine helpers are called from the test's goroutine.
//
// # Testing
//
// The package is exercised by the docker and agent tests that use it.
package dockertest
