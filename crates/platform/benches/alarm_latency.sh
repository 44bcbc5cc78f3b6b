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
cargo build --release -q -p bmslink --bin bmslink
cargo build --release -q -p bmslink-platform --example fault_box
source crates/platform/benches/lib/platform.sh
ensure_playwright
start_platform bench
echo "platform: web app http://$http/, devices $devices; $events faults"
BMSLINK_URL="http://$http/" BMSLINK_USER=bench BMSLINK_PASSWORD="$password" \
  BMSLINK_DEVICES="$devices" BMSLINK_FAULT_BOX="$PWD/target/release/examples/fault_box" \
  BMSLINK_EVENTS="$events" BMSLINK_GAP_MS="$gap_ms" node crates/platform/benches/alarm_latency.mjs
