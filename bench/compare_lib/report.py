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
                 "target_rate", "msgs_per_sec", "behind",
                 # UDP scenarios
                 "lost_pct", "lost", "sent", "received", "reordered", "late", "socket_errors",
                 "server_drops", "server_drops_pct", "rcvbuf_errors", "rcvbuf_errors_pct"]
IDLE_KEYS = ["rss_before_kib", "rss_after_kib", "bytes_per_conn", "all_up_secs"]


# ---------------------------------------------------------------- aggregation


def aggregate(settings, results):
    """{(scenario, server): {"ok": n, "total": n, "errors": [...], metric: median}}"""
    agg = {}
    for sid in settings.scenarios:
        sc = config.SCENARIOS[sid]
        keys = IDLE_KEYS if sc.kind == "idle" else MEASURED_KEYS
        for server in config.servers_for(sc, settings.servers):
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


def baseline(sid):
    """The server scenario `sid`'s ratios are relative to: tokio (TCP), tokio-udp (UDP)."""
    return config.SCENARIOS[sid].baseline


def ratio(agg, sid, server, key, to=None):
    a, b = value(agg, sid, server, key), value(agg, sid, to or baseline(sid), key)
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


def pct(v):
    """A percentage: 3 decimals below 1 %, else 3 significant digits."""
    if v is None:
        return "–"
    return "0" if v == 0 else (f"{v:.3f}" if abs(v) < 1 else sig(v))


def udp_table(sid, settings, agg):
    sc = config.SCENARIOS[sid]
    base = sc.baseline
    head = ["server", "datagrams/s", f"×{base}", "user µs/datagram", "sys µs/datagram",
            "user+sys µs/datagram", f"user+sys ×{base}", "syscalls/datagram",
            f"syscalls ×{base}", "ctx sw/datagram", "loss %", "server socket drops %",
            "RcvbufErrors %", "reordered", "p50 µs", "p99 µs", f"p99 ×{base}",
            "server CPU %", "load CPU %", "others % CPU 0/1", "rounds ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = config.servers_for(sc, settings.servers)
    for server in names:
        cell = agg[(sid, server)]
        if not cell["ok"]:
            lines.append(_failed_row(server, cell, len(head)))
            continue
        g = lambda k: value(agg, sid, server, k)  # noqa: E731
        r = lambda k: ratio(agg, sid, server, k)  # noqa: E731
        row = [server, count(g("rate")), times(r("rate")), user_cell(agg, sid, server),
               sig(g("sys_us")), sig(g("cpu_us")), times(r("cpu_us")), sig(g("syscalls")),
               times(r("syscalls")), sig(g("ctxsw")), pct(g("lost_pct")),
               pct(g("server_drops_pct")), pct(g("rcvbuf_errors_pct")), count(g("reordered")),
               sig(g("p50_us")), sig(g("p99_us")), times(r("p99_us")),
               count(g("server_cpu_pct")), count(g("client_cpu_pct")),
               f"{count(g('other_cpu0_pct'))}/{count(g('other_cpu1_pct'))}", _rounds_cell(cell)]
        lines.append("| " + " | ".join(row) + " |")
    if any(coarse(agg, sid, s) for s in names):
        lines += ["", f"~ coarse: fewer than {COARSE_TICKS} clock ticks (10 ms) of user CPU in the "
                  "median window, so ±1 tick is 5% or more."]
    return lines


def udp_vs_bare_lines(settings, agg):
    """ringport-udp relative to the bare recvmmsg/sendmmsg loop, per UDP scenario."""
    sids = [sid for sid in settings.scenarios if config.SCENARIOS[sid].udp]
    if not sids:
        return []
    lines = ["| scenario | datagrams/s | user+sys µs/datagram | syscalls/datagram | p99 |",
             "|---|---|---|---|---|"]
    for sid in sids:
        cells = [times(ratio(agg, sid, "ringport-udp", k, to="mmsg-udp"))
                 for k in ("rate", "cpu_us", "syscalls", "p99_us")]
        lines.append(f"| S{sid} {config.SCENARIOS[sid].title.removeprefix('UDP: ')} | "
                     + " | ".join(cells) + " |")
    return lines


def measured_table(sid, settings, agg):
    sc = config.SCENARIOS[sid]
    if sc.udp:
        return udp_table(sid, settings, agg)
    u = sc.unit
    head = ["server", f"{u}s/s", f"{u}s/s ×{BASE}", f"user µs/{u}", f"user ×{BASE}",
            f"sys µs/{u}", f"user+sys µs/{u}", f"syscalls/{u}", f"syscalls ×{BASE}",
            f"ctx sw/{u}", "p50 µs", "p99 µs", "server CPU %", "load CPU %",
            "others % CPU 0/1"]
    if sc.kind == "rate":
        head.append("sends behind schedule")
    head.append("rounds ok")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = config.servers_for(sc, settings.servers)
    for server in names:
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
    if any(coarse(agg, sid, s) for s in names):
        lines += ["", f"~ coarse: fewer than {COARSE_TICKS} clock ticks (10 ms) of user CPU in the "
                  "median window, so ±1 tick is 5% or more."]
    return lines


def idle_table(sid, settings, agg):
    n = config.SCENARIOS[sid].connections
    head = ["server", "RSS before (KiB)", f"RSS with {n:,} conns (KiB)", "bytes/conn",
            f"bytes/conn ×{BASE}", "all up after (s)", "rounds ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for server in config.servers_for(config.SCENARIOS[sid], settings.servers):
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


# UDP targets: ringport-udp's user+sys CPU per datagram at most this share of
# tokio-udp's, at no fewer datagrams/s and no more loss (within LOSS_TOLERANCE points).
UDP_CPU_FACTOR = 0.6
LOSS_TOLERANCE = 0.01


def targets(agg, scenarios=None):
    """[(target, figures, verdict)] evaluated from the medians; only the targets of
    `scenarios` (default: all) are listed."""
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
    for sid in config.UDP_SCENARIOS:
        out += udp_targets(agg, sid)
    if scenarios is not None:
        out = [t for t in out if _target_sid(t[0]) in scenarios]
    return out


def _target_sid(target):
    """The scenario number a target's text starts with ("S3 ...")."""
    return int(target.split()[0][1:])


def udp_targets(agg, sid):
    """A UDP scenario's targets: ringport-udp's CPU per datagram ≤ 0.6× tokio-udp's, at
    datagrams/s ≥ tokio-udp's and no more loss."""
    rp, base = "ringport-udp", config.UDP_BASELINE
    out = []
    mine = {k: value(agg, sid, rp, k) for k in ("cpu_us", "rate", "lost_pct")}
    theirs = {k: value(agg, sid, base, k) for k in ("cpu_us", "rate", "lost_pct")}

    def add(target, key, show, verdict):
        if mine[key] is None or theirs[key] is None:
            who = rp if mine[key] is None else base
            why = (f"no {who} data (its rounds failed)" if (sid, who) in agg
                   else f"{who} did not run in scenario {sid}")
            out.append((target, why, "NOT EVALUATED"))
        else:
            out.append((target, show(mine[key], theirs[key]), _verdict(verdict(mine[key],
                                                                                theirs[key]))))

    add(f"S{sid} user+sys CPU/datagram: {rp} ≤ {UDP_CPU_FACTOR}× {base}", "cpu_us",
        lambda a, b: f"{rp} {sig(a)} vs {base} {sig(b)} µs/datagram ({div(a, b):.2f}×)",
        lambda a, b: a <= UDP_CPU_FACTOR * b)
    add(f"S{sid} datagrams/s: {rp} ≥ {base}", "rate",
        lambda a, b: f"{rp} {count(a)} vs {base} {count(b)} datagrams/s ({div(a, b):.2f}×)",
        lambda a, b: a >= b)
    add(f"S{sid} loss: {rp} ≤ {base} (+{LOSS_TOLERANCE} points)", "lost_pct",
        lambda a, b: f"{rp} {pct(a)} % vs {base} {pct(b)} %",
        lambda a, b: a <= b + LOSS_TOLERANCE)
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
        "rmem_default": _read("/proc/sys/net/core/rmem_default"),
        "rmem_max": _read("/proc/sys/net/core/rmem_max"),
        "wmem_default": _read("/proc/sys/net/core/wmem_default"),
        "wmem_max": _read("/proc/sys/net/core/wmem_max"),
        "netdev_max_backlog": _read("/proc/sys/net/core/netdev_max_backlog"),
        "udp_socket_buffer": config.UDP_SOCKET_BUFFER,
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
        f"- Pinning: server on CPU {config.SERVER_CPU}, load tool (`ringport bench --workers 1`; "
        f"UDP: `ringport bench --udp`, one thread) and perf on CPU {config.LOAD_CPU}",
        f"- perf: {env['perf']}; net.ipv4.tcp_tw_reuse = {env['tcp_tw_reuse']}, "
        f"ephemeral ports {env['ip_local_port_range']}",
    ]
    tcp = [sid for sid in s.scenarios if not config.SCENARIOS[sid].udp]
    udp = [sid for sid in s.scenarios if config.SCENARIOS[sid].udp]
    if udp:
        buf = env.get("udp_socket_buffer")
        md.append(
            f"- UDP: net.core.rmem_default = {env.get('rmem_default')}, rmem_max = "
            f"{env.get('rmem_max')}, wmem_default = {env.get('wmem_default')}, wmem_max = "
            f"{env.get('wmem_max')}, netdev_max_backlog = {env.get('netdev_max_backlog')}; "
            + (f"every UDP server's socket gets SO_RCVBUF = SO_SNDBUF = {buf:,} B "
               "(`--socket-buffer`; the kernel doubles it, capped at rmem_max / wmem_max)"
               if buf else "the UDP servers keep the kernel's default socket buffers"))
    md.append("")
    if tcp:
        md.append(
            "Columns: msgs/s (conns/s in scenario 6), p50 and p99 come from the load tool's "
            "report. The per-message (per-connection) figures are the server's, over a window "
            "inside the load tool's measured window, divided by the messages the load tool "
            "completed in that window: user and sys CPU from /proc/PID/stat, syscalls "
            "(raw_syscalls:sys_enter) and context switches from perf stat. Server and load "
            "CPU % say how busy each side was (100 = one full core): a load tool near 100 % "
            "means the throughput is the client's limit. Each figure is the median over the "
            f"rounds; ratios are server / {BASE}. Details: [bench/README.md](README.md).")
    if udp:
        md += ([""] if tcp else []) + [
            f"UDP columns (scenarios {', '.join(map(str, udp))}): datagrams/s, loss %, "
            "reordered, p50 and p99 come from the load tool's report (`bench --udp`: every echo "
            "checked byte for byte; a datagram not back within 1 s is lost). The per-datagram "
            "figures are the server's, measured as for TCP, divided by the datagrams echoed in "
            "the window. Server socket drops % = the server socket's `drops` (/proc/net/udp) "
            "in the window / (echoed + drops); RcvbufErrors % = the same with the machine-wide "
            "RcvbufErrors of /proc/net/snmp (client sockets included). Loopback UDP does the "
            "receiving side's kernel work in the sender's context, so the server's sys time "
            "includes delivering its echoes into the client sockets. Ratios are server / "
            f"{config.UDP_BASELINE}. Details: [bench/README.md](README.md)."]
    if s.notes or results.meta.get("rate_source"):
        md += ["", "Notes:", ""]
        md += [f"- {n}" for n in s.notes]
        if results.meta.get("rate"):
            md.append(f"- Scenario 7 rate: {results.meta['rate']:,} msgs/s "
                      f"({results.meta['rate_source']})")
    md += interference_lines(results)
    md += ["", "## Targets", ""] + targets_lines(tgts)
    bare = udp_vs_bare_lines(s, agg)
    if bare:
        md += ["", "### ringport-udp ÷ mmsg-udp (the bare recvmmsg/sendmmsg loop)", "",
               "How close ringport's UDP path comes to about the least a server can do per "
               "datagram without io_uring (medians; below 1× is less, above is more):", ""]
        md += bare
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
        "udp_vs_mmsg": {f"s{sid}": {k: ratio(agg, sid, "ringport-udp", k, to="mmsg-udp")
                                    for k in ("rate", "cpu_us", "syscalls", "p99_us")}
                        for sid in settings.scenarios if config.SCENARIOS[sid].udp},
        "rounds": results.rounds,
    }
    settings.json_out.parent.mkdir(parents=True, exist_ok=True)
    settings.json_out.write_text(json.dumps(data, indent=1, default=str) + "\n")
