#!/usr/bin/env bash
# Builds the real Consul clients that the compat tests drive (Prometheus with only its
# Consul service discovery, and consul-template) into a per-machine cache outside the
# repo, once: a tool whose binary is already there is not rebuilt. Prometheus takes
# minutes to build, which is why it is cached rather than rebuilt per test run.
#
# Cache: ${RUMOR_TOOLS:-$HOME/.cache/rumor-tools}/<tool>-<version>/<binary>. The compat
# tests look there (and at the same RUMOR_TOOLS variable).
set -euo pipefail
export GOTOOLCHAIN=local

tools_dir="${RUMOR_TOOLS:-$HOME/.cache/rumor-tools}"

prometheus_version=v0.316.0
consul_template_version=v0.41.1

# build <dir name> <binary> <go install args...> installs into the cache unless the
# binary is already there. It installs into a temporary directory first so an
# interrupted build never leaves a half-written binary that later runs would trust.
build() {
	local name=$1 binary=$2
	shift 2
	local dest="$tools_dir/$name"
	if [ -x "$dest/$binary" ]; then
		echo "have $dest/$binary" >&2
		return
	fi
	echo "building $name into $dest (this can take minutes)..." >&2
	mkdir -p "$tools_dir"
	tmp=$(mktemp -d "$tools_dir/.build-$name.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT # also when interrupted
	if ! GOBIN="$tmp" go install "$@"; then
		echo "error: building $name failed" >&2
		return 1
	fi
	mkdir -p "$dest"
	mv "$tmp/$binary" "$dest/$binary"
	rm -rf "$tmp"
	trap - EXIT
	echo "built $dest/$binary" >&2
}

# Only the Consul discoverer: remove_all_sd drops every other one, which also keeps the
# build (and its dependency download) far smaller.
build "prometheus-$prometheus_version" prometheus \
	-tags remove_all_sd,enable_consul_sd \
	"github.com/prometheus/prometheus/cmd/prometheus@$prometheus_version"
build "consul-template-$consul_template_version" consul-template \
	"github.com/hashicorp/consul-template@$consul_template_version"
