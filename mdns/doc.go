// Package mdns is rumor's multicast DNS / DNS-SD adapter (RFC 6762, RFC 6763): it
// announces this node's services on the LAN, browses the LAN's services, imports the
// types it is told to into the catalog, and finds the gossip addresses of peer agents
// so that agents on one link form a pool with no seed address (zero-config join).
//
// Both sides are this package's own, on github.com/miekg/dns and golang.org/x/net.
// Publishing (responder.go, driven by announce.go): probing and conflict renaming,
// announcements merged into as few packets as fit, the cache-flush bit, a per-record
// rate limit of one multicast a second per interface, answers with known-answer and
// duplicate-answer suppression, one prompt goodbye packet. Querying (querier.go,
// cache.go): continuous queries with backoff, known-answer suppression, cache refresh
// at 80–95 % of a record's TTL and timer-driven expiry. Both use one pair of sockets
// (IPv4, IPv6) on UDP 5353, shared with other responders on the host (Avahi). It reaches the rest of rumor only
// through the small interfaces it declares (Sink, Joiner): it never imports another
// adapter, and it never writes to the catalog itself.
//
// What it must not do: multicast anywhere but the interfaces Select picks (never
// loopback, point-to-point, container or overlay interfaces), re-announce what it
// imported (instances carrying the rumor TXT marker are never imported), or try to
// join an agent whose cluster fingerprint differs.
//
// # Concurrency
//
// An MDNS is safe for concurrent use. Start starts its goroutines (the querier's
// reader and timer loop, the announcer, the interface watcher); Close stops them and
// waits, and is idempotent. Sink and Joiner calls come from the querier's loop, one at
// a time, and must not block for long.
//
// # Testing
//
// The pure parts (interface selection, TXT encoding, the cache, the packet parser,
// instance assembly) have unit tests and a fuzz test that need no network. Anything
// that opens an mDNS socket runs only inside network namespaces (internal/lantest):
// GuardRootNamespace makes a test binary refuse to run an mDNS agent anywhere else.
package mdns
