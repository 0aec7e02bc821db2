#!/usr/bin/env bash
# Build jobs-bench, then for each setting and round run every server kind in turn
# (interleaved: round 1 of every server, then round 2, ...): the server pinned to one CPU,
# the client to the other, a warm-up, a measured window, the server stopped. Raw rows go
# to results.jsonl, the medians to RESULTS.md.
#
#   bench/jobs/run.sh                          # 3 rounds x 3 settings x 4 servers, ~4 min
#   ROUNDS=1 DURATION=2 bench/jobs/run.sh      # a quick look
#
# Settings (environment): ROUNDS (3), DURATION (4), WARMUP (1), JOBS (4: pool threads, both
# pools), WORKERS (1: I/O threads, both servers), INFLIGHT (32: per-connection cap, both),
# SERVER_CPU (0), LOAD_CPU (1), BACKEND (uring), SERVERS ("ringport tokio ringport-inline
# tokio-inline"), SETTINGS ("small:30:8:16 heavy:750:8:16 small-p1:30:8:1", each
# name:iters:conns:pipeline), OUT (bench/jobs/RESULTS.md), RAW (bench/jobs/results.jsonl).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
JOBS=${JOBS:-4}
WORKERS=${WORKERS:-1}
INFLIGHT=${INFLIGHT:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BACKEND=${BACKEND:-uring}
SERVERS=${SERVERS:-ringport tokio ringport-inline tokio-inline}
SETTINGS=${SETTINGS:-small:30:8:16 heavy:750:8:16 small-p1:30:8:1}
OUT=${OUT:-$here/RESULTS.md}
RAW=${RAW:-$here/results.jsonl}

invocation="$(for v in ROUNDS DURATION WARMUP JOBS WORKERS INFLIGHT SERVER_CPU LOAD_CPU BACKEND; do
    printf '%s=%s ' "$v" "${!v}"; done)SERVERS=\"$SERVERS\" SETTINGS=\"$SETTINGS\" bench/jobs/run.sh"

cargo build --release --manifest-path "$here/Cargo.toml"
bin=$here/target/release/jobs-bench

log=$(mktemp /tmp/jobs-bench.XXXXXX.log)
echo "server and client stderr: $log" >&2
: >"$RAW"

calib=""
for iters in $(for s in $SETTINGS; do echo "$s" | cut -d: -f2; done | sort -nu); do
    calib+="$(taskset -c "$LOAD_CPU" "$bin" calibrate --iters "$iters"); "
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for setting in $SETTINGS; do
    IFS=: read -r sname iters conns pipeline <<<"$setting"
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in $SERVERS; do
            args=(--iters "$iters" --workers "$WORKERS")
            case $server in
                ringport | ringport-inline) args+=(--backend "$BACKEND") ;;
            esac
            case $server in
                ringport | tokio) args+=(--jobs "$JOBS" --inflight "$INFLIGHT") ;;
            esac
            echo "$sname round $round: $server" >&2
            out=$(mktemp /tmp/jobs-bench-server.XXXXXX)
            taskset -c "$SERVER_CPU" "$bin" "serve-$server" "${args[@]}" >"$out" 2>>"$log" &
            pid=$!
            addr=""
            for _ in $(seq 100); do
                addr=$(sed -n 's/^listening on //p' "$out")
                [[ -n "$addr" ]] && break
                sleep 0.1
            done
            row=""
            if [[ -n "$addr" ]] && row=$(taskset -c "$LOAD_CPU" "$bin" load --addr "$addr" \
                --conns "$conns" --pipeline "$pipeline" --warmup "$WARMUP" --duration "$DURATION" \
                --iters "$iters" --server-pid "$pid" --server-cpu "$SERVER_CPU" --label "$server" 2>>"$log"); then
                echo "$row" | sed "s/^{/{\"setting\":\"$sname\",\"round\":$round,/" >>"$RAW"
            else
                echo "   FAILED (see $log)" >&2
                printf '{"setting":"%s","round":%d,"server":"%s","failed":true}\n' "$sname" "$round" "$server" >>"$RAW"
            fi
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            rm -f "$out"
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

export RAW OUT invocation started load_start load_end SERVER_CPU LOAD_CPU DURATION WARMUP JOBS WORKERS INFLIGHT BACKEND calib
export kernel="$(uname -r)" cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
export cpus="$(nproc)" commit="$(git -C "$here" rev-parse --short HEAD)$(git -C "$here" diff --quiet HEAD -- "$here/../../crates" "$here/src" || echo '+dirty')"
python3 "$here/report.py"
