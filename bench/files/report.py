"""Medians and ranges of bench/files/results.jsonl into RESULTS.md (run by run.sh, which
sets the environment; `RAW=... OUT=... python3 bench/files/report.py` redoes a report from
the rows, with the environment lines it is given)."""
import json, os, statistics

e = os.environ
rows = [json.loads(l) for l in open(e["RAW"]) if l.strip()]
order = ["ringport:plain", "sendfile:plain", "ringport:ringport-noverify", "ringport:ringport"]
server_name = {
    "ringport": "`ringport file-server`",
    "sendfile": "`peer-echo sendfile-server` (sendfile(2))",
}
client_name = {
    "plain": "`peer-echo get` (256 KiB read loop)",
    "ringport-noverify": "`ringport get --no-verify`",
    "ringport": "`ringport get` (digest checked)",
}
GIB = float(1 << 30)


def figures(r):
    """Per-row figures: GiB/s, CPU s per GiB (server, client; user and sys), others' %."""
    g = r["bytes"] / GIB
    tck = r["clk_tck"]
    su, ss = r["server_user_ticks"] / tck, r["server_sys_ticks"] / tck
    cu, cs = r["client_user_s"], r["client_sys_s"]
    def others(busy, all_, own_s):
        return max(0.0, 100.0 * (busy - own_s * tck) / all_) if all_ else None
    return {
        "gibps": g / r["wall_s"],
        "server": (su + ss) / g, "server_user": su / g, "server_sys": ss / g,
        "client": (cu + cs) / g, "client_user": cu / g, "client_sys": cs / g,
        "server_busy": 100.0 * (su + ss) / r["wall_s"],
        "client_busy": 100.0 * (cu + cs) / r["wall_s"],
        "others_server_cpu": others(r["server_cpu_busy_ticks"], r["server_cpu_all_ticks"], su + ss),
        "others_client_cpu": others(r["client_cpu_busy_ticks"], r["client_cpu_all_ticks"], cu + cs),
    }


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rng(xs, fmt):
    xs = [x for x in xs if x is not None]
    return f"{format(min(xs), fmt)}–{format(max(xs), fmt)}" if xs else "–"


pairs = [p for p in order if any(r["pair"] == p for r in rows)]
pairs += sorted({r["pair"] for r in rows} - set(pairs))
measured = [r for r in rows if r["round"] > 0]

out = ["# File download benchmark results\n"]
out.append("One file downloaded over loopback, server pinned to one CPU and client to the other: "
           "ringport's file server against a plain `sendfile(2)` server, read by a plain client "
           "and by `ringport get`. See [README.md](README.md).\n")
out.append("Command (from the repository root):\n")
out.append("```sh\n" + e.get("invocation", "bench/files/run.sh") + "\n```\n")
out.append(f"- ringport commit {e.get('commit', '?')}, kernel {e.get('kernel', '?')}, "
           f"{e.get('cpu_model', '?')}, {e.get('cpus', '?')} CPUs; load average "
           f"{e.get('load_start', '?')} at the start, {e.get('load_end', '?')} at the end; "
           f"started {e.get('started', '?')}")
size = rows[0]["bytes"] if rows and "bytes" in rows[0] else int(e.get("SIZE_MIB", "0")) << 20
sink = e.get("COPY", "")
sink = "written to /dev/null (no copy kept)" if sink == "/dev/null" else f"copied to {sink or '/dev/shm'}"
out.append(f"- file: {size / GIB:g} GiB of random bytes in /dev/shm (tmpfs), {sink}; "
           f"server on CPU {e.get('SERVER_CPU', '?')}, client on CPU {e.get('CLIENT_CPU', '?')}; "
           f"a fresh server per transfer; tcp_rmem {e.get('tcp_rmem', '?')}, tcp_wmem "
           f"{e.get('tcp_wmem', '?')}")
ok_rows = [r for r in measured if "failed" not in r]
if ok_rows:
    oth = [figures(r)["others_server_cpu"] for r in ok_rows]
    othc = [figures(r)["others_client_cpu"] for r in ok_rows]
    busy = max(max(x for x in oth if x is not None), max(x for x in othc if x is not None))
    out.append(f"- other work on the pinned CPUs during the transfers (their busy time less the "
               f"server's or client's own): server CPU median {med(oth):.0f} % (max {max(oth):.0f} %), "
               f"client CPU median {med(othc):.0f} % (max {max(othc):.0f} %)"
               + ("  **(busy machine: figures preliminary)**" if busy > 10 else ""))
bad = [r for r in ok_rows if not r["intact"]]
checked = [r for r in ok_rows if r["checked"]]
if e.get("COPY") == "/dev/null":
    out.append("- copies: none (written to /dev/null); each client checks its own byte count")
else:
    out.append(f"- copies: every transfer's size checked; {len(checked)} compared byte for byte "
               f"with the file; {len(bad)} not intact")
out.append("")

rounds = len({r["round"] for r in measured})
out.append(f"## Medians over {rounds} round{'s' if rounds != 1 else ''} (range min–max)\n")
out.append("| server | client | GiB/s | range | server CPU s/GiB | range | server user / sys | "
           "client CPU s/GiB | range | client user / sys | busy server / client | others on server / client CPU | runs |")
out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
meds = {}
for p in pairs:
    sel = [r for r in measured if r["pair"] == p]
    ok = [r for r in sel if "failed" not in r]
    failed = len(sel) - len(ok)
    server, client = p.split(":")
    sname, cname = server_name.get(server, server), client_name.get(client, client)
    if not ok:
        reason = sel[0]["failed"] if sel else "no run"
        out.append(f"| {sname} | {cname} | FAILED: {reason} | | | | | | | | | | 0 ({failed} failed) |")
        continue
    f = [figures(r) for r in ok]
    m = {k: med([x[k] for x in f]) for k in f[0]}
    meds[p] = m
    runs = f"{len(ok)}" + (f" ({failed} failed)" if failed else "")
    nb = sum(1 for r in ok if not r["intact"])
    runs += f", {nb} not intact" if nb else ""
    out.append(f"| {sname} | {cname} | {m['gibps']:.2f} | {rng([x['gibps'] for x in f], '.2f')} | "
               f"{m['server']:.3f} | {rng([x['server'] for x in f], '.3f')} | "
               f"{m['server_user']:.3f} / {m['server_sys']:.3f} | "
               f"{m['client']:.3f} | {rng([x['client'] for x in f], '.3f')} | "
               f"{m['client_user']:.3f} / {m['client_sys']:.3f} | "
               f"{m['server_busy']:.0f} % / {m['client_busy']:.0f} % | "
               f"{m['others_server_cpu']:.0f} % / {m['others_client_cpu']:.0f} % | {runs} |")
out.append("")

a, b = meds.get("ringport:plain"), meds.get("sendfile:plain")
if a and b:
    out.append("ringport file server ÷ sendfile(2) server, same plain client (medians): "
               f"throughput {a['gibps'] / b['gibps']:.2f}×, server CPU per GiB "
               f"{a['server'] / b['server']:.2f}×, client CPU per GiB {a['client'] / b['client']:.2f}×.\n")
c, d = meds.get("ringport:ringport-noverify"), meds.get("ringport:ringport")
if c and d:
    out.append("The digest, `ringport get` with it ÷ without it (medians): throughput "
               f"{d['gibps'] / c['gibps']:.2f}×, server CPU per GiB {d['server'] / c['server']:.2f}× "
               f"(+{d['server'] - c['server']:.3f} s/GiB), client CPU per GiB "
               f"{d['client'] / c['client']:.2f}× (+{d['client'] - c['client']:.3f} s/GiB).\n")

out.append("Columns: *GiB/s*: the file's size / the client process's wall time (start to exit: "
           "connect, request, every byte written to the copy). *server CPU s/GiB*: utime+stime "
           "of the whole server process (every thread, exited ones and io_uring's io-wq workers "
           "included; `/proc/PID/stat` fields 14 and 15, 10 ms ticks) from 0.2 s before the "
           "client starts to 0.2 s after it exits, per GiB sent. *client CPU s/GiB*: the client "
           "process's user+sys (its rusage), per GiB. *busy*: that CPU time / the client's wall time: the side near 100 % is the one that bounds the throughput (each has one CPU). *others*: the busy time of the pinned CPU "
           "(`/proc/stat`) not charged to the server (client) over the same span: other work on "
           "a shared machine. Loopback TCP does the receiving side's kernel work largely in the "
           "sender's context, so the server's sys time includes part of the client's receive. "
           "Raw rows: [results.jsonl](results.jsonl).\n")
open(e["OUT"], "w").write("\n".join(out))
print(open(e["OUT"]).read())
