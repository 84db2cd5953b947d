#!/bin/sh
# Generates the test certificates (make-fixtures.sh in TLS_DIR) into a
# temporary directory, starts `openssl s_server` on 127.0.0.1 (a port the
# kernel picks), waits until it accepts, runs the isolation test binary
# against it and stops the server by its pid.
#
# Usage: run_isolation.sh OPENSSL TEST_BINARY TLS_DIR
#   TLS_DIR  tests/data/tls (holds make-fixtures.sh)
set -eu

openssl=$1
test_bin=$2
tls_dir=$3

log=$(mktemp)
data=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$log"
  rm -rf "$data"
}
trap cleanup EXIT INT TERM

sh "$tls_dir/make-fixtures.sh" "$data" "$openssl"

"$openssl" s_server -accept 127.0.0.1:0 -cert "$data/chain.pem" -key "$data/leaf.key" \
  -www -no_dhe </dev/null >"$log" 2>&1 &
server_pid=$!

# Wait (bounded) for "ACCEPT 127.0.0.1:PORT", polling with a growing interval.
port=""
delay=0.01
tries=0
while [ -z "$port" ]; do
  port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log" | head -n 1)
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run_isolation.sh: openssl s_server exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  tries=$((tries + 1))
  if [ "$tries" -gt 60 ]; then
    echo "run_isolation.sh: openssl s_server did not start listening" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep "$delay"
  case "$delay" in
    0.01) delay=0.05 ;;
    0.05) delay=0.2 ;;
  esac
done

"$test_bin" "$data" "https://127.0.0.1:$port/"
