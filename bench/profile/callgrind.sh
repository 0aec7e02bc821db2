#!/usr/bin/env bash
# Instructions per echoed message of one echo-server build, under callgrind.
#
#   bench/profile/callgrind.sh BINARY OUT [PORT]
#
# Starts BINARY's echo-server (one worker, io_uring) under callgrind on CPU 0, loads it
# for 4 s from CPU 1 with this tree's `ringport bench` (CONNS=20 connections of SIZE=64 B,
# pipeline 1; set CONNS and SIZE to change them),
# dumps the profile (callgrind_control -d; the server is then killed: it does not exit
# on SIGINT under valgrind), and prints instructions per message. Compare two builds
# with the same command; read OUT.1 with callgrind_annotate (--inclusive=yes for paths).
set -euo pipefail
BIN=$1; OUT=$2; PORT=${3:-39100}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/profile/lib.sh"
LOAD="$ROOT/target/release/ringport"
rm -f "$OUT" "$OUT".*
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "$BIN" echo-server --listen "127.0.0.1:$PORT" --workers 1 --backend uring \
    > "$OUT.server.log" 2>&1 &
VALGRIND=$!
wait_listening "$OUT.server.log"
PID=$(pgrep -f "callgrind-out-file=$OUT" | head -1)
taskset -c 1 "$LOAD" bench "127.0.0.1:$PORT" --connections "${CONNS:-20}" --size "${SIZE:-64}" --pipeline 1 \
    --duration 4 --workers 1 > "$OUT.client.log" 2>&1
callgrind_control -d "$PID" > /dev/null
sleep 2
kill -9 "$PID" 2>/dev/null || true
wait "$VALGRIND" 2>/dev/null || true
MSGS=$(grep '^\[  4.0s\]' "$OUT.client.log" | awk '{print $3}')
IR=$(callgrind_annotate "$OUT.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$BIN: $MSGS messages, $IR instructions, $((IR / MSGS)) per message"
