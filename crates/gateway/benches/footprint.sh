#!/usr/bin/env bash
# Footprint of `bmslink gateway` with 16 racks polled every 500 ms (the issue's figure):
# resident memory and CPU share of one core, measured from /proc over a steady window.
#
#   crates/gateway/benches/footprint.sh [SECONDS]      (default 60; needs socat)
#
# 16 simulated racks (`bmslink sim --packs 16`, a separate process, not counted), the gateway
# with the Pylontech profile on an SLCAN adapter at a TCP sink, the EMS server and /metrics on.
# After a 10 s warm-up the gateway's utime + stime and VmRSS are read at the start and the end
# of the window; the script checks through /metrics that all 16 racks are in the aggregate.
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/../../.."
cargo build --release -q -p bmslink
bin=target/release/bmslink
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

racks=19100 can=19190 ems=19191 metrics=19192
"$bin" sim --packs 16 --listen 127.0.0.1:$racks >"$dir/sim.log" 2>&1 &
pids+=($!)
socat TCP-LISTEN:$can,reuseaddr,fork SYSTEM:'cat >/dev/null' &
pids+=($!)
{
  echo 'poll_interval = "500ms"'
  for i in $(seq 0 15); do
    printf '[[racks]]\nname = "rack-%d"\nlink = { port = "tcp://127.0.0.1:%d" }\n' $((i + 1)) $((racks + i))
  done
  printf '[inverter.can]\nport = "tcp://127.0.0.1:%d"\n' $can
  printf '[ems]\nlisten = "127.0.0.1:%d"\n[metrics]\nlisten = "127.0.0.1:%d"\n' $ems $metrics
} >"$dir/site.toml"
sleep 1
"$bin" gateway --config "$dir/site.toml" 2>"$dir/gateway.log" &
gateway=$!
pids+=($gateway)
sleep 10

metrics_text() {
  exec 3<>/dev/tcp/127.0.0.1/$metrics
  printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
  cat <&3
  exec 3>&-
}
used=$(metrics_text | grep -c '^bmslink_gateway_rack_in_aggregate{.*} 1' || true)
echo "racks in the aggregate: $used of 16"

ticks() { awk '{print $14 + $15}' "/proc/$gateway/stat"; }
hz=$(getconf CLK_TCK)
start=$(ticks)
sleep "$seconds"
end=$(ticks)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$gateway/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$gateway/status")
polls=$(metrics_text | awk '/^bmslink_gateway_rack_polls_total\{.*result="Ok"\}/ {s += $2} END {print s}')
awk -v t=$((end - start)) -v hz="$hz" -v s="$seconds" -v rss="$rss_kb" -v hwm="$hwm_kb" -v polls="$polls" 'BEGIN {
  printf "gateway, 16 racks every 500 ms, over %d s: CPU %.2f %% of one core; RSS %.1f MB (peak %.1f MB); %d good polls in all\n",
    s, 100 * t / hz / s, rss / 1024, hwm / 1024, polls
}'
