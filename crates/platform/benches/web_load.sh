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
cargo build --release -q -p bmslink -p bmslink-platform --example seed_history
bin=$PWD/target/release/bmslink
if [ ! -e "$db" ]; then
  mkdir -p "$(dirname "$db")"
  echo "seeding $db ($terminals terminals x 30 days)"
  target/release/examples/seed_history "$db" "$terminals" 30
fi
[ -d crates/cli/tests/browser/node_modules/playwright-core ] ||
  (cd crates/cli/tests/browser && npm ci --no-audit --no-fund)
terminals=$(sqlite3 "$db" 'SELECT count(*) FROM terminals' 2>/dev/null || echo "$terminals")
pack=$(printf '%06X' $((0x010000 + 7)))

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
data_dir = "$(dirname "$db")"
[database]
path = "$(basename "$db")"
[devices]
listen = "127.0.0.1:$(free_port)"
[http]
listen = "127.0.0.1:$(free_port)"
TOML
admin="bench-$(date +%s)"
password=$("$bin" platform --config "$dir/platform.toml" create-admin "$admin" | sed -n 's/.*keep it safe): //p')
[ -n "$password" ] || { echo "could not create an admin"; exit 1; }

"$bin" platform --config "$dir/platform.toml" >"$dir/platform.out" 2>"$dir/platform.log" &
platform=$!
for _ in $(seq 1 100); do
  grep -q 'HTTP API on' "$dir/platform.out" && break
  sleep 0.1
done
http=$(sed -n 's|.*HTTP API on http://\([^/]*\)/api.*|\1|p' "$dir/platform.out")
[ -n "$http" ] || { cat "$dir/platform.out" "$dir/platform.log"; echo "the platform did not start"; exit 1; }
echo "platform on http://$http/ over $db ($(du -h "$db" | cut -f1)), $terminals terminals, pack $pack"

BMSLINK_URL="http://$http/" BMSLINK_USER="$admin" BMSLINK_PASSWORD="$password" \
  BMSLINK_PACK="$pack" BMSLINK_TERMINALS="$terminals" BMSLINK_RUNS="$runs" \
  node crates/platform/benches/web_load.mjs
echo "platform resident memory: $(awk '/^VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$platform/status")"
