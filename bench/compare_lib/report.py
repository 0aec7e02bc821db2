"""Medians, ratios to tokio, the Targets, and the output files RESULTS.md and results.json."""

import datetime
import json
import os
import platform
import subprocess

from . import config
from .util import median

BASE = config.BASELINE
# Metrics that get a median; each is the median of the per-round values.
MEASURED_KEYS = ["rate", "user_ticks", "user_us", "sys_us", "cpu_us", "syscalls", "ctxsw",
                 "server_cpu_pct", "client_cpu_pct", "other_cpu0_pct", "other_cpu1_pct",
                 "steal_pct", "p50_us", "p99_us",
                 "target_rate", "msgs_per_sec", "behind"]
IDLE_KEYS = ["rss_before_kib", "rss_after_kib", "bytes_per_conn", "all_up_secs"]


# ---------------------------------------------------------------- aggregation


def aggregate(settings, results):
    """{(scenario, server): {"ok": n, "total": n, "errors": [...], metric: median}}"""
    agg = {}
    for sid in settings.scenarios:
        keys = IDLE_KEYS if config.SCENARIOS[sid].kind == "idle" else MEASURED_KEYS
        for server in settings.servers:
            rounds = results.of(sid, server)
            good = [r for r in rounds if r["ok"]]
            cell = {"ok": len(good), "total": len(rounds),
                    "errors": sorted({r["error"] for r in rounds if not r["ok"]})}
            for k in keys:
                cell[k] = median([r["metrics"].get(k) for r in good])
            agg[(sid, server)] = cell
    return agg


def value(agg, sid, server, key):
    return agg.get((sid, server), {}).get(key)


def ratio(agg, sid, server, key):
    a, b = value(agg, sid, server, key), value(agg, sid, BASE, key)
    return a / b if a is not None and b else None


def div(a, b):
    return a / b if b else float("inf")


# Fewer clock ticks (10 ms) of user time than this in a median window: marked "~".
COARSE_TICKS = 20


def coarse(agg, sid, server):
    ticks = value(agg, sid, server, "user_ticks")
    return ticks is not None and ticks < COARSE_TICKS


def user_cell(agg, sid, server, v=None):
    v = value(agg, sid, server, "user_us") if v is None else v
    return ("~" if coarse(agg, sid, server) else "") + sig(v)


# ---------------------------------------------------------------- number formats


def sig(v):
    """A number with about three significant digits, fixed-point."""
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if abs(v) < 0.001:
        return f"{v:.1e}"
    for limit, decimals in [(100, 0), (10, 1), (1, 2), (0.1, 3), (0.01, 4)]:
        if abs(v) >= limit:
            return f"{v:.{decimals}f}"
    return f"{v:.5f}"


def count(v):
    return "–" if v is None else f"{v:,.0f}"


def times(v):
    return "–" if v is None else f"{v:.2f}×"


# ---------------------------------------------------------------- tables


def _rounds_cell(cell):
    return f"{cell['ok']}/{cell['total']}"


def _failed_row(server, cell, columns):
    why = "; ".join(cell["errors"]) or "no data"
    why = why.replace("|", "/")[:160]
    return f"| {server} | FAILED: {why} |" + " – |" * (columns - 3) + f" {_rounds_cell(cell)} |"


def measured_table(sid, settings, agg):
    sc = config.SCENARIOS[sid]
    u = sc.unit
    head = ["server", f"{u}s/s", f"{u}s/s ×{BASE}", f"user µs/{u}", f"user ×{BASE}",
            f"sys µs/{u}", f"user+sys µs/{u}", f"syscalls/{u}", f"syscalls ×{BASE}",
            f"ctx sw/{u}", "p50 µs", "p99 µs", "server CPU %", "load CPU %",
            "others % CPU 0/1"]
    if sc.kind == "rate":
        head.append("sends behind schedule")
    head.append("rounds ok")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for server in settings.servers:
        cell = agg[(sid, server)]
        if not cell["ok"]:
            lines.append(_failed_row(server, cell, len(head)))
            continue
        g = lambda k: value(agg, sid, server, k)  # noqa: E731
        r = lambda k: ratio(agg, sid, server, k)  # noqa: E731
        row = [server, count(g("rate")), times(r("rate")), user_cell(agg, sid, server),
               times(r("user_us")),
               sig(g("sys_us")), sig(g("cpu_us")), sig(g("syscalls")), times(r("syscalls")),
               sig(g("ctxsw")), sig(g("p50_us")), sig(g("p99_us")), count(g("server_cpu_pct")),
               count(g("client_cpu_pct")),
               f"{count(g('other_cpu0_pct'))}/{count(g('other_cpu1_pct'))}"]
        if sc.kind == "rate":
            row.append(count(g("behind")))
        row.append(_rounds_cell(cell))
        lines.append("| " + " | ".join(row) + " |")
    if any(coarse(agg, sid, s) for s in settings.servers):
        lines += ["", f"~ coarse: fewer than {COARSE_TICKS} clock ticks (10 ms) of user CPU in the "
                  "median window, so ±1 tick is 5% or more."]
    return lines


def idle_table(sid, settings, agg):
    n = config.SCENARIOS[sid].connections
    head = ["server", "RSS before (KiB)", f"RSS with {n:,} conns (KiB)", "bytes/conn",
            f"bytes/conn ×{BASE}", "all up after (s)", "rounds ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for server in settings.servers:
        cell = agg[(sid, server)]
        if not cell["ok"]:
            lines.append(_failed_row(server, cell, len(head)))
            continue
        g = lambda k: value(agg, sid, server, k)  # noqa: E731
        row = [server, count(g("rss_before_kib")), count(g("rss_after_kib")),
               count(g("bytes_per_conn")), times(ratio(agg, sid, server, "bytes_per_conn")),
               sig(g("all_up_secs")), _rounds_cell(cell)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


# ---------------------------------------------------------------- targets


def _verdict(ok):
    return "**MET**" if ok else "**NOT MET**"


def _best_peer(agg, sid, key):
    peers = {p: value(agg, sid, p, key) for p in ("tokio", "monoio")}
    have = {p: v for p, v in peers.items() if v is not None}
    if not have:
        return None, None, ""
    best = max(have, key=have.get)
    note = "" if len(have) == 2 else f" (no {', '.join(p for p in peers if p not in have)} data)"
    return best, have[best], note


def targets(agg):
    """[(target, figures, verdict)] evaluated from the medians."""
    out = []
    rp = lambda sid, k: value(agg, sid, "ringport", k)  # noqa: E731

    def missing(target, sid, who):
        why = (f"no {who} data (its rounds failed)" if (sid, who) in agg
               else f"{who} did not run in scenario {sid}")
        out.append((target, why, "NOT EVALUATED"))

    def vs_best(sid, key, unit, label):
        target = f"S{sid} {label}: ringport ≥ best of tokio, monoio"
        mine = rp(sid, key)
        best, theirs, note = _best_peer(agg, sid, key)
        if mine is None or theirs is None:
            return missing(target, sid, "ringport" if mine is None else "tokio")
        out.append((target, f"ringport {count(mine)} vs {best} {count(theirs)} {unit} "
                            f"({div(mine, theirs):.2f}×){note}", _verdict(mine >= theirs)))

    def vs_peer(sid, key, peer, factor, label, unit):
        target = f"S{sid} {label}: ringport ≤ {factor}× {peer}"
        mine, theirs = rp(sid, key), value(agg, sid, peer, key)
        if mine is None or theirs is None:
            return missing(target, sid, "ringport" if mine is None else peer)
        show = (lambda srv, v: user_cell(agg, sid, srv, v)) if key == "user_us" else \
            (lambda srv, v: sig(v))
        out.append((target, f"ringport {show('ringport', mine)} vs {peer} {show(peer, theirs)} "
                            f"{unit} ({div(mine, theirs):.2f}×)", _verdict(mine <= factor * theirs)))

    def absolute(sid, key, limit, label, unit, fmt=sig, who="ringport"):
        target = f"S{sid} {label}: {who} ≤ {limit} {unit}"
        mine = value(agg, sid, who, key)
        if mine is None:
            return missing(target, sid, who)
        out.append((target, f"{who} {fmt(mine)} {unit}", _verdict(mine <= limit)))

    def poll_vs_tokio(sid):
        target = f"S{sid} msgs/s: ringport-poll ≥ tokio"
        mine, theirs = value(agg, sid, "ringport-poll", "rate"), value(agg, sid, "tokio", "rate")
        if mine is None or theirs is None:
            return missing(target, sid, "ringport-poll" if mine is None else "tokio")
        out.append((target, f"ringport-poll {count(mine)} vs tokio {count(theirs)} msgs/s "
                            f"({div(mine, theirs):.2f}×)", _verdict(mine >= theirs)))

    for sid in (2, 3, 4):
        vs_best(sid, "rate", "msgs/s", "msgs/s")
    vs_peer(2, "user_us", "tokio", 0.4, "user CPU/msg", "µs/msg")
    absolute(2, "syscalls", 0.15, "syscalls/msg", "syscalls/msg")
    absolute(3, "syscalls", 0.02, "syscalls/msg", "syscalls/msg")
    absolute(5, "bytes_per_conn", 256, "RSS per idle connection", "B/conn", count)
    vs_best(6, "rate", "conns/s", "conns/s")
    vs_peer(6, "syscalls", "tokio", 0.5, "syscalls/conn", "syscalls/conn")
    for sid in (2, 3, 4):
        vs_peer(sid, "user_us", "uring", 1.5, "user CPU/msg", "µs/msg")
        vs_peer(sid, "cpu_us", "uring", 1.05, "user+sys CPU/msg", "µs/msg")
    # The readiness backend (issue 5): tokio's throughput, and no receive memory per
    # idle connection either.
    for sid in (2, 4):
        poll_vs_tokio(sid)
    absolute(5, "bytes_per_conn", 256, "RSS per idle connection", "B/conn", count,
             who="ringport-poll")
    return out


def targets_lines(tgts):
    met = sum(1 for t in tgts if t[2] == "**MET**")
    evaluated = sum(1 for t in tgts if t[2] != "NOT EVALUATED")
    lines = [f"{met} of {evaluated} evaluated targets met ({len(tgts)} targets).", "",
             "| target | figures (medians) | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {f} | {v} |" for t, f, v in tgts]
    if any("~" in f for _, f, _ in tgts):
        lines += ["", f"~ coarse: fewer than {COARSE_TICKS} clock ticks of user CPU in the median "
                  "window (see the scenario tables)."]
    return lines


# ---------------------------------------------------------------- environment


def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              cwd=config.ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(perf):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dirty = _run(["git", "status", "--porcelain", "--", "crates", "bench/peers", "Cargo.toml",
                  "Cargo.lock"])
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "commit": _run(["git", "rev-parse", "--short", "HEAD"]) + (" (+ uncommitted changes)"
                                                                   if dirty else ""),
        "perf": perf.version if perf.available else f"absent ({perf.reason})",
        "tcp_tw_reuse": _read("/proc/sys/net/ipv4/tcp_tw_reuse"),
        "ip_local_port_range": _read("/proc/sys/net/ipv4/ip_local_port_range"),
    }


def _read(path):
    try:
        with open(path) as f:
            return " ".join(f.read().split())
    except OSError:
        return None


# ---------------------------------------------------------------- interference


def interference_lines(results):
    """How much else ran on the two pinned CPUs during the measured windows."""
    rows = [r for r in results.rounds if r["ok"] and "other_cpu0_pct" in r["metrics"]]
    if not rows:
        return []

    def stats(key):
        vals = [r["metrics"][key] for r in rows if r["metrics"].get(key) is not None]
        return (median(vals), max(vals)) if vals else (None, None)

    (m0, x0), (m1, x1), (ms, xs) = stats("other_cpu0_pct"), stats("other_cpu1_pct"), \
        stats("steal_pct")
    noisy = sorted({f"S{r['scenario']} {r['server']} r{r['round']}" for r in rows
                    if max(r["metrics"].get("other_cpu0_pct") or 0,
                           r["metrics"].get("other_cpu1_pct") or 0) > 10})
    lines = ["", f"Interference: other work on the pinned CPUs in the measured windows "
             f"(percent of one CPU, median / max): CPU {config.SERVER_CPU} {count(m0)} / "
             f"{count(x0)}, CPU {config.LOAD_CPU} {count(m1)} / {count(x1)}; hypervisor steal "
             f"{ms:.1f} / {xs:.1f}."]
    if noisy:
        lines[-1] += (f" **{len(noisy)} of {len(rows)} rounds had more than 10 %** (other "
                      "processes competing: their figures are suspect): " + ", ".join(noisy[:12])
                      + (" ..." if len(noisy) > 12 else "") + ".")
    return lines


# ---------------------------------------------------------------- files


def write_markdown(settings, env, results, agg, tgts, chart_ok):
    s = settings
    md = ["# ringport benchmark results", ""]
    if s.quick:
        md += ["> **QUICK RUN** (`--quick`: 1 round, short windows). A smoke test of the "
               "benchmark, not reference numbers.", ""]
    md += [
        f"- Date: {env['date']}",
        f"- Kernel: {env['kernel']}",
        f"- CPU: {env['cpu']} ({env['cpus']} CPUs)",
        f"- Commit: {env['commit']}",
        f"- Command: `{s.command_line}`",
        f"- Rounds: {s.rounds} per scenario and server (medians shown); measured window "
        f"{s.duration:g} s after a {s.warmup:g} s warm-up; idle connections held {s.idle_hold:g} s",
        f"- Pinning: server on CPU {config.SERVER_CPU}, load tool (`ringport bench --workers 1`) "
        f"and perf on CPU {config.LOAD_CPU}",
        f"- perf: {env['perf']}; net.ipv4.tcp_tw_reuse = {env['tcp_tw_reuse']}, "
        f"ephemeral ports {env['ip_local_port_range']}",
        "",
        "Columns: msgs/s (conns/s in scenario 6), p50 and p99 come from the load tool's "
        "report. The per-message (per-connection) figures are the server's, over a window "
        "inside the load tool's measured window, divided by the messages the load tool "
        "completed in that window: user and sys CPU from /proc/PID/stat, syscalls "
        "(raw_syscalls:sys_enter) and context switches from perf stat. Server and load CPU % "
        "say how busy each side was (100 = one full core): a load tool near 100 % means the "
        "throughput is the client's limit. Each figure is the median over the rounds; ratios "
        f"are server / {BASE}. Details: [bench/README.md](README.md).",
    ]
    if s.notes or results.meta.get("rate_source"):
        md += ["", "Notes:", ""]
        md += [f"- {n}" for n in s.notes]
        if results.meta.get("rate"):
            md.append(f"- Scenario 7 rate: {results.meta['rate']:,} msgs/s "
                      f"({results.meta['rate_source']})")
    md += interference_lines(results)
    md += ["", "## Targets", ""] + targets_lines(tgts)
    for sid in s.scenarios:
        sc = config.SCENARIOS[sid]
        md += ["", f"## Scenario {sid}: {sc.title}", ""]
        if sc.kind == "rate" and results.meta.get("rate"):
            md += [f"Offered load: {results.meta['rate']:,} msgs/s in total (open loop; latency "
                   "from each message's intended send time).", ""]
        md += idle_table(sid, s, agg) if sc.kind == "idle" else measured_table(sid, s, agg)
    if chart_ok:
        md += ["", "## Chart", "", f"![benchmark chart]({s.chart_out.name})"]
    s.out.parent.mkdir(parents=True, exist_ok=True)
    s.out.write_text("\n".join(md) + "\n")


def write_json(settings, env, results, agg, tgts):
    data = {
        "settings": {k: (str(v) if hasattr(v, "parts") else v)
                     for k, v in vars(settings).items()},
        "environment": env,
        "meta": results.meta,
        "medians": {f"s{sid}": {srv: cell for (s2, srv), cell in agg.items() if s2 == sid}
                    for sid in settings.scenarios},
        "targets": [{"target": t, "figures": f, "verdict": v.strip("*")} for t, f, v in tgts],
        "rounds": results.rounds,
    }
    settings.json_out.parent.mkdir(parents=True, exist_ok=True)
    settings.json_out.write_text(json.dumps(data, indent=1, default=str) + "\n")
