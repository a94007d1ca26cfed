#!/usr/bin/env bash
# Prints how much the web UI (package ui, with its templates and assets) adds to the
# rumor binary: ./cmd/rumor built as shipped, and built with agent/testdata/noui/ui.go
# in place of agent/ui.go (go build -overlay; the agent's only reference to package
# ui), both with -trimpath, plain and stripped (-ldflags '-s -w').
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{"Replace": {"%s": "%s"}}\n' "$PWD/agent/ui.go" "$PWD/agent/testdata/noui/ui.go" >"$tmp/overlay.json"
size() { stat -c %s "$1"; }
if go list -overlay "$tmp/overlay.json" -deps ./cmd/rumor | grep -qx github.com/rumor-sd/rumor/ui; then
	echo "ui-size: the build without the UI still imports package ui" >&2
	exit 1
fi
printf '%-26s %12s %12s %10s\n' build "with UI" "without UI" growth
for flags in "" "-s -w"; do
	go build -trimpath -ldflags "$flags" -o "$tmp/with" ./cmd/rumor
	go build -trimpath -ldflags "$flags" -overlay "$tmp/overlay.json" -o "$tmp/without" ./cmd/rumor
	w=$(size "$tmp/with") wo=$(size "$tmp/without")
	printf '%-26s %12d %12d %7d KB\n' "-ldflags '${flags}'" "$w" "$wo" $(((w - wo) / 1024))
done
