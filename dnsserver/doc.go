// Package dnsserver is rumor's DNS interface: it answers Consul's DNS names
// (web.service.consul, _web._tcp.service.consul, node1.node.consul, <hex>.addr.consul),
// DNS-SD browsing over unicast DNS (_services._dns-sd._udp.consul) and reverse (PTR)
// lookups from the local catalog, over UDP and TCP, with github.com/miekg/dns.
// It never writes to the catalog and talks to no other rumor node: every answer comes
// from this agent's memory. Names outside its domains are refused, or forwarded to the
// configured recursors.
//
// Answers come from per-name snapshots (entries) built from the catalog on first use
// and dropped when the catalog topic they were built from moves, so the hot path takes
// no catalog lock: it reads a copy-on-write map and picks instances at random (or by
// weight) from a precomputed slice of records.
//
// Reachability from this host (Config.Reachability) moves without the catalog, so it
// is not part of the cached entries: each answer asks it about the instances it
// looks at (only while it is Active), puts those this host cannot reach after the
// others, or leaves them out with Config.OnlyReachable. A reachability change shows
// in the next answer.
//
// UDP is served by its own loop rather than miekg/dns's Server, which starts one
// goroutine per packet with no bound. On Linux (unless Config.NetpollUDP) its sockets
// are blocking SO_REUSEPORT sockets that Go's netpoller never sees, each read by
// Config.Workers threads of their own (runtime.LockOSThread) blocked in recvmmsg(2):
// a datagram wakes a thread directly, instead of waiting for the runtime to poll
// epoll and schedule a parked reader. The thread answers what it read inline and
// writes the answers with one sendmmsg(2). A full batch means a backlog waits in the
// socket: the thread then drains the socket into a bounded queue of its own (no
// lock: only it touches it), answers first in, first out while it is short and
// newest first beyond Config.LIFOAbove, drops the oldest when it is full, and sheds
// a query older than Config.MaxQueueDelay (the kernel's receive timestamp,
// SO_TIMESTAMPNS) behind the backlog, or older than Config.OverloadQueueDelay once
// the queue was taken newest first (until it empties), before answering it or, if it aged while its batch was
// answered, before writing it. Close sets a flag and wakes the threads with
// shutdown(2); each returns, and its thread exits with it.
//
// Off Linux, and with Config.NetpollUDP, one reader goroutine per socket answers a
// fresh datagram itself while the workers' queue is empty, and otherwise pushes it
// onto a bounded queue that a fixed set of workers serve with the same policy; while
// a backlog waits and no reader has read for a millisecond (every P busy answering,
// the readers parked in the netpoller), workers read the sockets themselves without
// waiting, so queries do not age in the socket unseen.
//
// Under overload the queries that are answered stay fast and the rest are shed (and
// counted in rumor_dns_shed_total) instead of every query getting slow. The common
// UDP query (one lower-case question of a cached name, at most a bare OPT record) is
// answered by copying bytes (fastpath.go): each unit's records are packed once when
// its entry is built, an answer is the query's header and question followed by the
// picked units' records with ID, flags, counts and compression pointers patched in,
// and each thread, reader and worker keeps its own map from names to entries
// (cleared when Server.gen moves): no dns.Msg, no allocation. Everything else is
// answered the general way, handle and pack, with a reused answer buffer and
// compression table (packMsg): 9 allocations. TCP is served by miekg/dns's Server,
// one goroutine per connection, bounded by Config.MaxTCPConns.
//
// # Concurrency
//
// A Server is safe for concurrent use. Start starts its goroutines; Close stops them
// and waits for them. The Catalog it is given must be safe for concurrent use; its
// methods are called from the UDP threads or workers and the TCP connections'
// goroutines (on a cache miss) and from one watcher goroutine.
//
// # Testing
//
// Tests run a Server on 127.0.0.1:0 against a real catalog and query it with
// miekg/dns's client and with dig (dig_test.go); FuzzHandle feeds the query handler
// arbitrary packets.
package dnsserver
