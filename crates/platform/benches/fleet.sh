#!/usr/bin/env bash
# The platform's connection-scale figure: one `bmslink platform` process on SQLite holding N
# data boxes (default 19,000, under the 20,000 open files a process may have here) that upload
# every second, for a steady window (default 600 s).
#
#   crates/platform/benches/fleet.sh [BOXES] [SECONDS] [flood|sim]
#
# The boxes are, with `flood` (default), the platform's `flood` example in data-box mode: one
# 16-cell upload per box per second from spread phases, little CPU, so the platform has the
# machine; with `sim`, two `bmslink sim --fleet` processes (full pack physics and BMS logic
# per box), which on this 2-core machine take more CPU than the platform and starve it.
# Reported: uploads the boxes sent and saw acknowledged, rows stored (SQLite, counted at the
# end), the platform's resident memory per connection and CPU share, and the listener's
# arrival -> stored latency quantiles (its log line).
set -euo pipefail
boxes=${1:-19000}
seconds=${2:-600}
generator=${3:-flood}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p bmslink --bin bmslink
cargo build --release -q -p bmslink-platform --example flood
bin=$PWD/target/release/bmslink
flood=$PWD/target/release/examples/flood
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

devices=19300 http=19301
cat >"$dir/platform.toml" <<TOML
data_dir = "$dir/data"
[devices]
listen = "127.0.0.1:$devices"
[http]
listen = "127.0.0.1:$http"
TOML
# The maintenance passes' durations (debug) go to the log too; it is kept in
# target/fleet-figures/platform.log.
BMSLINK_LOG=info,bmslink_platform::daemon=debug,bmslink_platform::store=debug \
  "$bin" platform --config "$dir/platform.toml" 2>"$dir/platform.log" &
platform=$!
pids+=($platform)
sleep 2

if [ "$generator" = flood ]; then
  (ulimit -n 20000; exec "$flood" 127.0.0.1:$devices "$boxes" 1 "$seconds" 100000 1000) \
    >"$dir/flood.out" 2>&1 &
  pids+=($!)
else
  half=$((boxes / 2))
  "$bin" sim --fleet "$half" --connect 127.0.0.1:$devices --interval 1s --terminal-base 100000 \
    --source-ips 127.0.0.1-127.0.0.2 >"$dir/sim1.log" 2>&1 &
  pids+=($!)
  "$bin" sim --fleet "$((boxes - half))" --connect 127.0.0.1:$devices --interval 1s \
    --terminal-base 200000 --source-ips 127.0.0.3-127.0.0.4 >"$dir/sim2.log" 2>&1 &
  pids+=($!)
fi

# Ramp-up: wait until every box is connected (the listener's open connections).
for _ in $(seq 1 120); do
  open=$(ls /proc/$platform/fd 2>/dev/null | wc -l)
  [ "$open" -ge "$boxes" ] && break
  sleep 1
done
echo "platform has $(ls /proc/$platform/fd | wc -l) open files"
sleep 5

ticks() { awk '{print $14 + $15}' "/proc/$platform/stat"; }
hz=$(getconf CLK_TCK)
start_ticks=$(ticks)
start_time=$(date +%s.%N)
sleep "$seconds"
end_ticks=$(ticks)
end_time=$(date +%s.%N)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$platform/status")

# Stop the boxes first (their summary lines), then the platform (it commits what it holds).
if [ "$generator" = flood ]; then
  sleep 15  # flood measures SECONDS after its own warm-up, then reports
  echo "--- boxes ---"
  cat "$dir/flood.out"
else
  for pid in "${pids[@]:1}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 3
  echo "--- boxes (last summary line of each fleet) ---"
  for log in "$dir/sim1.log" "$dir/sim2.log"; do tr '\r' '\n' <"$log" | grep -a "connected" | tail -1; done
fi
kill -TERM "$platform"
wait "$platform" || true
echo "--- platform (last listener line) ---"
grep -a "device listener:" "$dir/platform.log" | tail -1
mkdir -p target/fleet-figures
cp "$dir/platform.log" target/fleet-figures/platform.log
stored=$(python3 - "$dir/data/platform.sqlite" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from telemetry").fetchone()[0])
PY
)
awk -v t=$((end_ticks - start_ticks)) -v hz="$hz" -v s0="$start_time" -v s1="$end_time" \
    -v rss="$rss_kb" -v n="$boxes" -v stored="$stored" 'BEGIN {
  s = s1 - s0
  printf "%d boxes, window %.0f s: platform CPU %.1f %% of one core; RSS %.0f MB = %.1f KB per connection; %d rows stored in all\n",
    n, s, 100 * t / hz / s, rss / 1024, rss / n, stored
}'
