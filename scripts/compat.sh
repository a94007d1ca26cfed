#!/usr/bin/env bash
# Runs the compatibility tests: real `rumor agent` processes driven by real Consul
# clients (consul/api and its watch package, Prometheus consul_sd_configs,
# consul-template). Builds the client tools first if they are not cached yet
# (Prometheus takes minutes the first time; see scripts/compat-tools.sh).
# Extra arguments go to `go test`. With CI=true a missing tool fails the tests
# instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

./scripts/compat-tools.sh
cd compat
go test -race -count=1 -timeout 20m "$@" ./...
