"""Scenarios, servers, and the run settings taken from the command line."""

import argparse
import shlex
import os
from dataclasses import dataclass, field
from pathlib import Path

# Repository root: bench/compare_lib/config.py -> ../..
ROOT = Path(__file__).resolve().parent.parent.parent

RINGPORT_BIN = ROOT / "target" / "release" / "ringport"
PEERS_DIR = ROOT / "bench" / "peers"
PEER_BIN = PEERS_DIR / "target" / "release" / "peer-echo"

# The server runs alone on CPU 0; the load tool, perf and this script on CPU 1.
SERVER_CPU = 0
LOAD_CPU = 1

LISTEN = "127.0.0.1:0"
# Loopback source addresses for the churn scenario, so its TIME_WAIT sockets
# spread over several (source IP, port) spaces instead of exhausting one.
CHURN_SOURCE_IPS = [f"127.0.0.{i}" for i in range(2, 10)]
# Concurrent connect/echo/close loops in the churn scenario.
CHURN_CONNECTIONS = 50

# TCP echo servers (scenarios 1-7) and UDP echo servers (scenarios 8-11).
SERVERS = ["ringport", "ringport-poll", "tokio", "monoio", "threads", "uring"]
UDP_SERVERS = ["ringport-udp", "tokio-udp", "mmsg-udp"]
ALL_SERVERS = SERVERS + UDP_SERVERS
# An older ringport build to compare against (`--ringport-base PATH`), as its own column.
BASE = "ringport-base"
RINGPORT_BASE_BIN = None
RINGPORT_BASE_ARGS = []
BASELINE = "tokio"  # every TCP ratio is "server / tokio"
UDP_BASELINE = "tokio-udp"  # every UDP ratio is "server / tokio-udp"
# SO_RCVBUF and SO_SNDBUF of every UDP server's socket (`--udp-socket-buffer`; 0: the
# kernel's defaults). The default receive buffer (net.core.rmem_default, 212,992 B here)
# holds about 92 datagrams of 1,200 B, and 100 sockets x 16 in flight is 1,600: every
# server would drop. 4 MiB (= net.core.rmem_max here; the kernel doubles it) holds them.
UDP_SOCKET_BUFFER = 4 << 20


def server_argv(name):
    """The command (without taskset) that starts echo server `name` on a fresh port."""
    buffer = ["--socket-buffer", str(UDP_SOCKET_BUFFER)] if UDP_SOCKET_BUFFER else []
    if name == "ringport-udp":
        return [str(RINGPORT_BIN), "udp-echo", "--listen", LISTEN, "--workers", "1",
                "--backend", "uring"] + buffer
    if name in UDP_SERVERS:
        return [str(PEER_BIN), name, "--listen", LISTEN] + buffer
    if name == "ringport":
        return [str(RINGPORT_BIN), "echo-server", "--listen", LISTEN, "--workers", "1",
                "--backend", "uring"]
    if name == "ringport-poll":
        return [str(RINGPORT_BIN), "echo-server", "--listen", LISTEN, "--workers", "1",
                "--backend", "poll"]
    if name == BASE:
        # No --backend: a base older than the readiness backend lacks the flag; it runs
        # on its default (io_uring where available).
        return ([str(RINGPORT_BASE_BIN), "echo-server", "--listen", LISTEN, "--workers", "1"]
                + RINGPORT_BASE_ARGS)
    return [str(PEER_BIN), name, "--listen", LISTEN]


@dataclass(frozen=True)
class Scenario:
    id: int
    kind: str  # "load" (closed loop) | "idle" | "churn" | "rate" (open loop) | "udp"
    title: str
    connections: int
    size: int = 64
    pipeline: int = 1

    @property
    def unit(self):
        """What the per-unit metrics (CPU, syscalls) are divided by."""
        return {"churn": "conn", "udp": "datagram"}.get(self.kind, "msg")

    @property
    def udp(self):
        return self.kind == "udp"

    @property
    def baseline(self):
        """The server every ratio of this scenario is relative to."""
        return UDP_BASELINE if self.udp else BASELINE


SCENARIOS = {
    s.id: s
    for s in [
        Scenario(1, "load", "1 connection, 64 B, pipeline 1", 1, 64, 1),
        Scenario(2, "load", "100 connections, 64 B, pipeline 1", 100, 64, 1),
        Scenario(3, "load", "100 connections, 64 B, pipeline 16", 100, 64, 16),
        Scenario(4, "load", "1000 connections, 512 B, pipeline 1", 1000, 512, 1),
        Scenario(5, "idle", "10,000 idle connections: server RSS per connection", 10000),
        Scenario(
            6,
            "churn",
            f"churn: connect, one 64 B echo, close ({CHURN_CONNECTIONS} concurrent loops, "
            f"{len(CHURN_SOURCE_IPS)} source IPs)",
            CHURN_CONNECTIONS,
        ),
        Scenario(7, "rate", "fixed rate (half of tokio's scenario-2 median), 100 connections, 64 B", 100),
        # UDP echo (closed loop): `ringport bench --udp`, 100 client sockets.
        Scenario(8, "udp", "UDP: 100 sockets, 64 B datagrams, pipeline 1", 100, 64, 1),
        Scenario(9, "udp", "UDP: 100 sockets, 64 B datagrams, pipeline 16", 100, 64, 16),
        Scenario(10, "udp", "UDP: 100 sockets, 1,200 B datagrams, pipeline 1", 100, 1200, 1),
        Scenario(11, "udp", "UDP: 100 sockets, 1,200 B datagrams, pipeline 16", 100, 1200, 16),
    ]
}
UDP_SCENARIOS = [sid for sid, sc in SCENARIOS.items() if sc.udp]


def servers_for(sc, selected):
    """The servers of `selected` that scenario `sc` runs: UDP servers for a UDP
    scenario, TCP servers (and the ringport base) otherwise; in `selected`'s order."""
    wanted = UDP_SERVERS if sc.udp else SERVERS + [BASE]
    return [s for s in selected if s in wanted]

# The rate of scenario 7 is derived from this scenario's tokio median.
RATE_REFERENCE_SCENARIO = 2


@dataclass
class Settings:
    quick: bool
    rounds: int
    duration: float  # measured window of every bench run (load, churn, rate)
    warmup: float  # bench --warmup before every measured window
    idle_hold: float  # how long scenario 5 holds its connections (bench --duration)
    servers: list
    scenarios: list
    out: Path
    json_out: Path
    chart_out: Path
    rate: float = None  # explicit rate for scenario 7 (default: derived)
    build: bool = True
    command_line: str = ""
    log_dir: Path = None
    notes: list = field(default_factory=list)

    def estimate_secs(self):
        """A rough wall-clock estimate of the whole run (excluding builds)."""
        per_round = self.warmup + self.duration + 1.2  # connect, drain, shutdown, start
        idle_round = self.idle_hold + 4.0  # 10k connects, RSS settle, closes
        total = 0.0
        for sid in self.scenarios:
            sc = SCENARIOS[sid]
            per = idle_round if sc.kind == "idle" else per_round
            if sc.udp:
                per += 1.0  # the load tool's drain: up to its 1 s loss timeout
            total += per * self.rounds * len(servers_for(sc, self.servers))
        return total


def _csv_ints(text):
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {e}")


def _csv_names(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv):
    global UDP_SOCKET_BUFFER  # noqa: PLW0603 (set once, from the command line)
    p = argparse.ArgumentParser(
        prog="bench/compare",
        description="Run every benchmark scenario against ringport and the reference "
        "echo servers (bench/peers); write RESULTS.md, results.json and results.png.",
    )
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 round, 4 s windows, 1 s warm-up (about 4 minutes)")
    p.add_argument("--rounds", type=int, help="rounds per scenario and server (default 3; quick 1)")
    p.add_argument("--duration", type=float, metavar="SECS",
                   help="measured window per round (default 10; quick 4)")
    p.add_argument("--warmup", type=float, metavar="SECS",
                   help="warm-up before each measured window (default 2; quick 1)")
    p.add_argument("--idle-hold", type=float, metavar="SECS",
                   help="how long scenario 5 holds its idle connections (default 3; quick 2)")
    p.add_argument("--servers", type=_csv_names, default=list(ALL_SERVERS),
                   help=f"comma-separated subset of {','.join(ALL_SERVERS)} (TCP scenarios "
                   f"run the TCP ones, UDP scenarios {','.join(UDP_SERVERS)})")
    p.add_argument("--scenarios", type=_csv_ints,
                   help=f"comma-separated scenario numbers (1-{max(SCENARIOS)}; UDP: "
                   f"{','.join(map(str, UDP_SCENARIOS))}; default: every scenario one of "
                   "the selected servers runs)")
    p.add_argument("--udp-socket-buffer", type=int, metavar="BYTES", default=UDP_SOCKET_BUFFER,
                   help="SO_RCVBUF/SO_SNDBUF of every UDP server's socket (default "
                   f"{UDP_SOCKET_BUFFER}; 0: the kernel's defaults)")
    p.add_argument("--rate", type=float, metavar="MSGS_PER_SEC",
                   help="scenario 7 rate (default: half of tokio's scenario-2 median msgs/s)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md",
                   help="the Markdown report (results.json and results.png go next to it)")
    p.add_argument("--ringport-base", type=Path, metavar="PATH",
                   help="also run this ringport binary (an older build) as server "
                   f"'{BASE}': an A/B of two ringport versions on the same load")
    p.add_argument("--ringport-base-args", metavar="ARGS", default="",
                   help="extra echo-server arguments for the base, e.g. \"--backend poll\"")
    p.add_argument("--no-build", action="store_true",
                   help="do not run cargo build (use the binaries as they are)")
    args = p.parse_args(argv)

    unknown = [s for s in args.servers if s not in ALL_SERVERS]
    if unknown or not args.servers:
        p.error(f"unknown servers {unknown}; choose from {','.join(ALL_SERVERS)}")
    explicit = args.scenarios is not None
    if not explicit:
        args.scenarios = [sid for sid, sc in sorted(SCENARIOS.items())
                          if servers_for(sc, args.servers + [BASE] * bool(args.ringport_base))]
    bad = [s for s in args.scenarios if s not in SCENARIOS]
    if bad or not args.scenarios:
        p.error(f"unknown scenarios {bad}; choose from 1-{max(SCENARIOS)}")

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    rounds = pick(args.rounds, 3, 1)
    duration = pick(args.duration, 10.0, 4.0)
    warmup = pick(args.warmup, 2.0, 1.0)
    idle_hold = pick(args.idle_hold, 3.0, 2.0)
    if rounds < 1 or duration < 2.0 or warmup < 0 or idle_hold < 0.5:
        p.error("need --rounds >= 1, --duration >= 2, --warmup >= 0, --idle-hold >= 0.5")
    if args.udp_socket_buffer < 0:
        p.error("--udp-socket-buffer must be 0 (kernel defaults) or a number of bytes")
    UDP_SOCKET_BUFFER = args.udp_socket_buffer

    out = args.out if args.out.is_absolute() else Path(os.getcwd()) / args.out
    # Keep the servers' listed order, scenarios in numeric order (2 before 7).
    servers = [s for s in ALL_SERVERS if s in args.servers]
    if args.ringport_base is not None:
        global RINGPORT_BASE_BIN  # noqa: PLW0603 (set once, from the command line)
        if not args.ringport_base.is_file():
            p.error(f"--ringport-base {args.ringport_base}: no such file")
        RINGPORT_BASE_BIN = args.ringport_base.resolve()
        RINGPORT_BASE_ARGS.extend(shlex.split(args.ringport_base_args))
        servers.insert(1, BASE)
    settings = Settings(
        quick=args.quick,
        rounds=rounds,
        duration=duration,
        warmup=warmup,
        idle_hold=idle_hold,
        servers=servers,
        scenarios=sorted(set(args.scenarios)),
        out=out,
        # RESULTS.md -> results.json, results.png; RESULTS-udp.md -> results-udp.json, ...
        json_out=out.with_name(out.stem.lower() + ".json"),
        chart_out=out.with_name(out.stem.lower() + ".png"),
        rate=args.rate,
        build=not args.no_build,
    )
    if RINGPORT_BASE_BIN is not None:
        settings.notes.append(f"{BASE} is {shlex.join(server_argv(BASE))}")
    for sid in settings.scenarios:
        if not servers_for(SCENARIOS[sid], servers):
            kind = "UDP" if SCENARIOS[sid].udp else "TCP"
            p.error(f"scenario {sid} is a {kind} scenario and none of its servers is selected")
    return settings
