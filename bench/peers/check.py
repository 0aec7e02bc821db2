#!/usr/bin/env python3
"""Correctness check for an echo server (the peer-echo servers, or ringport's).

usage: python3 bench/peers/check.py HOST:PORT [--conns 50] [--msgs 100]
                                              [--churn 1000] [--seed N]

Phases, each bounded by socket timeouts (10 s per operation):
  1. echo:      --conns concurrent connections, each sends --msgs messages of
                random sizes (1 B .. 16 KiB) one at a time and reads each back.
  2. pipelined: 8 connections each stream 1 MiB in random chunks from a writer
                thread while a reader thread checks the echo concurrently, so
                the server sees new data while its sends are still in flight.
  3. churn:     --churn sequential connect/close cycles, rotating through:
                close at once; echo one message then close; send then close
                without reading; send, half-close (SHUT_WR) and read the echo
                to EOF; send then abort (RST via SO_LINGER 0).
  4. alive:     one more echo exchange, proving the server survived.

Prints one line per phase and a closing "N passed, N failed" line; exits 1 if
any phase failed.
"""

import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

TIMEOUT = 10.0


def connect(addr):
    s = socket.create_connection(addr, timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    chunks = []
    while n:
        b = s.recv(min(n, 65536))
        if not b:
            raise EOFError("server closed the connection early")
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def echo_conn(addr, msgs, rng):
    with connect(addr) as s:
        for i in range(msgs):
            msg = rng.randbytes(rng.randint(1, 16384))
            s.sendall(msg)
            got = recv_exact(s, len(msg))
            if got != msg:
                raise AssertionError(f"message {i} ({len(msg)} B) echoed wrong")


def pipelined_conn(addr, total, rng):
    data = rng.randbytes(total)
    errors = []
    with connect(addr) as s:

        def writer():
            try:
                off = 0
                while off < total:
                    n = rng.randint(1, 65536)
                    s.sendall(data[off : off + n])
                    off += n
            except Exception as e:  # reported by the reader's check
                errors.append(f"writer: {e!r}")

        w = threading.Thread(target=writer)
        w.start()
        got = recv_exact(s, total)
        w.join()
    if errors:
        raise AssertionError(errors[0])
    if got != data:
        raise AssertionError(f"{total} B stream echoed wrong")


def run_parallel(n, fn):
    """Runs fn(i) on n threads; returns the list of failures."""
    failures = []
    lock = threading.Lock()

    def wrap(i):
        try:
            fn(i)
        except Exception as e:
            with lock:
                failures.append(f"conn {i}: {e!r}")

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def churn(addr, cycles, rng):
    for i in range(cycles):
        mode = i % 5
        s = connect(addr)
        try:
            if mode == 0:
                pass
            elif mode == 1:
                msg = rng.randbytes(rng.randint(1, 8192))
                s.sendall(msg)
                if recv_exact(s, len(msg)) != msg:
                    raise AssertionError(f"cycle {i}: echo wrong")
            elif mode == 2:
                s.sendall(rng.randbytes(rng.randint(1, 8192)))
            elif mode == 3:
                msg = rng.randbytes(rng.randint(1, 8192))
                s.sendall(msg)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                if got != msg:
                    raise AssertionError(
                        f"cycle {i}: after half-close got {len(got)} of {len(msg)} B"
                    )
            else:
                s.sendall(rng.randbytes(rng.randint(1, 8192)))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            s.close()


def main():
    ap = argparse.ArgumentParser(description="echo server correctness check")
    ap.add_argument("addr", help="HOST:PORT")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--msgs", type=int, default=100)
    ap.add_argument("--churn", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    host, _, port = args.addr.rpartition(":")
    addr = (host.strip("[]"), int(port))
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"check {args.addr} seed={seed}", flush=True)

    passed = failed = 0

    def phase(name, fn):
        nonlocal passed, failed
        t0 = time.monotonic()
        try:
            problems = fn() or []
        except Exception as e:
            problems = [repr(e)]
        dt = time.monotonic() - t0
        if problems:
            failed += 1
            print(f"FAIL {name} ({dt:.2f}s): {len(problems)} problem(s)", flush=True)
            for p in problems[:10]:
                print(f"     {p}", flush=True)
        else:
            passed += 1
            print(f"ok   {name} ({dt:.2f}s)", flush=True)

    phase(
        f"echo: {args.conns} conns x {args.msgs} msgs",
        lambda: run_parallel(
            args.conns,
            lambda i: echo_conn(addr, args.msgs, random.Random(seed * 1000 + i)),
        ),
    )
    phase(
        "pipelined: 8 conns x 1 MiB",
        lambda: run_parallel(
            8, lambda i: pipelined_conn(addr, 1 << 20, random.Random(seed * 2000 + i))
        ),
    )
    phase(f"churn: {args.churn} connect/close cycles", lambda: churn(addr, args.churn, random.Random(seed)))
    phase("alive after churn", lambda: echo_conn(addr, 10, random.Random(seed + 1)))

    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
