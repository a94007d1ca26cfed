#!/usr/bin/env bash
# Runs rumor's whole test suite with the race detector, after installing what the tests
# need on a fresh Debian machine: the network tools for the namespace testbed (iproute2,
# nftables, iputils-ping), a Docker engine (docker.io) for the Docker watcher's tests,
# Debian's chromium for the web UI's browser tests, and the pinned Go modules. Extra
# arguments go to `go test`.
# Integration tests that build namespaces need root; in CI (CI=true) they fail rather
# than skip when something is missing. Then the compatibility tests (scripts/compat.sh):
# real Consul clients (consul/api, Prometheus, consul-template) against real agents;
# the first run builds Prometheus and consul-template into ~/.cache/rumor-tools
# (minutes), later runs reuse them. RUMOR_SKIP_COMPAT=1 skips that part.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

missing=()
# chromium: the web UI's browser tests (ui/uitest).
for pair in ip:iproute2 nft:nftables ping:iputils-ping chromium:chromium; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# dig (dnsutils): the DNS interface's tests (dnsserver, agent); dnsperf: its benchmark.
for pair in dig:dnsutils dnsperf:dnsperf; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
	if [ "$(id -u)" -eq 0 ]; then
		echo "installing ${missing[*]}..." >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "warning: ${missing[*]} missing and not root: namespace tests will skip" >&2
	fi
fi

# The mDNS tests (internal/lantest) run Avahi inside test namespaces: avahi-daemon,
# avahi-utils (avahi-browse, avahi-publish) and dbus-daemon. They are installed with a
# policy-rc.d that refuses every service start, so no Avahi ever runs in the root
# namespace (it would multicast on the machine's real interfaces).
mdns_missing=()
for pair in avahi-daemon:avahi-daemon avahi-browse:avahi-utils dbus-daemon:dbus-daemon; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || mdns_missing+=("${pair#*:}")
done
if ((${#mdns_missing[@]})) && [ "$(id -u)" -eq 0 ]; then
	echo "installing ${mdns_missing[*]} (no service started)..." >&2
	had_policy=0
	[ -e /usr/sbin/policy-rc.d ] && had_policy=1 && cp /usr/sbin/policy-rc.d /tmp/rumor-policy-rc.d.bak
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${mdns_missing[@]}" >/dev/null
	if [ "$had_policy" = 1 ]; then mv /tmp/rumor-policy-rc.d.bak /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
fi

# The Docker watcher's tests (agent's TestDockerEngine) need a Docker engine: install
# and start one when there is none (in CI they fail rather than skip without it).
if [ -z "${DOCKER_HOST:-}" ] && ! [ -S /var/run/docker.sock ] && [ "$(id -u)" -eq 0 ]; then
	if ! command -v dockerd >/dev/null 2>&1; then
		echo "installing docker.io..." >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
	fi
	if ! [ -S /var/run/docker.sock ]; then
		echo "starting dockerd (log: /var/log/rumor-dockerd.log)..." >&2
		(dockerd >/var/log/rumor-dockerd.log 2>&1 &)
		for _ in $(seq 1 60); do [ -S /var/run/docker.sock ] && break; sleep 1; done
	fi
fi

echo "downloading Go modules..." >&2
go mod download
# The packages whose tests run real agents in namespaces and time what they do (a heal
# within 5 s, no false failure under loss) go last, one package at a time: on a 2-core
# machine, race-instrumented unit tests running beside them would slow the agents they
# measure. Everything else runs first, in parallel.
module=$(go list -m)
timed=("$module/internal/clustertest" "$module/sim/netbench")
timed+=("$module/internal/lantest") # mDNS agents and Avahi in namespaces
mapfile -t rest < <(go list ./... | grep -v -x -F "${timed[@]/#/-e}")
go test -race -count=1 -timeout 45m "$@" "${rest[@]}"
go test -race -count=1 -timeout 45m -p 1 "$@" "${timed[@]}"
# The simulator's model checked against tier 1 (real gossip in virtual time) at 100
# nodes: without -race, under which it would take many minutes (it skips there).
go test -count=1 -timeout 10m -run '^TestModelValidation$' "$@" ./sim
if [ "${RUMOR_SKIP_COMPAT:-}" != 1 ]; then
	./scripts/compat.sh
fi
