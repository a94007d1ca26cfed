// Package testnet builds a throw-away multi-host network out of Linux network namespaces
// for integration tests and benchmarks, and injects faults into it.
//
// A Testbed is N hosts, each a network namespace with loopback up and one veth, eth0,
// holding an address from a private /24 (10.x.y.0/24 chosen per testbed). The other end
// of every veth sits on a Linux bridge that lives in a namespace of its own, never in the
// root namespace, so the host's firewall and Docker's FORWARD rules never see test
// traffic. The bridge does not snoop IGMP and every host routes 224.0.0.0/4 to eth0, so
// link-local multicast (mDNS) flows between hosts. Hosts have no default route: traffic
// to any address outside the testbed fails with ENETUNREACH instead of leaving it.
//
// Faults: Cut and Restore take a host off the bridge; CutPair, RestorePair, Split and
// Heal drop frames between chosen hosts with nftables rules in the bridge namespace;
// Loss drops a share of the IP packets a host receives, with an nftables rule inside it.
// Processes started with Host.Start belong to the testbed: they can be killed with
// SIGKILL and restarted with the same arguments, and their output is kept for failure
// logs. Host.Do runs a Go function with its calling thread switched into the host's
// namespace, so sockets it opens belong to that host.
//
// The only thing a testbed adds to the root namespace is its namespace names under
// /run/netns, all starting with a prefix and the PID of the process that owns them.
// Close removes them and kills every process in them; Sweep removes the ones a crashed
// run left behind, and New and Open call it before creating anything.
//
// It must not be imported by production code: it shells out to ip(8) and nft(8), needs
// root, and exists only to test rumor.
//
// # Concurrency
//
// All methods of Testbed, Host and Process are safe for concurrent use. Fault methods
// run ip or nft and return when the kernel has applied the change; they take a context
// that bounds the command. Close is idempotent, waits for the processes it kills and may
// be called concurrently with anything else: calls that start after it return ErrClosed.
//
// # Testing
//
// Call Require (New does it for you) at the top of a test: it skips the test with the
// precise reason when the machine cannot run a testbed (not root, ip or nft missing,
// namespaces refused), except when the environment variable CI is true, where the same
// reason fails the test, because CI installs everything and runs as root. The Debian
// packages needed are iproute2 and nftables (and iputils-ping for this package's own
// tests). The package's tests run as root in CI; a developer runs them with
// `sudo -E go test ./internal/testnet/`.
package testnet
