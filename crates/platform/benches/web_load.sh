#!/usr/bin/env bash
# The web app's load figure: `bmslink platform` (release) on a SQLite database holding a
# month of a 1,000-terminal fleet, and headless Chromium loading the fleet page and a pack
# page (month range: hour roll-ups; day range: minute roll-ups) RUNS times each; prints
# p50/p95/max per page, and the same API reads timed without the browser (web_load.mjs says
# exactly what is measured).
#
#   crates/platform/benches/web_load.sh [DB] [RUNS]
#
# DB (default target/web-figures/platform.sqlite) is made by the seed_history example when it
# does not exist (1,000 terminals x 30 days: 43.2 M minute roll-ups, a few GiB, a few
# minutes); it is kept for the next run. The platform gets a fresh admin each run. Needs node,
# `npm ci` in crates/cli/tests/browser (playwright-core) and /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/../../.."
db=$(realpath -m "${1:-target/web-figures/platform.sqlite}")
runs=${2:-30}
terminals=1000
cargo build --release -q -p bmslink --bin bmslink
cargo build --release -q -p bmslink-platform --example seed_history
if [ ! -e "$db" ]; then
  mkdir -p "$(dirname "$db")"
  echo "seeding $db ($terminals terminals x 30 days)"
  target/release/examples/seed_history "$db" "$terminals" 30
fi
source crates/platform/benches/lib/platform.sh
ensure_playwright
terminals=$(sqlite3 "$db" 'SELECT count(*) FROM terminals' 2>/dev/null || echo "$terminals")
pack=$(printf '%06X' $((0x010000 + 7)))

admin="bench-$(date +%s)"
start_platform "$admin" "data_dir = \"$(dirname "$db")\"
[database]
path = \"$(basename "$db")\""
echo "platform on http://$http/ over $db ($(du -h "$db" | cut -f1)), $terminals terminals, pack $pack"

BMSLINK_URL="http://$http/" BMSLINK_USER="$admin" BMSLINK_PASSWORD="$password" \
  BMSLINK_PACK="$pack" BMSLINK_TERMINALS="$terminals" BMSLINK_RUNS="$runs" \
  node crates/platform/benches/web_load.mjs
echo "platform resident memory: $(awk '/^VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$platform/status")"
