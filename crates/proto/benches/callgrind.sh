#!/usr/bin/env bash
# Instructions per frame of each `decode` benchmark, counted by valgrind's callgrind.
#
# Runs the bench binary in criterion's --profile-time mode under callgrind, then divides the
# inclusive instruction count of each never-inlined `run_*` function by its number of calls
# and by the frames per call (FRAMES in decode.rs). Deterministic, unlike wall time.
#
# Usage: crates/proto/benches/callgrind.sh [FILTER]   (from anywhere in the workspace)
set -euo pipefail

cd "$(dirname "$0")/../../.."
filter="${1:-}"
frames=4096
out="${TMPDIR:-/tmp}/bmslink-decode.callgrind"

bin=$(cargo bench -p bmslink-proto --bench decode --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "decode" and m.get("executable"):
        print(m["executable"])')

valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --bench --profile-time 1 $filter \
    >/dev/null 2>"$out.log"

callgrind_annotate --inclusive=yes --threshold=100 "$out" >"$out.inclusive" 2>/dev/null
callgrind_annotate --tree=caller --threshold=100 "$out" >"$out.tree" 2>/dev/null

python3 - "$out.inclusive" "$out.tree" "$frames" <<'EOF'
import re, sys
inclusive_file, tree_file, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
cost = {}
for line in open(inclusive_file):
    # The function's own entry carries its object file in brackets; the others are inlined lines.
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*:decode::(run_\w+) \[", line)
    if m:
        cost[m.group(2)] = int(m.group(1).replace(",", ""))
calls = {}
for block in open(tree_file).read().split("\n\n"):
    lines = block.strip("\n").split("\n")
    entry = [l for l in lines if re.match(r"\s*[\d,]+ \([^)]*\)\s+\*\s+\S*:decode::run_\w+ \[", l)]
    if entry:
        name = re.search(r"decode::(run_\w+)", entry[0]).group(1)
        calls[name] = sum(int(n) for n in re.findall(r"^\s*[\d,]+ \([^)]*\)\s+<.*\((\d+)x\)", block, re.M))
print(f"{'benchmark function':32} {'calls':>6} {'Ir/frame':>10}")
for name in sorted(cost):
    n = calls.get(name, 0)
    if n:
        print(f"{name:32} {n:>6} {cost[name] / n / frames:>10.0f}")
EOF
