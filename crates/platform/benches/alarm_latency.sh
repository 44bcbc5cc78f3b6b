#!/usr/bin/env bash
# The alarm-to-browser latency figure: `bmslink platform` (release, SQLite in a temporary
# directory), an alarms page open in headless Chromium, and the fault_box example as a data
# box whose BMS raises its battery over-temperature warning EVENTS times (default 20).
# Printed: p50/p95/max of "fault upload handed to the box's socket -> alarm row in the page's
# DOM" (alarm_latency.mjs says exactly what is measured), and of the clear; each event comes
# GAP_MS (default 1500) after the page's previous change (the page refetches at most once a
# second).
#
#   crates/platform/benches/alarm_latency.sh [EVENTS] [GAP_MS]
#
# Needs node, `npm ci` in crates/cli/tests/browser (playwright-core) and /usr/bin/chromium.
set -euo pipefail
events=${1:-20}
gap_ms=${2:-1500}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p bmslink -p bmslink-platform --example fault_box
bin=$PWD/target/release/bmslink
[ -d crates/cli/tests/browser/node_modules/playwright-core ] ||
  (cd crates/cli/tests/browser && npm ci --no-audit --no-fund)
# Free loopback ports now (the platform's configuration takes no port 0).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
platform=
cleanup() {
  [ -n "$platform" ] && kill "$platform" 2>/dev/null && wait "$platform" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
cat >"$dir/platform.toml" <<TOML
log_level = "warn"
data_dir = "$dir/data"
[devices]
listen = "127.0.0.1:$(free_port)"
[http]
listen = "127.0.0.1:$(free_port)"
TOML
password=$("$bin" platform --config "$dir/platform.toml" create-admin bench | sed -n 's/.*keep it safe): //p')
"$bin" platform --config "$dir/platform.toml" >"$dir/platform.out" 2>"$dir/platform.log" &
platform=$!
for _ in $(seq 1 100); do
  grep -q 'HTTP API on' "$dir/platform.out" && break
  sleep 0.1
done
http=$(sed -n 's|.*HTTP API on http://\([^/]*\)/api.*|\1|p' "$dir/platform.out")
devices=$(sed -n 's|.*data boxes on \([^,]*\),.*|\1|p' "$dir/platform.out")
[ -n "$http" ] && [ -n "$devices" ] || { cat "$dir/platform.out" "$dir/platform.log"; exit 1; }
echo "platform: web app http://$http/, devices $devices; $events faults"
BMSLINK_URL="http://$http/" BMSLINK_USER=bench BMSLINK_PASSWORD="$password" \
  BMSLINK_DEVICES="$devices" BMSLINK_FAULT_BOX="$PWD/target/release/examples/fault_box" \
  BMSLINK_EVENTS="$events" BMSLINK_GAP_MS="$gap_ms" node crates/platform/benches/alarm_latency.mjs
