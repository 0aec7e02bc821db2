"""Building the binaries, and finding out what the load tool and perf can do."""

import re
import subprocess

from . import config
from .util import log, warn

BUILD_TIMEOUT = 1200.0


def _cargo(args, cwd, what, log_dir):
    """Run one cargo build; True when it succeeded. Output goes to a log file."""
    log_file = log_dir / f"build-{what}.log"
    log(f"building {what}: cargo {' '.join(args)}  (log: {log_file})")
    try:
        with open(log_file, "w") as f:
            rc = subprocess.run(["cargo"] + args, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=BUILD_TIMEOUT).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        warn(f"building {what} failed: {e}")
        return False
    if rc != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-15:]
        warn(f"building {what} failed (exit {rc}):\n    " + "\n    ".join(tail))
        return False
    return True


def build_all(settings):
    """Build what the selected servers need. Returns notes for the report.

    A failed build leaves an existing binary in use (with a loud note); a missing
    binary makes that server's cells fail later.
    """
    notes = []
    wanted = [("ringport", ["build", "--release", "-p", "ringport-cli"], config.ROOT,
               config.RINGPORT_BIN)]
    if any(s not in ("ringport", "ringport-poll", "ringport-udp", config.BASE)
           for s in settings.servers):
        wanted.append(("bench/peers", ["build", "--release"], config.PEERS_DIR, config.PEER_BIN))
    for what, args, cwd, binary in wanted:
        if not settings.build:
            if not binary.exists():
                notes.append(f"--no-build and {binary.relative_to(config.ROOT)} is missing")
            continue
        if not _cargo(args, cwd, what.replace("/", "-"), settings.log_dir):
            if binary.exists():
                notes.append(f"building {what} FAILED; the existing binary "
                             f"{binary.relative_to(config.ROOT)} was used")
            else:
                notes.append(f"building {what} FAILED and there is no binary")
    # The load tool is always ringport's, even when ringport the server is not selected.
    if not config.RINGPORT_BIN.exists():
        raise SystemExit(f"no load tool: {config.RINGPORT_BIN} is missing")
    return notes


def bench_features():
    """The optional load-tool modes this ringport binary has, from `bench --help`."""
    try:
        text = subprocess.run([str(config.RINGPORT_BIN), "bench", "--help"], capture_output=True,
                              text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    flags = set(re.findall(r"--([a-z][a-z0-9-]*)", text))
    return {name: name in flags
            for name in ["rate", "churn", "churn-messages", "idle", "source-ip", "udp"]}


# What each scenario kind needs from the load tool.
KIND_NEEDS = {"load": [], "idle": ["idle"], "churn": ["churn", "churn-messages", "source-ip"],
              "rate": ["rate"], "udp": ["udp"]}


def missing_features(kind, features):
    return [f for f in KIND_NEEDS[kind] if not features.get(f)]
