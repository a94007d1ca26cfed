// Package compat proves that rumor's Consul-compatible HTTP API works with the clients
// people already run, unchanged: github.com/hashicorp/consul/api (and its watch
// package), a real Prometheus with consul_sd_configs, and consul-template. It holds
// only tests; they start real `rumor agent` processes on loopback (one agent, and three
// that gossip with each other) and drive them with those clients.
//
// It is a nested module so that consul/api and its dependencies stay out of rumor's
// own go.mod; a replace directive points it at the rumor checkout around it.
//
// # Testing
//
//	../scripts/compat.sh   # builds the client tools once per machine, then runs these tests
//
// TestMain builds the rumor binary from the enclosing checkout once. Prometheus and
// consul-template are built by ../scripts/compat-tools.sh into a per-machine cache,
// ${RUMOR_TOOLS:-$HOME/.cache/rumor-tools}; the tests that need them skip, saying
// why, when a binary is missing, except under CI=true, where they fail instead.
// Every wait has a deadline; waits poll or block on the clients' own blocking queries.
package compat
