// Package docker is rumor's built-in registrator: it watches a Docker (or podman)
// engine and registers the services of its containers in the agent's local state,
// as Registrator did for Consul, with health checks and nothing else to run.
//
// It alone imports the moby client. It reaches the agent through [Registry], the
// four methods it needs (list what it owns, register, deregister, set a check's
// status); it never imports another adapter, and it touches only the services it
// registered (source "docker" in the agent's state), never one from the API or a
// config file.
//
// # Following the engine
//
// A session pings the engine (negotiating the API version down to the engine's,
// 1.40 at least), subscribes to its container and network events (from the last
// event seen less [Config.Overlap], so nothing around a gap is missed), then lists
// every container, inspects the running ones and reconciles both ways with what the
// watcher owns: missing services are registered, changed ones replaced, and owned
// ones whose container is gone or stopped for good deregistered. Then it follows
// the events: each names a container to inspect again (a replayed or duplicate event
// costs an inspect and changes nothing), and the events queued meanwhile are handled
// together, up to 256, in one change of the agent's state. Every
// [Config.ReconcileInterval] a cheap reconcile lists the containers, inspects only
// those whose state or name changed, repairs drift, and renews the checks' TTLs; when
// nothing changed it writes nothing. When anything fails (the engine is unreachable,
// the stream ends, a call fails) the session ends and the watcher retries with
// exponential backoff and jitter, forever; the next session reconciles from scratch.
// The watcher's own check ([StatusCheckID], on the node) is critical with the reason
// while the engine is unreachable, and [Watcher.Stats] says so for metrics.
//
// # What is registered
//
// Each port of a running container becomes a [definition.Service] — the type the
// HTTP API and config files produce — built by a pure function of the inspected
// container, so an agent restart registers exactly what it had and publishes
// nothing new. Registrator's settings are read from labels and environment
// variables (the environment wins):
//
//	SERVICE_NAME            service name; default: the image's last path element without
//	                        tag ("registry:5000/team/api:1.2" → "api"), suffixed "-<port>"
//	                        when the container registers several ports
//	SERVICE_TAGS            comma-separated tags ("\," for a comma in a tag); UDP ports add "udp"
//	SERVICE_ID              service ID; default "<node>:<container name>:<port>[:udp]",
//	                        stable across container and agent restarts
//	SERVICE_IGNORE          skip the container (any value but "", 0, false, no)
//	SERVICE_META_<key>      service metadata <key> (lower case)
//	SERVICE_CHECK_HTTP      a path: an HTTP check of http://<address>:<port><path>
//	SERVICE_CHECK_HTTPS     the same over HTTPS (the certificate is not verified)
//	SERVICE_CHECK_TCP       any value: a TCP check of <address>:<port>
//	SERVICE_CHECK_TTL       a TTL check (heartbeats through the HTTP API)
//	SERVICE_CHECK_INTERVAL  interval of the check (default 10s), SERVICE_CHECK_TIMEOUT its timeout
//	SERVICE_CHECK_INITIAL_STATUS, SERVICE_CHECK_DEREGISTER_AFTER  as Consul's
//	SERVICE_<port>_<setting>  any of these for the container port <port> alone
//
// Every service also gets a container check ([ContainerCheckID]), a ttl check the
// watcher sets: passing while the container runs, warning while its Docker
// HEALTHCHECK is starting, critical when it is unhealthy or the container is paused
// (or exited but kept, below). [MetaContainer] in the service's metadata holds the
// container's short ID.
//
// Addresses: by default the ports a container publishes, at the binding's address
// (the node's address when bound to every address; IPv4 bindings before IPv6 ones);
// a container on the host's network registers its exposed ports. With
// [Config.Internal], every exposed port at the container's own address on its
// network — the one the [LabelNetwork] label names when it has several — with
// tagged addresses lan_ipv4 and lan_ipv6 when it has both. The label
// [LabelDeregister] (never, on-success, always) says what becomes of a container's
// services when it exits; a removed container's services always go.
//
// # Concurrency
//
// A Watcher runs one goroutine from Start to Close, plus, during a session, one
// that moves the engine's events into an unbounded queue (Docker drops events for
// a subscriber that falls behind) and up to 8 inspecting at once. Registry calls
// come from the first only, one at a time. Close cancels everything and waits for
// it; Stats and Host are safe to call at any time.
//
// # Testing
//
// The services a container gives are table-tested from inspect results (names,
// IDs, ports, addresses, IPv6, networks, checks, every setting and error).
// The watcher is tested against a fake engine (package dockertest: an HTTP server on
// a unix socket speaking the engine's API, with scripted gaps) and a fake Registry:
// reconcile both ways without touching what it does not own, the event stream ending
// mid-run, a die during a reconnect, 1,000 starts in a burst, backoff against a dead
// socket, a periodic reconcile that writes nothing. The agent's tests run it against
// the real Docker engine with images built in the test.
package docker
