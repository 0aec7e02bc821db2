"""Small shared helpers: console output, medians."""

import statistics
import sys
import time

_START = time.monotonic()


def _stamp():
    secs = int(time.monotonic() - _START)
    return f"[{secs // 60:02d}:{secs % 60:02d}]"


def log(msg):
    print(f"{_stamp()} {msg}", flush=True)


def warn(msg):
    print(f"{_stamp()} WARNING: {msg}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def tail_lines(lines, n=12):
    return [line.rstrip("\n") for line in lines[-n:]]
