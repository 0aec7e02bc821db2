"""What is measured on the server process: CPU time, context switches, RSS from /proc,
and syscalls (plus context switches) from `perf stat` attached for a window."""

import errno
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

from . import config
from .util import log, warn

CLK_TCK = os.sysconf("SC_CLK_TCK")
PERF_EVENTS = ["raw_syscalls:sys_enter", "context-switches", "task-clock"]


# ---------------------------------------------------------------- /proc


def proc_cpu_secs(pid):
    """(user, system) CPU seconds of the whole process: /proc/PID/stat fields 14 and 15
    (utime, stime) cover every thread, live or exited."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # Field 2 (comm) may contain spaces: split after its closing parenthesis, where
    # field 3 starts; utime and stime are then at indexes 14-3 and 15-3.
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_ticks(cpus):
    """{cpu: (busy, steal)} clock ticks from /proc/stat; busy = user + nice + system +
    irq + softirq (idle, iowait and steal excluded)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name = line.split(" ", 1)[0]
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                v = [int(x) for x in line.split()[1:]]
                out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6], v[7])
    return out


def proc_status_field(pid, name, task=None):
    path = f"/proc/{pid}/task/{task}/status" if task else f"/proc/{pid}/status"
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return None


def proc_rss_kib(pid):
    return proc_status_field(pid, "VmRSS")


def proc_ctxsw(pid):
    """Voluntary + involuntary context switches summed over the live threads."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += (proc_status_field(pid, "voluntary_ctxt_switches", task) or 0)
            total += (proc_status_field(pid, "nonvoluntary_ctxt_switches", task) or 0)
        except OSError:  # the thread exited meanwhile
            pass
    return total


def accept_queue(port):
    """Connections waiting in the accept queue of the listener on `port` (the rx_queue
    column of a LISTEN socket in /proc/net/tcp is its accept backlog), or None."""
    want = f":{port:04X}"
    for cols in _proc_net_rows("tcp"):
        if cols[1].endswith(want) and cols[3] == "0A":  # 0A: LISTEN
            return int(cols[4].split(":")[1], 16)
    return None


def _proc_net_rows(proto):
    """The rows of /proc/net/PROTO and PROTO6 (header skipped), split into columns; a
    file that cannot be read gives none."""
    for path in [f"/proc/net/{proto}", f"/proc/net/{proto}6"]:
        try:
            with open(path) as f:
                next(f)
                rows = [line.split() for line in f]
        except OSError:
            continue
        yield from rows


def udp_socket_drops(port):
    """Datagrams the kernel dropped on the UDP sockets bound to local `port` (the
    `drops` column of /proc/net/udp and udp6: receive buffer full, and the like), summed
    over all of them (SO_REUSEPORT); None when there is none."""
    want = f":{port:04X}"
    total, found = 0, False
    for cols in _proc_net_rows("udp"):
        if len(cols) >= 13 and cols[1].endswith(want):
            total += int(cols[-1])
            found = True
    return total if found else None


def snmp_udp():
    """The machine's UDP counters of /proc/net/snmp (the `Udp:` lines), e.g.
    {"RcvbufErrors": n, "InErrors": n, ...}; {} when unreadable."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}


def udp_counters(port):
    """The counters a UDP round samples around its window: the server socket's drops
    and the machine-wide RcvbufErrors / InErrors."""
    snmp = snmp_udp()
    return {"server_drops": udp_socket_drops(port),
            "rcvbuf_errors": snmp.get("RcvbufErrors"), "in_errors": snmp.get("InErrors")}


def counter_deltas(before, after):
    return {k: None if before.get(k) is None or after.get(k) is None else after[k] - before[k]
            for k in after}


# ---------------------------------------------------------------- perf


class PerfError(Exception):
    pass


class PerfSession:
    """`perf stat -e raw_syscalls:sys_enter,context-switches,task-clock -p PID` started
    with its counters disabled (`-D -1`) and driven through a control FIFO, so it can
    attach (slow for a process with many threads) before the measured window, and count
    exactly between `enable` and `disable`. Threads created after the attach are counted
    too (perf's counters are inherited)."""

    READY_DEADLINE = 15.0

    def __init__(self, pid):
        self.dir = tempfile.mkdtemp(prefix="perf-ctl-")
        ctl, ack = os.path.join(self.dir, "ctl"), os.path.join(self.dir, "ack")
        os.mkfifo(ctl)
        os.mkfifo(ack)
        argv = ["taskset", "-c", str(config.LOAD_CPU), "perf", "stat", "-x,",
                "-e", ",".join(PERF_EVENTS), "-p", str(pid),
                "--control", f"fifo:{ctl},{ack}", "-D", "-1"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        self.ctl = self.ack = None
        try:
            # perf opens ack for writing (blocking until a reader exists): open our end
            # first, non-blocking; then the ctl FIFO, which perf opens read-write.
            self.ack = os.open(ack, os.O_RDONLY | os.O_NONBLOCK)
            deadline = time.monotonic() + self.READY_DEADLINE
            while self.ctl is None:
                try:
                    self.ctl = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as e:
                    if e.errno != errno.ENXIO:
                        raise
                    self._check_alive(deadline)
                    time.sleep(0.01)
            # perf reads commands only once its counters are attached: the ack of a
            # (no-op) disable says threads created from now on will be counted.
            self.command("disable")
        except BaseException:
            self.close()
            raise

    def _check_alive(self, deadline):
        if self.proc.poll() is not None:
            raise PerfError(f"perf exited {self.proc.returncode}: "
                            f"{self.proc.stderr.read().strip()[-300:]}")
        if time.monotonic() > deadline:
            raise PerfError("perf did not get ready")

    def command(self, word):
        """Send `enable` or `disable`; return once perf acknowledged it."""
        os.write(self.ctl, (word + "\n").encode())
        deadline = time.monotonic() + self.READY_DEADLINE
        got = b""
        while b"ack" not in got:
            self._check_alive(deadline)
            ready, _, _ = select.select([self.ack], [], [], 0.05)
            if ready:
                chunk = os.read(self.ack, 64)
                if not chunk:
                    time.sleep(0.005)  # no writer at the moment
                got += chunk

    def finish(self):
        """Stop perf; return {event: count} (0 when the process never ran in the
        window, None when the event is not supported)."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        finally:
            self.close()
        counts = parse_perf_csv(err)
        if not counts:
            raise PerfError(f"no counts from perf (exit {self.proc.returncode}): "
                            f"{err.strip()[-300:]}")
        return counts

    def close(self):
        for fd in (self.ctl, self.ack):
            if fd is not None:
                os.close(fd)
        self.ctl = self.ack = None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_perf_csv(text):
    counts = {}
    for line in text.splitlines():
        cols = line.split(",")
        if len(cols) < 3 or cols[2] not in PERF_EVENTS:
            continue
        value = cols[0].strip()
        if value == "<not counted>":
            counts[cols[2]] = 0.0
        elif value == "<not supported>":
            counts[cols[2]] = None
        else:
            try:
                counts[cols[2]] = float(value)
            except ValueError:
                counts[cols[2]] = None
    return counts


class Perf:
    """Whether perf can count syscalls here (installing linux-perf if it is missing and
    this is root with apt-get); `available` False comes with a `reason`."""

    def __init__(self):
        self.available = False
        self.reason = ""
        self.version = None
        if not shutil.which("perf"):
            self._install()
        if not shutil.which("perf"):
            self.reason = "perf is not installed"
            return
        try:
            self.version = subprocess.run(["perf", "--version"], capture_output=True, text=True,
                                          timeout=10).stdout.strip()
            session = PerfSession(os.getpid())
            session.command("enable")
            time.sleep(0.02)
            session.command("disable")
            counts = session.finish()
        except (OSError, subprocess.SubprocessError, PerfError) as e:
            self.reason = f"perf cannot count: {e}"
            return
        if counts.get("raw_syscalls:sys_enter") is None:
            self.reason = "perf has no raw_syscalls:sys_enter tracepoint"
            return
        self.available = True

    @staticmethod
    def _install():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return
        log("perf is missing: apt-get install -y linux-perf")
        try:
            subprocess.run(["apt-get", "install", "-y", "linux-perf"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            warn(f"installing linux-perf failed: {e}")

    def session(self, pid):
        """A ready PerfSession on `pid`, or (None, why) when perf is unusable."""
        if not self.available:
            return None, None
        try:
            return PerfSession(pid), None
        except (OSError, subprocess.SubprocessError, PerfError) as e:
            return None, str(e)


# ---------------------------------------------------------------- window sampling


class Window:
    """One measured window on server `pid`: `begin()` reads /proc and enables the perf
    session (if any), `end()` disables it, reads /proc again and returns the raw
    figures. Context switches come from perf, or without perf from the per-thread
    /proc status files (slow with 1000 threads, so not read when perf runs)."""

    def __init__(self, pid, session, client_pid=None, counters=None):
        self.pid = pid
        self.session = session
        self.client_pid = client_pid
        # Optional: a callable returning {name: count}, read at both ends (UDP drops).
        self.counters = counters
        self.error = None

    def _client_cpu(self):
        try:
            return sum(proc_cpu_secs(self.client_pid)) if self.client_pid else None
        except OSError:
            return None

    def begin(self):
        self.t_a = time.monotonic()
        self.cpu_a = proc_cpu_secs(self.pid)
        self.client_a = self._client_cpu()
        self.stat_a = cpu_ticks({config.SERVER_CPU, config.LOAD_CPU})
        self.ctx_a = None if self.session else proc_ctxsw(self.pid)
        self.counters_a = self.counters() if self.counters else None
        if self.session:
            try:
                self.session.command("enable")
            except (OSError, PerfError) as e:
                self.error = str(e)
        self.t_on = time.monotonic()

    def end(self):
        t_off0 = time.monotonic()
        if self.session and not self.error:
            try:
                self.session.command("disable")
            except (OSError, PerfError) as e:
                self.error = str(e)
        t_off1 = time.monotonic()
        cpu_b = proc_cpu_secs(self.pid)
        client_b = self._client_cpu()
        stat_b = cpu_ticks({config.SERVER_CPU, config.LOAD_CPU})
        ctx_b = None if self.session else proc_ctxsw(self.pid)
        counters_b = self.counters() if self.counters else None
        t_b = time.monotonic()
        counts = {}
        if self.session and not self.error:
            try:
                counts = self.session.finish()
            except (OSError, subprocess.SubprocessError, PerfError) as e:
                self.error = str(e)
        self.t_end = t_b
        busy = {c: (stat_b[c][0] - self.stat_a[c][0]) / CLK_TCK for c in stat_b}
        steal = {c: (stat_b[c][1] - self.stat_a[c][1]) / CLK_TCK for c in stat_b}
        server_secs = (cpu_b[0] - self.cpu_a[0]) + (cpu_b[1] - self.cpu_a[1])
        client_secs = None if None in (client_b, self.client_a) else client_b - self.client_a
        return {
            # CPU time the pinned CPUs spent on anything but the server (CPU 0) and the
            # load tool (CPU 1): other processes, kernel threads, interrupts on idle.
            "other_cpu0_secs": busy[config.SERVER_CPU] - server_secs,
            "other_cpu1_secs": None if client_secs is None
            else busy[config.LOAD_CPU] - client_secs,
            "steal_secs": sum(steal.values()),
            "proc_secs": t_b - self.t_a,
            # Counting starts in [t_a, t_on] and stops in [t_off0, t_off1].
            "perf_secs": ((t_off0 + t_off1) - (self.t_a + self.t_on)) / 2 if counts else None,
            "user_secs": cpu_b[0] - self.cpu_a[0],
            "sys_secs": cpu_b[1] - self.cpu_a[1],
            "client_cpu_secs": client_secs,
            "ctxsw_proc": None if self.ctx_a is None else ctx_b - self.ctx_a,
            "syscalls": counts.get("raw_syscalls:sys_enter"),
            "ctxsw_perf": counts.get("context-switches"),
            "task_clock_ms": counts.get("task-clock"),
            "perf_error": self.error,
            "counters": None if counters_b is None
            else counter_deltas(self.counters_a, counters_b),
        }


def per_unit(window, units_per_sec):
    """Per-message (or per-connection) figures of a window, given how many units the
    load tool completed per second in it."""
    def div(x, secs, scale=1.0):
        if x is None or not secs:
            return None
        return x * scale / (units_per_sec * secs)

    proc, perf = window["proc_secs"], window["perf_secs"]
    return {
        "user_us": div(window["user_secs"], proc, 1e6),
        "sys_us": div(window["sys_secs"], proc, 1e6),
        "cpu_us": div(window["user_secs"] + window["sys_secs"], proc, 1e6),
        "syscalls": div(window["syscalls"], perf),
        # How busy each side's CPU was: is the server or the load tool the bottleneck?
        "server_cpu_pct": 100.0 * (window["user_secs"] + window["sys_secs"]) / proc,
        "client_cpu_pct": None if window.get("client_cpu_secs") is None
        else 100.0 * window["client_cpu_secs"] / proc,
        # (tick sampling makes these a few percent negative on a quiet machine)
        "other_cpu0_pct": max(100.0 * window["other_cpu0_secs"] / proc, 0.0),
        "other_cpu1_pct": None if window.get("other_cpu1_secs") is None
        else max(100.0 * window["other_cpu1_secs"] / proc, 0.0),
        "steal_pct": 100.0 * window["steal_secs"] / proc,
        "ctxsw": div(window["ctxsw_perf"], perf) if window["ctxsw_perf"] is not None
        else div(window["ctxsw_proc"], proc),
    }
