// Package httpapi serves rumor's local HTTP API: the subset of Consul's HTTP API that
// service-discovery clients use (consul/api, Prometheus consul_sd_configs,
// consul-template, Traefik), with Consul's JSON shapes, headers and blocking queries.
//
// It only translates HTTP to calls on narrow interfaces it declares, [Catalog]
// (what every node registered, as the catalog merged it), [Agent] (this node: its
// identity, membership and locally registered services), [Checks] (this node's
// checks: /v1/agent/checks, TTL heartbeats, maintenance mode), [Keyring] (gossip
// key rotation across the pool, /v1/operator/keyring) and [Membership] (join, leave
// and force-leave; ?wan answers 501, there is no WAN pool). Registrations are decoded
// into the definition package's types and handed over as they are. Its only state is
// a cache of encoded answers (answercache.go), valid per catalog index; it starts no
// goroutines of its own and does not import the agent.
//
// Beyond Consul's API it serves GET /metrics (the agent's Prometheus registry, given
// as Config.Metrics; every request is timed by route pattern and status code) and
// GET /v1/rumor/watch, a server-sent-events stream of catalog changes
// (rumor_watch.go).
//
// # Layout
//
// routes.go is the one route table. Endpoints live in files named by their URL
// prefix: agent_*.go (/v1/agent/...), catalog_*.go, health_*.go, status.go,
// operator_keyring.go, rumor_*.go (/v1/rumor/...) and metrics.go; consul.go holds
// Consul's JSON shapes, query.go the read machinery (blocking, headers, encoding),
// and errors.go the one mapping from errors to HTTP statuses (statusOf).
//
// # Consul compatibility
//
// Reads answer 200 with X-Consul-Index (the catalog index of the topic the answer
// depends on; never 0), X-Consul-KnownLeader: true and X-Consul-LastContact: 0. The
// catalog, health, agent-services/checks and /v1/rumor/members reads accept
// ?index=N&wait=D and block until the topic's index passes N or the wait (default 5m,
// at most 10m, plus up to wait/16 of jitter) ends. ?stale, ?consistent and ?cached
// are accepted and ignored (every agent answers from its own full replica); ?dc must
// name this datacenter (another gets Consul's 500 "No path to datacenter"). ?filter
// is a go-bexpr expression evaluated on the answer's elements, with the JSON field
// names as selectors, where Consul has it; elsewhere it is a 400, never silently
// ignored. ?near=_agent or ?near=<node> orders catalog and health answers by the
// estimated round trip from that node ([Coordinates]). ?tag (repeatable),
// ?node-meta=k:v (repeatable), ?passing and ?pretty work as in Consul. Errors are
// plain text, as Consul's are; features rumor leaves out (KV, sessions, ACLs,
// Connect, prepared queries, transactions, snapshots) answer 501 saying so.
//
// JSON answers of 1 KiB or more are gzip-compressed for clients whose
// Accept-Encoding allows it, as Consul's server does (gzip.go); Go's http.Transport
// asks for it by default. Every JSON answer carries Vary: Accept-Encoding and a
// Content-Length. Errors and the /v1/rumor/watch stream are never compressed.
//
// /v1/status/leader and /v1/status/peers answer although rumor has no leader: the
// agent asked names itself, so "is there a leader?" readiness checks pass (see
// status.go).
//
// # Security
//
// With Config.Token set, every write needs the token (X-Consul-Token or
// Authorization: Bearer), and with Config.TokenReads every read too; others get
// 403. Bodies are capped at MaxBodyBytes (413). TLS is the server's business (the
// agent wraps its listener), so this package sees plain requests either way.
//
// # Concurrency
//
// A Handler is safe for concurrent use. Blocking queries wait on the catalog's
// level-triggered watches and end when the request's context does (client gone or
// server shutting down), answering with what they have.
//
// # Testing
//
// Table tests drive every endpoint and error through httptest against a real catalog
// and fake Agent and Checks.
package httpapi
