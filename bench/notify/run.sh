#!/usr/bin/env bash
# Build notify-bench, run every implementation interleaved round after round (pinned to
# one CPU), and write the medians to RESULTS.md (raw rows to results.jsonl).
#
#   bench/notify/run.sh                  # 5 rounds, edge and level, ~6 min
#   ROUNDS=1 DURATION=2 bench/notify/run.sh   # a quick look
#
# Settings (environment): ROUNDS (5), LEVEL_ROUNDS (= ROUNDS; 0 skips level), DURATION (5),
# WARMUP (1), PAIRS (1000), INFLIGHT (64), CPU (0: the CPU every run is pinned to),
# OUT (bench/notify/RESULTS.md), RAW (bench/notify/results.jsonl).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-5}
LEVEL_ROUNDS=${LEVEL_ROUNDS:-$ROUNDS}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
PAIRS=${PAIRS:-1000}
INFLIGHT=${INFLIGHT:-64}
CPU=${CPU:-0}
OUT=${OUT:-$here/RESULTS.md}
RAW=${RAW:-$here/results.jsonl}

invocation="$(for v in ROUNDS LEVEL_ROUNDS DURATION WARMUP PAIRS INFLIGHT CPU; do
    printf '%s=%s ' "$v" "${!v}"; done)bench/notify/run.sh"

cargo build --release --manifest-path "$here/Cargo.toml"
bin=$here/target/release/notify-bench

log=$(mktemp /tmp/notify-bench.XXXXXX.log)
echo "stderr of the runs: $log" >&2
: >"$RAW"

configs=("mio" "port uring" "port poll" "engine uring" "engine poll")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((round = 1; round <= ROUNDS || round <= LEVEL_ROUNDS; round++)); do
    triggers=()
    ((round <= ROUNDS)) && triggers+=(edge)
    ((round <= LEVEL_ROUNDS)) && triggers+=(level)
    for trigger in "${triggers[@]}"; do
        for cfg in "${configs[@]}"; do
            read -r impl backend <<<"$cfg"
            args=(--impl "$impl")
            [[ -n "${backend:-}" ]] && args+=(--backend "$backend")
            args+=(--trigger "$trigger" --pairs "$PAIRS" --inflight "$INFLIGHT"
                --duration "$DURATION" --warmup "$WARMUP" --json)
            echo "round $round: $impl ${backend:-epoll} $trigger" >&2
            echo "== round $round: ${args[*]}" >>"$log"
            if line=$(taskset -c "$CPU" "$bin" "${args[@]}" 2>>"$log"); then
                echo "$line" | sed "s/^{/{\"round\":$round,/" >>"$RAW"
            else
                echo "   FAILED (see $log)" >&2
                printf '{"round":%d,"impl":"%s","backend":"%s","trigger":"%s","failed":true}\n' \
                    "$round" "$impl" "${backend:-epoll}" "$trigger" >>"$RAW"
            fi
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

export RAW OUT invocation started load_start load_end CPU DURATION WARMUP PAIRS INFLIGHT
export kernel="$(uname -r)" cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
export cpus="$(nproc)" commit="$(git -C "$here" rev-parse --short HEAD)$(git -C "$here" diff --quiet HEAD -- "$here/../../crates" || echo '+dirty')"
export run_cmd="taskset -c $CPU bench/notify/target/release/notify-bench --impl IMPL [--backend uring|poll] --trigger edge|level --pairs $PAIRS --inflight $INFLIGHT --duration $DURATION --warmup $WARMUP --json"
python3 - <<'EOF'
import json, os, statistics

rows = [json.loads(l) for l in open(os.environ["RAW"]) if l.strip()]
order = [("mio", "epoll"), ("port", "uring"), ("port", "poll"), ("engine", "uring"), ("engine", "poll")]
name = {
    ("mio", "epoll"): "mio (epoll)",
    ("port", "uring"): "ringport Port, uring",
    ("port", "poll"): "ringport Port, poll",
    ("engine", "uring"): "ringport engine, uring",
    ("engine", "poll"): "ringport engine, poll",
}

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def f(x, fmt):
    return "–" if x is None else format(x, fmt)

e = os.environ
out = []
out.append("# notify-bench results\n")
out.append("Readiness notifications per second and CPU time per notification, ringport "
           "(`notify::Port` and engine watches) against mio used directly, on one thread "
           "pinned to one CPU. See [README.md](README.md) for the workload and how to read this.\n")
out.append("Command (from the repository root):\n")
out.append("```sh\n" + e["invocation"] + "\n```\n")
out.append("Each run: `" + e["run_cmd"] + "`, the five implementations interleaved in every round.\n")
out.append(f"- ringport commit {e['commit']}, kernel {e['kernel']}, {e['cpu_model']}, {e['cpus']} CPUs "
           f"(shared with other work: load average {e['load_start']} at the start, {e['load_end']} at the end)")
out.append(f"- started {e['started']}; {e['PAIRS']} pairs, {e['INFLIGHT']} tokens in flight, "
           f"{e['WARMUP']} s warm-up then a {e['DURATION']} s window per run")
out.append("- CPU: `getrusage(RUSAGE_THREAD)` user + sys of the thread running the loop (for the "
           "engine its worker thread, read inside `on_ready`), at the window's start and end, "
           "divided by the notifications in between. `RUSAGE_SELF` (whole process) is recorded "
           "too (`process_cpu_us_per_notif` in results.jsonl).\n")

for trigger in ("edge", "level"):
    sel = [r for r in rows if r.get("trigger") == trigger]
    if not sel:
        continue
    ok = [r for r in sel if not r.get("failed")]
    rounds = len({r["round"] for r in sel})
    out.append(f"## {trigger.capitalize()}-triggered ({rounds} round{'s' if rounds != 1 else ''}, medians)\n")
    if trigger == "level":
        out.append("mio has no level triggering: its rows re-register every socket with "
                   "`reregister` (EPOLL_CTL_MOD) after each event, which is how a mio user "
                   "gets it. ringport's level watches re-arm a one-shot poll per notification.\n")
    out.append("| implementation | notifications/s | vs mio | CPU µs/notification | vs mio | "
               "user / sys µs | notifications/wakeup | loop thread busy | runs |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = {}
    for key in order:
        rs = [r for r in ok if (r["impl"], r["backend"]) == key]
        failed = sum(1 for r in sel if (r["impl"], r["backend"]) == key and r.get("failed"))
        if not rs and not failed:
            continue
        nps = med([r["notif_per_s"] for r in rs])
        cpu = med([r["cpu_us_per_notif"] for r in rs])
        usr = med([r["user_us_per_notif"] for r in rs])
        sys_ = med([r["sys_us_per_notif"] for r in rs])
        npw = med([r["notif_per_wakeup"] for r in rs])
        busy = med([r["thread_cpu_share"] * 100 for r in rs])
        if key == ("mio", "epoll"):
            base = {"nps": nps, "cpu": cpu}
        r_nps = nps / base["nps"] if nps and base.get("nps") else None
        r_cpu = cpu / base["cpu"] if cpu and base.get("cpu") else None
        runs = f"{len(rs)}" + (f" ({failed} failed)" if failed else "")
        out.append(f"| {name[key]} | {f(nps, ',.0f')} | {f(r_nps, '.2f')}× | {f(cpu, '.3f')} | "
                   f"{f(r_cpu, '.2f')}× | {f(usr, '.3f')} / {f(sys_, '.3f')} | {f(npw, '.1f')} | "
                   f"{f(busy, '.0f')}% | {runs} |")
    anomalies = sum(r.get("anomalies", 0) for r in ok)
    bpn = [r["bytes_per_notif"] for r in ok]
    out.append("")
    out.append(f"Bytes per notification: {min(bpn):.3f} to {max(bpn):.3f} (1.000: every token "
               f"travels alone). Anomalies (error or hang-up readiness, watches removed mid-run): "
               f"{anomalies}.\n" if bpn else "")
    spread = []
    for key in order:
        rs = [r["notif_per_s"] for r in ok if (r["impl"], r["backend"]) == key]
        cs = [r["cpu_us_per_notif"] for r in ok if (r["impl"], r["backend"]) == key]
        if rs:
            spread.append(f"{name[key]}: {min(rs):,.0f}–{max(rs):,.0f}/s, "
                          f"{min(cs):.3f}–{max(cs):.3f} µs")
    out.append("Range over the rounds (min–max): " + "; ".join(spread) + ".\n")

out.append("Columns: *vs mio* is the median divided by mio's median (above 1× is more "
           "notifications per second, or more CPU per notification). *notifications/wakeup*: "
           "notifications per wait call that returned some (mio's `poll`, `Port::wait`); the "
           "engine's loop is its own and not visible from `on_ready` (–). *loop thread busy*: "
           "the loop thread's CPU time over the window's wall time; below 100% the CPU went to "
           "other tasks (this machine is shared), which lowers notifications/s but not CPU per "
           "notification. Raw rows: [results.jsonl](results.jsonl).\n")
open(e["OUT"], "w").write("\n".join(out))
print(open(e["OUT"]).read())
EOF
