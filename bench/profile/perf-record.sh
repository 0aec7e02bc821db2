#!/usr/bin/env bash
# Where one echo-server build spends its CPU under load: perf record (cpu-clock, no
# hardware counters needed) of the server on CPU 0 while this tree's `ringport bench`
# loads it from CPU 1 for 6 s (100 connections, 64 B, pipeline 1).
#
#   bench/profile/perf-record.sh BINARY OUT.data [PORT]
#   perf report -i OUT.data --no-children --sort symbol -n | grep '\[\.\]'   # user code
#
# Single runs are noisy (±10 % here): compare builds with bench/compare, use this to see
# where the difference is.
set -euo pipefail
BIN=$1; OUT=$2; PORT=${3:-39200}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/profile/lib.sh"
taskset -c 0 perf record -q -e cpu-clock -F 5000 -o "$OUT" -- \
    "$BIN" echo-server --listen "127.0.0.1:$PORT" --workers 1 --backend uring \
    > "$OUT.server.log" 2>&1 &
PERF=$!
wait_listening "$OUT.server.log"
taskset -c 1 "$ROOT/target/release/ringport" bench "127.0.0.1:$PORT" --connections 100 \
    --size 64 --pipeline 1 --duration 6 --workers 1 | grep 'msgs/s  '
pkill -INT -f "echo-server --listen 127.0.0.1:$PORT" || true
wait "$PERF" || true
