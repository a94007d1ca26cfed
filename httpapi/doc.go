// Package httpapi serves rumor's local HTTP API: the subset of Consul's HTTP API that
// service-discovery clients use (consul/api, Prometheus consul_sd_configs,
// consul-template, Traefik), with Consul's JSON shapes, headers and blocking queries.
//
// It only translates HTTP to calls on narrow interfaces it declares, [Catalog]
// (what every node registered, as the catalog merged it), [Agent] (this node: its
// identity, membership and locally registered services), [Checks] (this node's
// checks: /v1/agent/checks, TTL heartbeats, maintenance mode) and [Membership]
// (join, leave and force-leave; ?wan answers 501, there is no WAN pool). It holds no state of its own,
// starts no goroutines, and does not import the agent.
//
// # Consul compatibility
//
// Reads answer 200 with X-Consul-Index (the catalog index of the topic the answer
// depends on; never 0), X-Consul-KnownLeader: true and X-Consul-LastContact: 0. The
// catalog, health and agent-services reads accept ?index=N&wait=D and block until the
// topic's index passes N or the wait (default 5m, at most 10m, plus up to wait/16 of
// jitter) ends. ?stale, ?consistent and ?cached are accepted and ignored (every agent
// answers from its own full replica); ?dc must name this datacenter; ?filter is
// answered with 400 until it is implemented, never silently ignored. Errors are plain
// text, as Consul's are.
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
