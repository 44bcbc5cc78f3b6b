# Shared by the web figures (web_load.sh, alarm_latency.sh): start a release `bmslink
# platform` with a fresh admin in a temporary directory, and make sure the browser scenarios'
# playwright-core is installed. Source it from the repository root after building
# target/release/bmslink.
#
#   start_platform ADMIN [EXTRA_TOML]
#
# sets: $dir (temporary, removed at exit), $platform (its pid, stopped at exit), $http and
# $devices (ip:port), $password (the admin's). EXTRA_TOML goes at the top of the
# configuration (e.g. data_dir and [database] for an existing database; the default keeps the
# data in $dir).

# Free loopback ports now (the platform's configuration takes no port 0).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ensure_playwright() {
  [ -d crates/cli/tests/browser/node_modules/playwright-core ] ||
    (cd crates/cli/tests/browser && npm ci --no-audit --no-fund)
}

dir=$(mktemp -d)
platform=
stop_platform() {
  [ -n "$platform" ] && kill "$platform" 2>/dev/null && wait "$platform" 2>/dev/null
  rm -rf "$dir"
}
trap stop_platform EXIT

start_platform() {
  local admin=$1 extra=${2:-"data_dir = \"$dir/data\""}
  local bin=$PWD/target/release/bmslink
  cat >"$dir/platform.toml" <<TOML
log_level = "warn"
$extra
[devices]
listen = "127.0.0.1:$(free_port)"
[http]
listen = "127.0.0.1:$(free_port)"
TOML
  password=$("$bin" platform --config "$dir/platform.toml" create-admin "$admin" | sed -n 's/.*keep it safe): //p')
  [ -n "$password" ] || { echo "could not create the admin $admin"; exit 1; }
  "$bin" platform --config "$dir/platform.toml" >"$dir/platform.out" 2>"$dir/platform.log" &
  platform=$!
  for _ in $(seq 1 100); do
    grep -q 'HTTP API on' "$dir/platform.out" && break
    sleep 0.1
  done
  http=$(sed -n 's|.*HTTP API on http://\([^/]*\)/api.*|\1|p' "$dir/platform.out")
  devices=$(sed -n 's|.*data boxes on \([^,]*\),.*|\1|p' "$dir/platform.out")
  [ -n "$http" ] && [ -n "$devices" ] || {
    cat "$dir/platform.out" "$dir/platform.log"
    echo "the platform did not start"
    exit 1
  }
}
