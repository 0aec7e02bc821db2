"""The run: for each scenario, fresh server processes, then rounds interleaved across
servers (round 1 of every server, then round 2, ...), so a slow drift of the machine
does not land on one server only."""

import math
import re
import time

from . import config, measure
from .build import missing_features
from .procs import BenchRun, Server, ServerError, bench_argv
from .util import log, median, warn

# The load tool's per-second progress line on stderr: "[  1.0s] 123 msgs ...". Its
# elapsed time anchors the measured window: window start = arrival - elapsed.
_PROGRESS = re.compile(r"^\[\s*([0-9.]+)s\]\s+(\d+)\s")
_ALL_UP = re.compile(r"all (\d+) connections up after ([0-9.]+)\s*s")
# How long after the warm-up the first progress line may take (connects included)
# before the window start is estimated instead.
FIRST_TICK_GRACE = 4.0
# The sampled window ends at the last progress line at least this long before the
# measured window ends.
WINDOW_MARGIN = 0.25
# Shortest window worth sampling.
MIN_WINDOW = 0.3
# Load tool: connect wait 15 s + drain 5 s + shutdown 2 s + slack.
BENCH_SLACK = 35.0
# Other processes using more than this share of a pinned CPU in a window: a warning.
NOISE_PCT = 10.0
IDLE_UP_DEADLINE = 90.0
IDLE_SETTLE_DEADLINE = 5.0


class Results:
    """Every round of the run (the raw data of results.json), plus run-level facts."""

    def __init__(self):
        self.rounds = []
        self.meta = {}

    def add(self, scenario, server, rnd, ok, error=None, metrics=None, **raw):
        rec = {"scenario": scenario.id, "server": server, "round": rnd, "ok": ok,
               "error": error, "metrics": metrics or {}}
        rec.update(raw)
        self.rounds.append(rec)
        return rec

    def of(self, sid, server):
        return [r for r in self.rounds if r["scenario"] == sid and r["server"] == server]

    def median_metric(self, sid, server, key):
        return median([r["metrics"].get(key) for r in self.of(sid, server) if r["ok"]])


def _summary(rec, unit):
    if not rec["ok"]:
        return f"FAILED: {rec['error']}"
    m = rec["metrics"]
    if "bytes_per_conn" in m:
        return (f"{m['bytes_per_conn']:.0f} B/conn (RSS {m['rss_before_kib']} -> "
                f"{m['rss_after_kib']} KiB), all up after {m['all_up_secs']:.2f} s")
    parts = [f"{m['rate']:,.0f} {unit}s/s"]
    if m.get("user_us") is not None:
        parts.append(f"user {m['user_us']:.2f} sys {m['sys_us']:.2f} us/{unit}")
    if m.get("syscalls") is not None:
        parts.append(f"{m['syscalls']:.3f} syscalls/{unit}")
    if "lost_pct" in m:
        drops = m.get("server_drops")
        parts.append(f"loss {m['lost_pct']:.3f} %"
                     + ("" if drops is None else f" (server socket drops {drops:,})"))
    parts.append(f"p50 {m['p50_us']:.0f} p99 {m['p99_us']:.0f} us")
    return ", ".join(parts)


def _bench_problem(rc, report, timed_out, run):
    """Why a load-tool run failed, or None."""
    if timed_out:
        return "load tool timed out"
    if report is None:
        return f"load tool exit {rc}, no JSON report: {run.stderr_tail()}"
    errors = report.get("errors") or {}
    # "behind" (rate mode: sends skipped because the server fell behind the schedule)
    # is a result, reported in the table, not a failure of the run.
    fatal = {k: v for k, v in errors.items() if v and k != "behind"}
    if fatal:
        return "load tool counted errors: " + ", ".join(f"{k} {v}" for k, v in fatal.items())
    if rc != 0 and not errors.get("behind"):
        return f"load tool exit {rc}: {run.stderr_tail(3)}"
    return None


def _udp_problem(rc, report, timed_out, run):
    """Why a UDP load-tool run failed, or None. Only a changed echo (corrupt) or a run
    in which nothing came back fails it, as the load tool's own verdict does; lost,
    late and reordered datagrams are results."""
    if timed_out:
        return "load tool timed out"
    if report is None:
        return f"load tool exit {rc}, no JSON report: {run.stderr_tail()}"
    if report.get("corrupt"):
        return f"{report['corrupt']} datagrams came back changed"
    if not report.get("received"):
        return (f"no datagram came back ({report.get('sent')} sent, "
                f"{report.get('socket_errors')} socket errors)")
    if rc != 0:
        return f"load tool exit {rc}: {run.stderr_tail(3)}"
    return None


def _udp_metrics(report, window, units_per_sec):
    """A UDP round's loss figures: the load tool's (over its whole measured window) and
    the kernel's drops in the sampled window, as percent of the datagrams that reached
    (server socket) or were due at (RcvbufErrors, any socket) a receive buffer:
    drops / (echoed + drops)."""
    m = {"lost_pct": report.get("lost_percent"), "lost": report.get("lost"),
         "sent": report.get("sent"), "received": report.get("received"),
         "reordered": report.get("reordered"), "late": report.get("late"),
         "socket_errors": report.get("socket_errors")}
    counts = window.get("counters") or {}
    echoed = units_per_sec * window["proc_secs"]
    for key in ("server_drops", "rcvbuf_errors"):
        d = counts.get(key)
        m[key] = d
        m[key + "_pct"] = None if d is None or echoed + d <= 0 else 100.0 * d / (echoed + d)
    return m


# ---------------------------------------------------------------- measured rounds


def _tick(min_elapsed=0.0):
    """Matches a progress line at or after `min_elapsed`: (elapsed secs, count)."""
    def match(stream, line):
        m = _PROGRESS.match(line) if stream == "stderr" else None
        if m and float(m.group(1)) >= min_elapsed:
            return float(m.group(1)), int(m.group(2))
        return None
    return match


def _sample(run, window, settings):
    """Sample the server inside the load tool's measured window. Normally from the
    first progress line (1 s into the window) to the last whole second before the
    window ends, counting the units done in between from the two lines' totals; without
    progress lines, over a window estimated from the start time and the tool's rate."""
    duration = settings.duration
    first = run.wait_for(_tick(), run.t0 + settings.warmup + 1.0 + FIRST_TICK_GRACE)
    if first:
        t1, (e1, c1) = first
        start, anchor = t1 - e1, "progress lines"
    else:  # assume the connects took 0.3 s
        start, anchor = run.t0 + settings.warmup + 0.3, "estimated"
    window_end = start + duration
    last_tick = math.floor(duration - WINDOW_MARGIN)
    if not run.running():
        return None, "load tool ended before its window could be sampled"
    if window_end - WINDOW_MARGIN - time.monotonic() < MIN_WINDOW:
        return None, "window too short to sample"
    window.begin()
    last = None
    if first and last_tick >= e1 + 0.5:
        last = run.wait_for(_tick(last_tick - 0.05), window_end + 2.0)
    else:
        time.sleep(max(window_end - WINDOW_MARGIN - time.monotonic(), 0))
    running = run.running()
    raw = window.end()
    raw["anchor"] = anchor
    raw["inside"] = running and window.t_end <= window_end
    if last:
        _, (e2, c2) = last
        raw["ticks"] = [[e1, c1], [e2, c2]]
        raw["units_per_sec"] = (c2 - c1) / (e2 - e1)
    return raw, None


def measured_round(server, sc, settings, perf, extra):
    """One round of a load, churn or rate scenario against a running server: the load
    tool runs warm-up + window; the server is sampled inside the window."""
    # perf attaches (counters off) while the load tool connects and warms up.
    session, perf_error = perf.session(server.pid)
    counters = (lambda: measure.udp_counters(server.port)) if sc.udp else None
    run_counters = counters() if counters else None
    run = BenchRun(bench_argv(server.addr, "--connections", sc.connections, "--size", sc.size,
                              "--pipeline", sc.pipeline, "--duration", settings.duration,
                              "--warmup", settings.warmup, *extra, udp=sc.udp))
    try:
        window, note = _sample(run, measure.Window(server.pid, session, run.proc.pid,
                                                   counters), settings)
    except OSError as e:  # the server went away
        window, note = None, f"sampling the server failed: {e}"
    finally:
        if session:
            session.close()
    if window is not None:
        window["perf_error"] = window["perf_error"] or perf_error
    budget = settings.warmup + settings.duration + BENCH_SLACK
    rc, report, timed_out = run.finish(run.t0 + budget - time.monotonic())
    problem = (_udp_problem if sc.udp else _bench_problem)(rc, report, timed_out, run)
    if problem is None and not server.alive():
        problem = f"server died (exit {server.exit_status()}): {server.log_tail()}"
    if problem is None and window is None:
        problem = note
    raw = {"bench": report, "window": window, "argv": run.argv[3:]}
    if run_counters is not None:
        # The whole load-tool run (warm-up and drain included), for the record.
        raw["run_counters"] = measure.counter_deltas(run_counters, counters())
    if problem:
        return False, problem, {}, raw
    rate = {"churn": report.get("connections_per_sec"),
            "udp": report.get("datagrams_per_sec")}.get(sc.kind, report.get("msgs_per_sec"))
    if not rate:
        return False, "load tool reported no throughput", {}, raw
    metrics = {"rate": rate, "p50_us": report["latency_us"]["p50"],
               "p99_us": report["latency_us"]["p99"]}
    metrics.update(measure.per_unit(window, window.get("units_per_sec") or rate))
    # /proc reports CPU time in clock ticks: few ticks mean a coarse figure.
    metrics["user_ticks"] = round(window["user_secs"] * measure.CLK_TCK)
    if sc.kind == "rate":
        metrics["target_rate"] = report.get("target_rate")
        metrics["behind"] = (report.get("errors") or {}).get("behind", 0)
    if sc.kind == "churn":
        metrics["msgs_per_sec"] = report.get("msgs_per_sec")
    if sc.udp:
        metrics.update(_udp_metrics(report, window, window.get("units_per_sec") or rate))
    if not window["inside"]:
        warn(f"{server.name}: the sampled window overran the load tool's measured window")
    noisy = [f"CPU {cpu} {metrics[key]:.0f} %" for cpu, key in
             [(config.SERVER_CPU, "other_cpu0_pct"), (config.LOAD_CPU, "other_cpu1_pct")]
             if (metrics.get(key) or 0) > NOISE_PCT]
    if noisy:
        warn(f"{server.name}: other work on the pinned CPUs in the window: {', '.join(noisy)}")
    return True, None, metrics, raw


def run_measured_scenario(sc, settings, perf, results, extra, tag, names):
    """Fresh server processes for `sc` (servers `names`), then the rounds interleaved
    across them."""
    servers, failed = {}, {}
    for name in names:
        srv = Server(name, settings.log_dir, tag)
        try:
            servers[name] = srv.start()
        except ServerError as e:
            srv.stop()
            failed[name] = f"server failed to start: {e}"
            warn(f"s{sc.id} {name}: {failed[name]}")
    try:
        for rnd in range(1, settings.rounds + 1):
            for name in names:
                if name in failed:
                    results.add(sc, name, rnd, False, failed[name])
                    continue
                srv = servers[name]
                if not srv.alive():
                    failed[name] = f"server not running (exit {srv.exit_status()}): {srv.log_tail()}"
                    results.add(sc, name, rnd, False, failed[name])
                    continue
                ok, err, metrics, raw = measured_round(srv, sc, settings, perf, extra)
                rec = results.add(sc, name, rnd, ok, err, metrics, **raw)
                log(f"s{sc.id} round {rnd}/{settings.rounds} {name:8s} {_summary(rec, sc.unit)}")
    finally:
        for srv in servers.values():
            srv.stop()
            if sc.udp:
                _log_udp_server_stats(sc, srv)


def _log_udp_server_stats(sc, srv):
    """ringport udp-echo prints its final stats on shutdown: surface the anomalies
    (e.g. io_uring buffer-group exhaustion, `enobufs`) in the console log."""
    for line in srv.log_text().splitlines():
        if line.strip().startswith(("anomalies", "datagrams")):
            log(f"s{sc.id} {srv.name} final stats: {' '.join(line.split())}")


# ---------------------------------------------------------------- idle (scenario 5)


def idle_round(name, sc, settings, tag):
    """A fresh server (so its RSS baseline is clean), then the load tool holds
    `sc.connections` idle connections; RSS is read once all are up and accepted."""
    srv = Server(name, settings.log_dir, tag)
    try:
        srv.start()
    except ServerError as e:
        srv.stop()
        return False, f"server failed to start: {e}", {}, {}
    try:
        time.sleep(0.3)
        rss_before = measure.proc_rss_kib(srv.pid)
        run = BenchRun(bench_argv(srv.addr, "--idle", sc.connections,
                                  "--duration", settings.idle_hold))

        def all_up(stream, line):
            m = _ALL_UP.search(line)
            return (int(m.group(1)), float(m.group(2))) if m else None

        got = run.wait_for(all_up, run.t0 + IDLE_UP_DEADLINE)
        rss_after, backlog = None, None
        if got and srv.alive():
            # Connected at the client is not yet accepted by the server: wait for the
            # listener's accept queue to drain, then give the server a moment.
            deadline = time.monotonic() + IDLE_SETTLE_DEADLINE
            while time.monotonic() < deadline:
                backlog = measure.accept_queue(srv.port)
                if not backlog:
                    break
                time.sleep(0.05)
            time.sleep(0.2)
            rss_after = measure.proc_rss_kib(srv.pid)
        rc, report, timed_out = run.finish(settings.idle_hold + BENCH_SLACK)
        raw = {"bench": report, "argv": run.argv[3:], "accept_queue_left": backlog}
        problem = _bench_problem(rc, report, timed_out, run)
        if problem is None and not srv.alive():
            problem = f"server died (exit {srv.exit_status()}): {srv.log_tail()}"
        if problem is None and got is None:
            problem = "no `all N connections up` line from the load tool"
        up, up_secs = got[1] if got else (0, None)
        if problem is None and up != sc.connections:
            problem = f"only {up} of {sc.connections} connections came up"
        if problem is None and rss_after is None:
            problem = "server RSS could not be read with the connections up"
        if problem:
            return False, problem, {}, raw
        metrics = {"rss_before_kib": rss_before, "rss_after_kib": rss_after,
                   "bytes_per_conn": (rss_after - rss_before) * 1024.0 / sc.connections,
                   "all_up_secs": up_secs, "connections": up}
        return True, None, metrics, raw
    finally:
        srv.stop()


def run_idle_scenario(sc, settings, results, tag, names):
    for rnd in range(1, settings.rounds + 1):
        for name in names:
            ok, err, metrics, raw = idle_round(name, sc, settings, f"{tag}-r{rnd}")
            rec = results.add(sc, name, rnd, ok, err, metrics, **raw)
            log(f"s{sc.id} round {rnd}/{settings.rounds} {name:8s} {_summary(rec, sc.unit)}")


# ---------------------------------------------------------------- the whole run


def scenario_rate(settings, perf, results):
    """Scenario 7's rate: --rate, else half of tokio's scenario-2 median msgs/s (from
    this run, or from a one-round calibration when scenario 2 did not run for tokio)."""
    if settings.rate:
        results.meta["rate_source"] = "--rate"
        return settings.rate
    ref = config.SCENARIOS[config.RATE_REFERENCE_SCENARIO]
    peak = results.median_metric(ref.id, "tokio", "rate")
    source = f"half of tokio's scenario-{ref.id} median"
    if peak is None:
        log(f"s7: no tokio scenario-{ref.id} result; calibrating with one tokio round")
        srv = Server("tokio", settings.log_dir, "calibration")
        try:
            srv.start()
            ok, err, metrics, _ = measured_round(srv, ref, settings, perf, [])
            peak = metrics.get("rate") if ok else None
            if not ok:
                warn(f"calibration failed: {err}")
        except ServerError as e:
            warn(f"calibration: tokio failed to start: {e}")
        finally:
            srv.stop()
        source += " (one-round calibration)"
    if peak is None:
        return None
    results.meta["rate_source"] = f"{source}: {peak:,.0f} msgs/s"
    return round(peak / 2)


def run_all(settings, perf, features, results):
    for sid in settings.scenarios:
        sc = config.SCENARIOS[sid]
        tag = f"s{sid}"
        names = config.servers_for(sc, settings.servers)
        log(f"--- scenario {sid}: {sc.title} ({', '.join(names)})")
        missing = missing_features(sc.kind, features)
        extra, reason = [], None
        if missing:
            reason = "load tool lacks " + ", ".join("--" + m for m in missing)
        elif sc.kind == "churn":
            extra = ["--churn", "--churn-messages", "1"]
            for ip in config.CHURN_SOURCE_IPS:
                extra += ["--source-ip", ip]
        elif sc.kind == "rate":
            rate = scenario_rate(settings, perf, results)
            if rate is None:
                reason = "no rate: tokio's scenario-2 peak is unknown"
            else:
                results.meta["rate"] = rate
                log(f"s7 rate: {rate:,} msgs/s ({results.meta['rate_source']})")
                extra = ["--rate", rate]
        if reason:
            warn(f"s{sid}: {reason}")
            for rnd in range(1, settings.rounds + 1):
                for name in names:
                    results.add(sc, name, rnd, False, reason)
        elif sc.kind == "idle":
            run_idle_scenario(sc, settings, results, tag, names)
        else:
            run_measured_scenario(sc, settings, perf, results, extra, tag, names)
