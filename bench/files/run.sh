#!/usr/bin/env bash
# Downloads of one big file over loopback: ringport's file server against a plain
# sendfile(2) server (bench/peers `peer-echo sendfile-server`), read by a plain client
# (`peer-echo get`: a 256 KiB read loop) and by `ringport get` with and without its
# digest. Throughput, and the CPU the server and the client spend per GiB. Raw rows go to
# results.jsonl, medians and ranges to RESULTS.md (report.py). See README.md.
#
#   bench/files/run.sh                              # 5 rounds x 4 pairs of 1 GiB, ~2 min
#   ROUNDS=1 SIZE_MIB=256 OUT=/tmp/r.md RAW=/tmp/r.jsonl bench/files/run.sh   # a quick look
#
# Settings (environment): ROUNDS (5), SIZE_MIB (1024: the file), WARMUP (1: unmeasured
# transfers per pair before round 1), CHECK (1: compare the copy with the file byte for byte
# in round 1; 0: never, 2: every round), SERVER_CPU (0), CLIENT_CPU (1), DIR
# (/dev/shm/ringport-filebench: the file, the copies), COPY ($DIR/copy.bin: where the
# client writes; /dev/null takes the client's file writes out, and the copy's checks),
# RINGPORT_BIN (target/release/ringport
# at the repository root; when set, ringport-cli is not built), PAIRS ("ringport:plain
# sendfile:plain ringport:ringport-noverify ringport:ringport"; each server:client),
# NO_BUILD (0), OUT (bench/files/RESULTS.md), RAW (bench/files/results.jsonl).
# A pair whose server the ringport binary lacks (no `file-server` subcommand yet) is
# skipped with a warning.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
ROUNDS=${ROUNDS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
WARMUP=${WARMUP:-1}
CHECK=${CHECK:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DIR=${DIR:-/dev/shm/ringport-filebench}
PAIRS=${PAIRS:-ringport:plain sendfile:plain ringport:ringport-noverify ringport:ringport}
NO_BUILD=${NO_BUILD:-0}
OUT=${OUT:-$here/RESULTS.md}
RAW=${RAW:-$here/results.jsonl}
build_cli=1
if [[ -n "${RINGPORT_BIN:-}" ]]; then build_cli=0; fi
RINGPORT_BIN=${RINGPORT_BIN:-$root/target/release/ringport}
peer=$root/bench/peers/target/release/peer-echo

invocation="$(for v in ROUNDS SIZE_MIB WARMUP CHECK SERVER_CPU CLIENT_CPU ${COPY:+COPY}; do
    printf '%s=%s ' "$v" "${!v}"; done)PAIRS=\"$PAIRS\" bench/files/run.sh"

log=$(mktemp /tmp/files-bench.XXXXXX.log)
echo "builds, server and client output: $log" >&2

# Every server this script starts, until it is stopped; the trap stops what is left.
server_pid=""
stop_server() {
    [[ -n "$server_pid" ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 60); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
cleanup() {
    stop_server
    if [[ -n "${copy:-}" && $copy != /dev/null ]]; then rm -f "$copy"; fi
    rm -f "${server_out:-}" "${client_out:-}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $NO_BUILD != 1 ]]; then
    echo "building bench/peers" >&2
    cargo build --release --manifest-path "$root/bench/peers/Cargo.toml" >>"$log" 2>&1 ||
        { echo "build of bench/peers failed (see $log)" >&2; exit 1; }
    if [[ $build_cli == 1 ]]; then
        echo "building ringport-cli" >&2
        (cd "$root" && cargo build --release -p ringport-cli) >>"$log" 2>&1 ||
            { echo "build of ringport-cli failed (see $log)" >&2; exit 1; }
    fi
fi

have_file_server=0
if [[ -x "$RINGPORT_BIN" ]] && "$RINGPORT_BIN" file-server --help >/dev/null 2>&1; then
    have_file_server=1
fi
have_get=0
if [[ -x "$RINGPORT_BIN" ]] && "$RINGPORT_BIN" get --help >/dev/null 2>&1; then
    have_get=1
fi
pairs=()
for pair in $PAIRS; do
    IFS=: read -r server client <<<"$pair"
    case $server in
        sendfile) ;;
        ringport) if [[ $have_file_server == 0 ]]; then
                echo "skipping $pair: $RINGPORT_BIN has no file-server" >&2; continue; fi ;;
        *) echo "unknown server in $pair" >&2; exit 2 ;;
    esac
    case $client in
        plain) ;;
        ringport | ringport-noverify) if [[ $have_get == 0 ]]; then
                echo "skipping $pair: $RINGPORT_BIN has no get" >&2; continue; fi ;;
        *) echo "unknown client in $pair" >&2; exit 2 ;;
    esac
    pairs+=("$pair")
done
[[ ${#pairs[@]} -gt 0 ]] || { echo "no pair to run" >&2; exit 1; }

mkdir -p "$DIR"
file=$DIR/file.bin
bytes=$((SIZE_MIB * 1024 * 1024))
if [[ ! -f $file || $(stat -c %s "$file") != "$bytes" ]]; then
    echo "writing $SIZE_MIB MiB of random bytes to $file" >&2
    head -c "$bytes" /dev/urandom >"$file.tmp"
    mv "$file.tmp" "$file"
fi
copy=${COPY:-$DIR/copy.bin}
tck=$(getconf CLK_TCK)
server_out=$(mktemp /tmp/files-bench-server.XXXXXX)
client_out=$(mktemp /tmp/files-bench-client.XXXXXX)

# utime + stime of every thread of process $1, live and exited (fields 14 and 15 of
# /proc/PID/stat; the comm field, 2, may hold spaces, so cut after its ')').
proc_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13}'; }
# Busy ticks of CPU $1 (user nice system irq softirq steal of /proc/stat) and all ticks.
cpu_ticks() { awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

start_server() {
    local kind=$1
    : >"$server_out"
    case $kind in
        ringport) taskset -c "$SERVER_CPU" "$RINGPORT_BIN" file-server --root "$DIR" \
            --listen 127.0.0.1:0 >"$server_out" 2>>"$log" & ;;
        sendfile) taskset -c "$SERVER_CPU" "$peer" sendfile-server --root "$DIR" \
            --listen 127.0.0.1:0 >"$server_out" 2>>"$log" & ;;
    esac
    server_pid=$!
    addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$server_out" | head -1)
        [[ -n "$addr" ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "   $kind did not start (see $log)" >&2
    cat "$server_out" >>"$log"
    stop_server
    return 1
}

# One download of file.bin to copy.bin by client $1 from $addr; prints "wall user sys"
# of the client (bash's `time`: wait4's rusage, ms), or fails.
download() {
    local kind=$1 cmd
    case $kind in
        plain) cmd=("$peer" get "$addr" file.bin -o "$copy") ;;
        ringport-noverify) cmd=("$RINGPORT_BIN" get "$addr" file.bin -o "$copy" --no-verify) ;;
        ringport) cmd=("$RINGPORT_BIN" get "$addr" file.bin -o "$copy") ;;
    esac
    local TIMEFORMAT='%3R %3U %3S' t
    t=$({ time taskset -c "$CLIENT_CPU" "${cmd[@]}" >"$client_out" 2>&1; } 2>&1) || {
        cat "$client_out" >>"$log"; return 1; }
    cat "$client_out" >>"$log"
    echo "$t"
}

# One measured transfer: a fresh server, its CPU and both CPUs' busy time read right
# before and after the client runs. Sets `row` (a JSON line) and `summary` (for the
# console). Not run in a subshell, so the EXIT trap always knows the server's pid.
measure() {
    local round=$1 pair=$2 check=$3 server client
    IFS=: read -r server client <<<"$pair"
    if ! start_server "$server"; then
        row=$(printf '{"round":%d,"pair":"%s","failed":"server did not start"}' "$round" "$pair")
        summary="FAILED: server did not start"
        return
    fi
    if [[ $copy != /dev/null ]]; then rm -f "$copy"; fi
    sleep 0.2
    local s0 c00 c10 s1 c01 c11 t
    s0=$(proc_ticks "$server_pid"); c00=$(cpu_ticks "$SERVER_CPU"); c10=$(cpu_ticks "$CLIENT_CPU")
    if ! t=$(download "$client"); then
        stop_server
        row=$(printf '{"round":%d,"pair":"%s","failed":"client failed"}' "$round" "$pair")
        summary="FAILED: client failed (see $log)"
        return
    fi
    # The server finishes its side (the last send's completion, the close) after the
    # client has its last byte: give it that before the second sample.
    sleep 0.2
    s1=$(proc_ticks "$server_pid"); c01=$(cpu_ticks "$SERVER_CPU"); c11=$(cpu_ticks "$CLIENT_CPU")
    local threads
    threads=$(find "/proc/$server_pid/task" -mindepth 1 -maxdepth 1 | wc -l)
    stop_server
    local got ok=true
    if [[ $copy == /dev/null ]]; then
        got=-1 check=0 # nothing to check: the client's own count is all there is
    else
        got=$(stat -c %s "$copy" 2>/dev/null || echo 0)
        if [[ $got != "$bytes" ]]; then ok=false; fi
        if [[ $check == 1 && $ok == true ]] && ! cmp -s "$file" "$copy"; then ok=false; fi
        rm -f "$copy"
    fi
    local wall cu cs su0 ss0 su1 ss1 b00 a00 b01 a01 b10 a10 b11 a11
    read -r wall cu cs <<<"$t"
    read -r su0 ss0 <<<"$s0"; read -r su1 ss1 <<<"$s1"
    read -r b00 a00 <<<"$c00"; read -r b01 a01 <<<"$c01"
    read -r b10 a10 <<<"$c10"; read -r b11 a11 <<<"$c11"
    row=$(printf '{"round":%d,"pair":"%s","server":"%s","client":"%s","bytes":%d,"copy_bytes":%d,"intact":%s,"checked":%s,"wall_s":%s,"client_user_s":%s,"client_sys_s":%s,"server_user_ticks":%d,"server_sys_ticks":%d,"clk_tck":%d,"server_threads_after":%d,"server_cpu_busy_ticks":%d,"server_cpu_all_ticks":%d,"client_cpu_busy_ticks":%d,"client_cpu_all_ticks":%d,"client_line":"%s"}' \
        "$round" "$pair" "$server" "$client" "$bytes" "$got" "$ok" \
        "$([[ $check == 1 ]] && echo true || echo false)" "$wall" "$cu" "$cs" \
        $((su1 - su0)) $((ss1 - ss0)) "$tck" "$threads" \
        $((b01 - b00)) $((a01 - a00)) $((b11 - b10)) $((a11 - a10)) \
        "$(head -1 "$client_out" | tr -d '"\\' | cut -c1-200)")
    summary=$(awk -v b="$bytes" -v w="$wall" -v st=$((su1 - su0 + ss1 - ss0)) -v tck="$tck" \
        -v cu="$cu" -v cs="$cs" -v ok="$ok" 'BEGIN { g = b / 2^30;
        printf "%.2f GiB/s, server %.3f CPU s/GiB, client %.3f CPU s/GiB%s", g / w, st / tck / g,
            (cu + cs) / g, ok == "true" ? "" : "  NOT INTACT" }')
    if [[ $ok != true ]]; then echo "   $pair: copy not intact ($got bytes)" >&2; fi
}

: >"$RAW"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((w = 1; w <= WARMUP; w++)); do
    for pair in "${pairs[@]}"; do
        echo "warm-up $w: $pair" >&2
        measure 0 "$pair" 0
        echo "   $summary" >&2
    done
done
n=${#pairs[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    # Interleaved, and each round starts one pair further on, so no pair always goes first.
    for ((i = 0; i < n; i++)); do
        pair=${pairs[$(((i + round - 1) % n))]}
        check=0
        if [[ $CHECK == 2 || ($CHECK == 1 && $round == 1) ]]; then check=1; fi
        measure "$round" "$pair" "$check"
        echo "round $round: $pair  $summary" >&2
        echo "$row" >>"$RAW"
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

export COPY="$copy" RAW OUT invocation started load_start load_end SERVER_CPU CLIENT_CPU SIZE_MIB RINGPORT_BIN
export kernel="$(uname -r)" cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
export cpus="$(nproc)" commit="$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- crates bench/peers/src || echo '+dirty')"
export tcp_rmem="$(cat /proc/sys/net/ipv4/tcp_rmem)" tcp_wmem="$(cat /proc/sys/net/ipv4/tcp_wmem)"
python3 "$here/report.py"
