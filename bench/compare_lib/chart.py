"""results.png: grouped bars per server, one panel per question. matplotlib is the one
non-stdlib dependency; without it (and without pip to install it) the chart is skipped."""

import subprocess
import sys

from . import config
from .report import ratio, value
from .util import log, warn

COLORS = {"ringport": "#d62728", "ringport-base": "#ff9896", "ringport-poll": "#e377c2",
          "tokio": "#1f77b4", "monoio": "#2ca02c", "threads": "#7f7f7f", "uring": "#ff7f0e",
          "ringport-udp": "#d62728", "tokio-udp": "#1f77b4", "mmsg-udp": "#ff7f0e"}
# Bars drawn with a black edge: ringport's own.
OURS = ("ringport", "ringport-udp")
SHORT = {1: "S1 1 conn", 2: "S2 100 conn", 3: "S3 100 conn\npipeline 16",
         4: "S4 1000 conn\n512 B", 6: "S6 churn\n(conns/s)",
         8: "S8 UDP 64 B", 9: "S9 UDP 64 B\npipeline 16", 10: "S10 UDP 1,200 B",
         11: "S11 UDP 1,200 B\npipeline 16"}


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        log("matplotlib is missing: pip install matplotlib")
        try:
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
            import matplotlib
        except (ImportError, OSError, subprocess.SubprocessError) as e:
            warn(f"no matplotlib ({e}); skipping the chart")
            return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _bars(ax, groups, labels, servers, get, fmt, log_scale=False):
    """Grouped bars: one group per x label, one bar per server; value labels on top.
    Returns how many bars were drawn."""
    drawn = 0
    width = 0.8 / max(len(servers), 1)
    for i, server in enumerate(servers):
        xs, ys = [], []
        for g, key in enumerate(groups):
            v = get(key, server)
            if v is not None and (v > 0 or not log_scale):
                xs.append(g + (i - (len(servers) - 1) / 2) * width)
                ys.append(v)
        bars = ax.bar(xs, ys, width, label=server, color=COLORS.get(server),
                      edgecolor="black" if server in OURS else "none", linewidth=0.8)
        drawn += len(ys)
        for b, v in zip(bars, ys):
            ax.annotate(fmt(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=6.5, rotation=90,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(labels, fontsize=8)
    if log_scale:
        ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.grid(axis="y", alpha=0.3)
    if not drawn:
        _empty(ax)
    return drawn


def _empty(ax):
    ax.cla()
    ax.text(0.5, 0.5, "not run / no data", ha="center", va="center", transform=ax.transAxes,
            fontsize=12, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _cpu_panel(ax, core, servers, agg, baseline="tokio", unit="message"):
    """User (solid) + sys (hatched) CPU per message, each scenario scaled to the
    baseline's total, so scenarios of very different cost share one axis."""
    width = 0.8 / max(len(servers), 1)
    drawn = 0
    for i, srv in enumerate(servers):
        for g, sid in enumerate(core):
            base = value(agg, sid, baseline, "cpu_us")
            user, sys_ = value(agg, sid, srv, "user_us"), value(agg, sid, srv, "sys_us")
            if not base or user is None or sys_ is None:
                continue
            x = g + (i - (len(servers) - 1) / 2) * width
            u, s = user / base, sys_ / base
            ax.bar(x, u, width, color=COLORS.get(srv))
            ax.bar(x, s, width, bottom=u, color=COLORS.get(srv), alpha=0.35, hatch="//",
                   edgecolor="white", linewidth=0)
            ax.annotate(f"{u + s:.2f}", (x, u + s), ha="center", va="bottom", fontsize=6.5,
                        rotation=90, xytext=(0, 2), textcoords="offset points")
            drawn += 1
    ax.set_xticks(range(len(core)))
    ax.set_xticklabels([SHORT[s] for s in core], fontsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_title(f"server CPU per {unit} ÷ {baseline}'s: user (solid) + sys (hatched), "
                 "lower is better", fontsize=10)
    ax.set_ylabel(f"CPU µs/{unit} ÷ {baseline}'s user+sys")
    ax.margins(y=0.2)
    ax.grid(axis="y", alpha=0.3)
    if not drawn:
        _empty(ax)


def write_chart(settings, agg, results):
    plt = _matplotlib()
    if plt is None:
        return False
    have = set(settings.scenarios)
    tcp_servers = [s for s in settings.servers if s not in config.UDP_SERVERS]
    udp_servers = [s for s in settings.servers if s in config.UDP_SERVERS]
    tcp = any(not config.SCENARIOS[s].udp for s in have) and tcp_servers
    udp = [s for s in config.UDP_SCENARIOS if s in have] if udp_servers else []
    rows = (3 if tcp else 0) + (2 if udp else 0)
    fig, axes = plt.subplots(rows, 2, figsize=(14, 4.3 * rows + 0.5), squeeze=False)
    title = "ringport vs reference echo servers (medians)"
    if settings.quick:
        title += " — QUICK RUN"
    fig.suptitle(title, fontsize=14)
    if tcp:
        _tcp_panels(axes, tcp_servers, have, agg, results)
    if udp:
        _udp_panels(axes[3 if tcp else 0:], udp_servers, udp, agg)

    from matplotlib.patches import Patch
    shown = (tcp_servers if tcp else []) + (udp_servers if udp else [])
    handles = [Patch(facecolor=COLORS.get(s), edgecolor="black" if s in OURS else "none",
                     label=s) for s in shown]
    fig.legend(handles=handles, loc="lower center", ncol=len(shown), fontsize=11,
               frameon=False)
    fig.tight_layout(rect=(0, 0.035 * 3 / rows, 1, 1 - 0.03 * 3 / rows))
    settings.chart_out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(settings.chart_out, dpi=100)
    plt.close(fig)
    return True


def _udp_panels(axes, servers, sids, agg):
    """Two rows: datagrams/s and CPU per datagram relative to tokio-udp; syscalls per
    datagram and loss."""
    base = config.UDP_BASELINE
    labels = [SHORT[s] for s in sids]
    ax = axes[0][0]
    if _bars(ax, sids, labels, servers, lambda s, srv: ratio(agg, s, srv, "rate"),
             lambda v: f"{v:.2f}"):
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_title(f"UDP datagrams/s relative to {base} (higher is better)")
    ax.set_ylabel(f"datagrams/s ÷ {base}'s")
    _cpu_panel(axes[0][1], sids, servers, agg, baseline=base, unit="datagram")
    ax = axes[1][0]
    _bars(ax, sids, labels, servers, lambda s, srv: value(agg, s, srv, "syscalls"),
          lambda v: f"{v:.3g}", log_scale=True)
    ax.set_title("UDP server syscalls per datagram (log scale, lower is better)")
    ax.set_ylabel("syscalls / datagram")
    ax = axes[1][1]
    _bars(ax, sids, labels, servers, lambda s, srv: value(agg, s, srv, "p99_us"),
          lambda v: f"{v:.0f}", log_scale=True)
    ax.set_title("UDP p99 latency (µs, log scale, lower is better)")
    ax.set_ylabel("p99 µs")


def _tcp_panels(axes, servers, have, agg, results):
    """Three rows: throughput and CPU per message relative to tokio; syscalls and user
    CPU per message; idle memory, churn cost and the fixed-rate latency."""
    thr = [s for s in (1, 2, 3, 4, 6) if s in have]
    ax = axes[0][0]
    if _bars(ax, thr, [SHORT[s] for s in thr], servers,
             lambda s, srv: ratio(agg, s, srv, "rate"), lambda v: f"{v:.2f}"):
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_title("throughput relative to tokio (higher is better)")
    ax.set_ylabel("msgs/s ÷ tokio's")

    core = [s for s in (2, 3, 4) if s in have]
    _cpu_panel(axes[0][1], core, servers, agg)

    ax = axes[1][0]
    _bars(ax, core, [SHORT[s] for s in core], servers,
          lambda s, srv: value(agg, s, srv, "syscalls"), lambda v: f"{v:.3g}", log_scale=True)
    ax.set_title("server syscalls per message (log scale, lower is better)")
    ax.set_ylabel("syscalls / message")

    ax = axes[1][1]
    if _bars(ax, core, [SHORT[s] for s in core], servers,
             lambda s, srv: ratio(agg, s, srv, "user_us"), lambda v: f"{v:.2f}"):
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_title("user CPU per message relative to tokio (lower is better)")
    ax.set_ylabel("user µs/msg ÷ tokio's")

    ax = axes[2][0]
    groups = [k for k in ("s5", "s6") if int(k[1]) in have]
    labels = {"s5": "S5 RSS bytes per\nidle connection", "s6": "S6 churn\nsyscalls per connection"}
    keys = {"s5": (5, "bytes_per_conn"), "s6": (6, "syscalls")}
    _bars(ax, groups, [labels[g] for g in groups], servers,
          lambda g, srv: value(agg, keys[g][0], srv, keys[g][1]), lambda v: f"{v:.3g}",
          log_scale=True)
    ax.set_title("idle memory and churn cost (log scale, lower is better)")

    ax = axes[2][1]
    groups = [k for k in ("p50_us", "p99_us") if 7 in have]
    _bars(ax, groups, ["p50", "p99"][:len(groups)], servers,
          lambda k, srv: value(agg, 7, srv, k), lambda v: f"{v:.0f}", log_scale=True)
    rate = results.meta.get("rate")
    ax.set_title(f"S7 latency at a fixed {rate:,} msgs/s (µs, log, lower is better)" if rate
                 else "S7 latency at a fixed rate (µs, log)")
