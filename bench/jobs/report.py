"""Medians of bench/jobs/results.jsonl into RESULTS.md (run by run.sh, which sets the
environment)."""
import json, os, statistics

e = os.environ
rows = [json.loads(l) for l in open(e["RAW"]) if l.strip()]
order = ["ringport", "tokio", "ringport-inline", "tokio-inline"]
name = {
    "ringport": "ringport job pool (`spawn_job`)",
    "tokio": "tokio `spawn_blocking`",
    "ringport-inline": "ringport inline (no pool)",
    "tokio-inline": "tokio inline (no pool)",
}
inline_of = {"ringport": "ringport-inline", "tokio": "tokio-inline"}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, fmt):
    return "–" if x is None else format(x, fmt)


settings = []
for r in rows:
    if r["setting"] not in settings:
        settings.append(r["setting"])

out = ["# jobs-bench results\n"]
out.append("Per-job overhead of ringport's job pool against `tokio::task::spawn_blocking`: the same "
           "hash job per frame, the same client, server CPU from /proc. See [README.md](README.md).\n")
out.append("Command (from the repository root):\n")
out.append("```sh\n" + e["invocation"] + "\n```\n")
busy = [r.get("others_on_server_cpu_pct", 0) for r in rows if not r.get("failed")]
out.append(f"- ringport commit {e['commit']}, kernel {e['kernel']}, {e['cpu_model']}, {e['cpus']} CPUs; "
           f"load average {e['load_start']} at the start, {e['load_end']} at the end; started {e['started']}")
out.append(f"- server pinned to CPU {e['SERVER_CPU']}, client to CPU {e['LOAD_CPU']}; {e['WORKERS']} I/O "
           f"thread(s) in both servers; pools of {e['JOBS']} threads (ringport `.jobs({e['JOBS']})`, tokio "
           f"`max_blocking_threads({e['JOBS']})`); at most {e['INFLIGHT']} jobs outstanding per connection "
           f"in both; ringport backend {e['BACKEND']}; {e['WARMUP']} s warm-up, {e['DURATION']} s window per run")
out.append(f"- job cost measured alone on the client's CPU: {e['calib'].strip().rstrip(';')}")
if busy:
    out.append(f"- other work on the server's CPU during the windows (its busy time less the server's): "
               f"median {statistics.median(busy):.0f} %, max {max(busy):.0f} %"
               + ("  **(busy machine: figures preliminary)**" if max(busy) > 10 else ""))
out.append("")

for s in settings:
    sel = [r for r in rows if r["setting"] == s]
    ok = [r for r in sel if not r.get("failed")]
    if not ok:
        continue
    r0 = ok[0]
    rounds = len({r["round"] for r in sel})
    out.append(f"## {s}: {r0['iters']} hash rounds per job, {r0['conns']} connections × pipeline "
               f"{r0['pipeline']} ({rounds} round{'s' if rounds != 1 else ''}, medians)\n")
    out.append("| server | jobs/s | server CPU µs/job | vs tokio spawn_blocking | user / sys µs | "
               "overhead over its inline µs/job | ctx switches/job | server CPU busy | others on its CPU | runs |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    m = {}
    for k in order:
        rs = [r for r in ok if r["server"] == k]
        if rs:
            m[k] = {x: med([r[x] for r in rs]) for x in
                    ("jobs_per_s", "server_cpu_us_per_job", "server_user_us_per_job",
                     "server_sys_us_per_job", "ctx_switches_per_job", "server_cpu_pct",
                     "others_on_server_cpu_pct")}
            m[k]["n"] = len(rs)
    base = m.get("tokio", {}).get("server_cpu_us_per_job")
    for k in order:
        failed = sum(1 for r in sel if r["server"] == k and r.get("failed"))
        if k not in m and not failed:
            continue
        if k not in m:
            out.append(f"| {name[k]} | FAILED | | | | | | | | 0 ({failed} failed) |")
            continue
        x = m[k]
        cpu = x["server_cpu_us_per_job"]
        ratio = cpu / base if base and k in ("ringport", "tokio") else None
        inl = m.get(inline_of.get(k, ""), {}).get("server_cpu_us_per_job")
        over = cpu - inl if inl is not None else None
        runs = f"{x['n']}" + (f" ({failed} failed)" if failed else "")
        out.append(f"| {name[k]} | {f(x['jobs_per_s'], ',.0f')} | {f(cpu, '.3f')} | "
                   f"{f(ratio, '.2f') + '×' if ratio else '–'} | "
                   f"{f(x['server_user_us_per_job'], '.2f')} / {f(x['server_sys_us_per_job'], '.2f')} | "
                   f"{f(over, '+.3f')} | {f(x['ctx_switches_per_job'], '.2f')} | "
                   f"{f(x['server_cpu_pct'], '.0f')} % | {f(x['others_on_server_cpu_pct'], '.0f')} % | {runs} |")
    if "ringport" in m and "tokio" in m:
        r_cpu = m["ringport"]["server_cpu_us_per_job"] / m["tokio"]["server_cpu_us_per_job"]
        verdict = "MET" if r_cpu <= 1.0 else "NOT MET"
        out.append("")
        out.append(f"Target ringport CPU/job ≤ 1.0× tokio spawn_blocking's: **{verdict}** ({r_cpu:.2f}×).")
    spread = []
    for k in order:
        cs = [r["server_cpu_us_per_job"] for r in ok if r["server"] == k]
        if cs:
            spread.append(f"{k} {min(cs):.3f}–{max(cs):.3f}")
    out.append("")
    out.append("CPU µs/job over the rounds (min–max): " + "; ".join(spread) + ".\n")

out.append("Columns: *server CPU µs/job*: utime+stime of the whole server process (all threads) over "
           "the window / answers received in it. *vs tokio spawn_blocking*: that divided by the "
           "spawn_blocking server's (below 1× is less CPU per job). *overhead over its inline*: "
           "pool CPU/job − the same framework's inline CPU/job: what handing the job to a pool "
           "thread and its result back costs. *ctx switches/job*: voluntary + involuntary, every "
           "live thread of the server. *server CPU busy*: server CPU time / window. *others on its CPU*: "
           "the busy time of the server's CPU not charged to the server: on a shared machine other "
           "work fills the server's idle time, and competes with it when it wakes; CFS shares a busy CPU "
           "per thread, so a server with pool threads then gets a larger share than a one-thread inline "
           "server, which bends jobs/s (not CPU per job) in its favour. Compare CPU per job; trust "
           "jobs/s only from a quiet run. Raw rows: [results.jsonl](results.jsonl). Where the per-job CPU goes (syscalls and "
           "context switches per job and thread, and an experiment): [PROFILE.md](PROFILE.md).\n")
open(e["OUT"], "w").write("\n".join(out))
print(open(e["OUT"]).read())
