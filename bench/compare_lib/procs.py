"""Child processes: echo servers pinned to the server CPU, load-tool runs pinned to the
load CPU. Every child is registered so an interrupted run still stops them all."""

import json
import os
import queue
import re
import resource
import signal
import subprocess
import threading
import time

from . import config

SERVER_START_DEADLINE = 10.0
SERVER_STOP_DEADLINE = 6.0  # ringport's graceful shutdown deadline is 5 s
_LISTENING = re.compile(r"listening on (\S+)")

_live = set()  # Popen objects still to be stopped


def raise_nofile_limit():
    """Raise the soft open-file limit to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _kill_group(proc, deadline):
    """SIGTERM, then SIGKILL after `deadline` seconds. Every child runs in its own
    session, so the whole group (taskset's exec'd program and anything it forked) goes."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    _live.discard(proc)


def stop_all():
    for proc in list(_live):
        _kill_group(proc, 2.0)


class ServerError(Exception):
    pass


class Server:
    """One echo-server process on CPU 0, on a fresh port. Its output goes to a log file."""

    def __init__(self, name, log_dir, tag):
        self.name = name
        self.log_path = log_dir / f"server-{tag}-{name}.log"
        self.proc = None
        self.addr = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        argv = ["taskset", "-c", str(config.SERVER_CPU)] + config.server_argv(self.name)
        if not os.path.exists(argv[3]):
            raise ServerError(f"{argv[3]} does not exist")
        self.log = open(self.log_path, "w")
        # taskset execs the server, so proc.pid is the server's pid.
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        _live.add(self.proc)
        deadline = time.monotonic() + SERVER_START_DEADLINE
        while time.monotonic() < deadline:
            m = _LISTENING.search(self.log_text())
            if m:
                self.addr = m.group(1)
                return self
            if self.proc.poll() is not None:
                raise ServerError(f"exited with {self.proc.returncode} before listening: "
                                  + self.log_tail())
            time.sleep(0.01)
        self.stop()
        raise ServerError(f"no `listening on` line within {SERVER_START_DEADLINE:.0f} s")

    @property
    def port(self):
        return int(self.addr.rsplit(":", 1)[1])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exit_status(self):
        return None if self.proc is None else self.proc.poll()

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=8):
        return " | ".join(self.log_text().strip().splitlines()[-n:]) or "(no output)"

    def stop(self):
        if self.proc is not None:
            _kill_group(self.proc, SERVER_STOP_DEADLINE)
            self.log.close()


def bench_argv(addr, *args, udp=False):
    """`ringport bench ADDR ...` on the load CPU, JSON report. TCP: one client worker;
    UDP (`--udp`, which takes no `--workers`): one epoll loop on the calling thread."""
    workers = [] if udp else ["--workers", "1"]
    return (["taskset", "-c", str(config.LOAD_CPU), str(config.RINGPORT_BIN), "bench", addr]
            + [str(a) for a in args] + (["--udp"] if udp else []) + workers + ["--json"])


class BenchRun:
    """A running load-tool process whose stdout and stderr lines arrive, time-stamped,
    on one queue while the caller samples the server."""

    def __init__(self, argv):
        self.argv = argv
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1,
                                     start_new_session=True)
        _live.add(self.proc)
        self.lines = {"stdout": [], "stderr": []}
        self.events = queue.Queue()
        self.readers = [threading.Thread(target=self._read, args=(name, stream), daemon=True)
                        for name, stream in [("stdout", self.proc.stdout),
                                             ("stderr", self.proc.stderr)]]
        for t in self.readers:
            t.start()

    def _read(self, name, stream):
        for line in stream:
            self.lines[name].append(line)
            self.events.put((time.monotonic(), name, line))
        self.events.put((time.monotonic(), name, None))  # end of stream

    def wait_for(self, match, until):
        """Consume lines until `match(stream, line)` returns something true; return
        (time, value). None when `until` (monotonic) passes or both streams ended."""
        ended = 0
        while ended < 2:
            left = until - time.monotonic()
            if left <= 0:
                return None
            try:
                t, name, line = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                ended += 1
                continue
            value = match(name, line)
            if value:
                return t, value
        return None

    def running(self):
        return self.proc.poll() is None

    def finish(self, timeout):
        """Wait for the run to end (killing it after `timeout`); returns
        (exit code, parsed JSON report or None, timed out?)."""
        timed_out = False
        try:
            self.proc.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(self.proc, 2.0)
        for t in self.readers:
            t.join(timeout=5)
        return self.proc.returncode, last_json(self.lines["stdout"]), timed_out

    def stderr_tail(self, n=6):
        return " | ".join(line.strip() for line in self.lines["stderr"][-n:])


def last_json(lines):
    """The last stdout line that is a JSON object (the load tool prints it last)."""
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
