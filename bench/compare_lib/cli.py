"""The entry point: settings, preparation, the run, the output files."""

import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import build, chart, config, measure, procs, report, runner
from .util import log, warn


def _prepare(settings):
    """Process-wide setup: pin this script off the server CPU, raise the fd limit."""
    try:
        os.sched_setaffinity(0, {config.LOAD_CPU})
    except OSError as e:
        warn(f"cannot pin this script to CPU {config.LOAD_CPU}: {e}")
    soft, hard = procs.raise_nofile_limit()
    need = max(sc.connections for sc in config.SCENARIOS.values()) + 1000
    if soft < need:
        settings.notes.append(f"open-file limit {soft} < {need}: scenario 5 may fail")
        warn(settings.notes[-1])
    if os.cpu_count() is None or os.cpu_count() < 2:
        raise SystemExit("needs at least 2 CPUs (server on CPU 0, load tool on CPU 1)")
    tw = report._read("/proc/sys/net/ipv4/tcp_tw_reuse")
    if tw == "0" and 6 in settings.scenarios:
        settings.notes.append("net.ipv4.tcp_tw_reuse = 0: churn may run out of ports")
        warn(settings.notes[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    settings = config.parse_args(argv)
    settings.command_line = shlex.join([sys.argv[0]] + argv)
    settings.log_dir = Path(tempfile.mkdtemp(prefix="ringport-compare-"))
    # SIGTERM ends the run like Ctrl-C does: children are stopped in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    _prepare(settings)
    log(f"logs in {settings.log_dir}")
    started = time.monotonic()
    settings.notes += build.build_all(settings)
    features = build.bench_features()
    perf = measure.Perf()
    if not perf.available:
        warn(f"no syscall counts: {perf.reason}")
    est = settings.estimate_secs()
    log(f"servers {','.join(settings.servers)}; scenarios "
        f"{','.join(map(str, settings.scenarios))}; {settings.rounds} round(s) of "
        f"{settings.warmup:g}+{settings.duration:g} s; expected ~{est / 60:.0f} min")
    absent = [f"--{k}" for k, v in features.items() if not v]
    if absent:
        warn(f"this ringport bench lacks {', '.join(absent)}: scenarios needing them fail")

    results = runner.Results()
    interrupted = False
    try:
        runner.run_all(settings, perf, features, results)
    except KeyboardInterrupt:
        interrupted = True
        warn("interrupted: writing what was measured so far")
        settings.notes.append("the run was INTERRUPTED; missing cells were not measured")
    finally:
        procs.stop_all()

    results.meta["elapsed_secs"] = round(time.monotonic() - started, 1)
    env = report.environment(perf)
    agg = report.aggregate(settings, results)
    tgts = report.targets(agg, settings.scenarios)
    report.write_json(settings, env, results, agg, tgts)
    try:
        chart_ok = chart.write_chart(settings, agg, results)
    except Exception as e:  # a chart problem must not lose the results
        warn(f"chart failed: {e!r}")
        chart_ok = False
    report.write_markdown(settings, env, results, agg, tgts, chart_ok)
    log(f"wrote {settings.out}, {settings.json_out}"
        + (f", {settings.chart_out}" if chart_ok else "")
        + f" in {results.meta['elapsed_secs'] / 60:.1f} min")
    print("\n## Targets\n\n" + "\n".join(report.targets_lines(tgts)))
    return 130 if interrupted else 0
