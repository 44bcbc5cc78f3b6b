#!/usr/bin/env bash
# The platform's highest sustained ingest, end to end: `bmslink platform` (release) with its
# device listener, store writer and database, fed by the `flood` example (many data-box
# connections sending 16-cell uploads as fast as they are acknowledged; an acknowledgement
# is sent only after the commit, so acknowledged = stored).
#
#   crates/platform/benches/ingest.sh sqlite|postgres [CONNECTIONS] [WINDOW] [SECONDS] [PROCESSES]
#
# postgres starts a throw-away PostgreSQL 15 (as user nobody, fsync off: the platform's side
# is measured, not a disk) and can run PROCESSES platform processes on it, each fed by its
# own flood. Everything runs on this machine, so the load generator's CPU is not the
# platform's.
set -euo pipefail
backend=${1:?sqlite or postgres}
connections=${2:-1000}
window=${3:-8}
seconds=${4:-30}
processes=${5:-1}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p bmslink --bin bmslink
cargo build --release -q -p bmslink-platform --example flood
bin=$PWD/target/release/bmslink
flood=$PWD/target/release/examples/flood
dir=$(mktemp -d)
chmod 755 "$dir"
pids=()
pgbin=/usr/lib/postgresql/15/bin
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -d "$dir/pg" ] && runuser -u nobody -- "$pgbin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

database="[database]
backend = \"sqlite\""
if [ "$backend" = postgres ]; then
  mkdir -p "$dir/pg" && chown nobody "$dir/pg"
  runuser -u nobody -- "$pgbin/initdb" -D "$dir/pg" -A trust -U postgres >/dev/null
  runuser -u nobody -- "$pgbin/pg_ctl" -D "$dir/pg" -w -l "$dir/pg/log" \
    -o "-p 19450 -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  database="[database]
backend = \"postgres\"
url = \"postgres://postgres@127.0.0.1:19450/postgres\""
fi

per=$((connections / processes))
for p in $(seq 0 $((processes - 1))); do
  cat >"$dir/platform$p.toml" <<TOML
data_dir = "$dir/data$p"
$database
[devices]
listen = "127.0.0.1:$((19400 + 2 * p))"
[http]
listen = "127.0.0.1:$((19401 + 2 * p))"
TOML
  "$bin" platform --config "$dir/platform$p.toml" 2>"$dir/platform$p.log" &
  pids+=($!)
done
sleep 3
for p in $(seq 0 $((processes - 1))); do
  "$flood" "127.0.0.1:$((19400 + 2 * p))" "$per" "$window" "$seconds" $((300000 + p * 100000)) >"$dir/flood$p.out" 2>&1 &
  pids+=($!)
done
wait "${pids[@]:processes}" 2>/dev/null || true
total=0
for p in $(seq 0 $((processes - 1))); do
  cat "$dir/flood$p.out"
  rate=$(grep -o '[0-9]* per second' "$dir/flood$p.out" | awk '{print $1}')
  total=$((total + ${rate:-0}))
done
echo "$backend, $processes platform process(es), $connections connections x window $window: $total uploads stored per second in all"
grep -a "device listener:" "$dir/platform0.log" | tail -1
