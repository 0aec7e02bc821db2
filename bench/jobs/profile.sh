#!/usr/bin/env bash
# Where a server's per-job CPU goes: run one server kind under the usual load and count,
# per thread, over a window after warm-up, the syscalls by kind (perf tracepoints) and the
# voluntary / involuntary context switches (/proc/PID/task/*/status), per job.
#
#   bench/jobs/profile.sh ringport 16          # server kind, client pipeline
#   ITERS=750 BIN=/tmp/other-build bench/jobs/profile.sh tokio 1
#
# Settings: ITERS (30), CONNS (8), JOBS (4), WINDOW (2 s), SERVER_CPU (0), LOAD_CPU (1),
# BIN (bench/jobs/target/release/jobs-bench, built if it is the default). The
# tracepoints add a little cost to every syscall: use run.sh for CPU per job.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kind=${1:?server kind: ringport, tokio, ringport-inline, tokio-inline}
pipe=${2:-16}
ITERS=${ITERS:-30}; CONNS=${CONNS:-8}; JOBS=${JOBS:-4}; WINDOW=${WINDOW:-2}
SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
if [[ -z "${BIN:-}" ]]; then
    cargo build --release --manifest-path "$here/Cargo.toml" >&2
    BIN=$here/target/release/jobs-bench
fi
tmp=$(mktemp -d /tmp/jobs-profile.XXXXXX)
args=(--iters "$ITERS" --workers 1)
[[ $kind == ringport || $kind == tokio ]] && args+=(--jobs "$JOBS")
taskset -c "$SERVER_CPU" "$BIN" "serve-$kind" "${args[@]}" >"$tmp/server.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$tmp/server.out"); [[ -n "$addr" ]] && break; sleep 0.1
done
taskset -c "$LOAD_CPU" "$BIN" load --addr "$addr" --conns "$CONNS" --pipeline "$pipe" --iters "$ITERS" \
    --warmup 1 --duration "$(echo "$WINDOW + 2" | bc)" --server-pid "$pid" >"$tmp/load.json" 2>/dev/null &
lp=$!
sleep 1.5
snap() { for t in /proc/$pid/task/*; do
    printf '%s %s %s\n' "$(basename "$t")" "$(tr ' ' _ <"$t/comm")" "$(grep -h ctxt "$t/status" | awk '{printf "%s ", $2}')"; done; }
snap >"$tmp/ctx0"
perf stat -x, --per-thread -o "$tmp/perf.txt" -p "$pid" -e \
    syscalls:sys_enter_futex,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sched_yield \
    -- sleep "$WINDOW"
snap >"$tmp/ctx1"
wait $lp
export tmp WINDOW kind pipe ITERS
python3 - <<'PY'
import json, os, collections
t, win = os.environ["tmp"], float(os.environ["WINDOW"])
load = json.load(open(f"{t}/load.json"))
jobs = load["jobs_per_s"] * win
print(f"{os.environ['kind']}, pipeline {os.environ['pipe']}, {os.environ['ITERS']} rounds: "
      f"{load['jobs_per_s']:,.0f} jobs/s, {load['server_cpu_us_per_job']:.3f} µs CPU/job "
      f"(others on its CPU {load['others_on_server_cpu_pct']:.0f} %); per job over a {win:.0f} s window:")
def snap(p):
    return {l.split()[0]: (l.split()[1], int(l.split()[2]), int(l.split()[3])) for l in open(p)}
a, b = snap(f"{t}/ctx0"), snap(f"{t}/ctx1")
rows = collections.defaultdict(dict)
for l in open(f"{t}/perf.txt"):
    f = l.strip().split(",")
    if len(f) < 4 or l.startswith("#") or not f[1].replace(".", "").isdigit():
        continue
    thread, n, ev = f[0], float(f[1]), f[3].replace("syscalls:sys_enter_", "")
    if n:
        rows[thread.rsplit("-", 1)[1]][ev] = n
for tid in sorted(b, key=lambda x: b[x][0]):
    name, v1, n1 = b[tid]
    _, v0, n0 = a.get(tid, (name, 0, 0))
    sc = ", ".join(f"{ev} {n / jobs:.3f}" for ev, n in sorted(rows.get(tid, {}).items()))
    if v1 - v0 or n1 - n0 or sc:
        print(f"  {name:18} ctx switches vol {(v1 - v0) / jobs:.3f} invol {(n1 - n0) / jobs:.3f}; syscalls: {sc or '-'}")
PY
