#!/usr/bin/env python3
"""Correctness check for a UDP echo server (peer-echo tokio-udp / mmsg-udp, or
ringport udp-echo).

usage: python3 bench/peers/check_udp.py HOST:PORT [--clients 20] [--dgrams 200]
                                                  [--timeout 0.5] [--retries 3]
                                                  [--seed N]

--clients sockets, each on its own thread and connected to the server (so
only the server's datagrams reach it), send --dgrams datagrams in lock-step:
send one, wait for its echo, check it byte for byte, send the next. Sizes are
random in 0..65,507 (the largest IPv4 UDP payload); every client's first two
datagrams are 0 and 65,507 bytes, so both ends of the range are always
covered. Contents are random bytes.

UDP may drop datagrams (a 20 x 64 KiB burst overflows the kernel's default
receive buffer), so a datagram whose echo has not arrived within --timeout
seconds is sent again, at most --retries times. A late echo of an earlier,
resent datagram that turns up while waiting is recognised and skipped. A
datagram fails if no echo arrives after the last resend, or if an echo that
arrives is neither it nor a late duplicate (truncated, corrupted, extended).

Prints a line per failure (the first 10 per client), the resend count, and a
closing "N passed, N failed" line counting datagrams; exits 1 if any failed.
"""

import argparse
import os
import random
import socket
import sys
import threading
import time

MAX_DGRAM = 65507


def client(addr, family, dgrams, timeout, retries, rng, report):
    """Runs one client; report(passed, failed, resends, problems)."""
    passed = failed = resends = 0
    problems = []
    earlier = set()  # payloads sent more than once or failed: late echoes are skipped
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.settimeout(timeout)
        for i in range(dgrams):
            size = 0 if i == 0 else MAX_DGRAM if i == 1 else rng.randint(0, MAX_DGRAM)
            msg = rng.randbytes(size)
            problem = None
            got_it = False
            for attempt in range(retries + 1):
                if attempt:
                    resends += 1
                try:
                    s.send(msg)
                except OSError as e:
                    problem = f"send: {e!r}"
                    break
                deadline = time.monotonic() + timeout
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    s.settimeout(left)
                    try:
                        got = s.recv(65536)
                    except socket.timeout:
                        break
                    except OSError as e:  # e.g. ECONNREFUSED: nobody listens
                        problem = f"recv: {e!r}"
                        break
                    if got == msg:
                        got_it = True
                        break
                    if got in earlier:
                        continue  # a late echo of a resent datagram
                    problem = f"echo of {len(got)} B does not match the {len(msg)} B sent"
                    break
                if got_it or problem:
                    break
            if got_it and not problem:
                passed += 1
                if attempt:
                    earlier.add(msg)
            else:
                failed += 1
                earlier.add(msg)  # its echo may still turn up
                if problem is None:
                    problem = f"no echo after {retries + 1} sends"
                problems.append(f"datagram {i} ({size} B): {problem}")
    report(passed, failed, resends, problems)


def main():
    ap = argparse.ArgumentParser(description="UDP echo server correctness check")
    ap.add_argument("addr", help="HOST:PORT ([v6addr]:PORT for IPv6)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--dgrams", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=0.5, help="seconds before a resend")
    ap.add_argument("--retries", type=int, default=3, help="resends per datagram at most")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    host, _, port = args.addr.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    addr = (host, int(port))
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(
        f"check_udp {args.addr} seed={seed}: {args.clients} clients x {args.dgrams} datagrams",
        flush=True,
    )

    totals = {"passed": 0, "failed": 0, "resends": 0}
    lock = threading.Lock()

    def report(cid):
        def f(passed, failed, resends, problems):
            with lock:
                totals["passed"] += passed
                totals["failed"] += failed
                totals["resends"] += resends
                for p in problems[:10]:
                    print(f"FAIL client {cid}: {p}", flush=True)

        return f

    def run(cid):
        try:
            client(
                addr,
                family,
                args.dgrams,
                args.timeout,
                args.retries,
                random.Random(seed * 1000 + cid),
                report(cid),
            )
        except Exception as e:  # the socket itself failed: count it all lost
            with lock:
                totals["failed"] += args.dgrams
                print(f"FAIL client {cid}: {e!r}", flush=True)

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    print(f"{totals['resends']} resends, {dt:.2f}s", flush=True)
    print(f"{totals['passed']} passed, {totals['failed']} failed", flush=True)
    sys.exit(1 if totals["failed"] else 0)


if __name__ == "__main__":
    main()
