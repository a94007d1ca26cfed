// Package proxy is rumor's local load-balancing TCP proxy (SmartStack's and
// kube-proxy's job): for each configured upstream it listens on a local address and
// forwards every connection to a healthy instance of a service, read from the local
// catalog, so applications need no discovery client and suffer no DNS caching.
//
// Each upstream keeps its instances in an atomically swapped set, rebuilt when the
// catalog says the service moved (catalog.ServiceTopic): nothing is reloaded, no
// connection is dropped by a change, and a connection never scans the catalog.
// Balancing is power-of-two-choices least-connections weighted by the instances'
// Weights, nearest first on ties (network coordinates, when the agent provides
// RTTs), with slow start for new instances. Passive outlier detection ejects an
// instance after consecutive connect failures for BaseEjection × times ejected,
// never more than half of an upstream's instances (the panic threshold). An instance
// that is no longer passing or warning, or gone, gets no new connections at once; its
// open connections finish or are closed after DrainTimeout. Half-closes are
// forwarded, and a reset as a reset.
//
// Two engines forward the bytes (Config.Engine). EngineEpoll, on Linux, runs event
// loops like HAProxy's: each an OS thread waiting in epoll_wait that accepts,
// connects without blocking and copies both ways itself, with no goroutine per
// connection. EngineGoroutines, anywhere, serves each connection on goroutines
// through the Go runtime's poller, and copies with io.Copy between *net.TCPConn
// (which splices on Linux) once a stream fills a buffer.
//
// It must not decide health for anyone: connect results are only local knowledge,
// handed to a Reporter (the agent's reachability tracker) if one is configured.
//
// # Concurrency
//
// A Proxy's methods are safe for concurrent use. Each upstream runs a catalog-watch
// goroutine. With EngineGoroutines, each upstream also runs an accept goroutine; the
// one that gets a connection starts the next one and serves the connection itself,
// and each connection runs two goroutines (one per direction). With EngineEpoll, the
// proxy runs Config.Loops event-loop goroutines, each locked to its thread, which
// own every connection they accept; other goroutines reach a loop only through its
// command queue (an instance's drain closing its connections, Set's listeners).
// Close stops them all and waits; the loops' threads end with them.
//
// # Testing
//
// Tests run the proxy on loopback against a real catalog and real TCP backends,
// each test once per engine.
package proxy
