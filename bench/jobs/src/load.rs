//! The client, the same for every server: `--conns` connections on one tokio
//! current-thread runtime, each keeping `--pipeline` frames in flight (a new frame for
//! every answer), checking every answer (its length, and its digest against the one
//! expected next: order and content). After `--warmup` seconds it samples the server
//! from /proc (utime+stime of all its threads, its threads' context switches, the busy
//! time of the CPU it is pinned to) and its own CPU, again `--duration` seconds later,
//! and prints one JSON line with the figures of that window.

use crate::args::Args;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Shared {
    answers: Cell<u64>,
    failed: Cell<Option<String>>,
}

/// What /proc says at one moment.
#[derive(Clone, Copy, Default)]
struct Sample {
    at: Option<Instant>,
    answers: u64,
    server_user: u64,
    server_sys: u64,
    server_ctxsw: u64,
    server_threads: u64,
    cpu_busy: u64,
    cpu_total: u64,
    self_ticks: u64,
}

/// utime, stime (clock ticks) of /proc/PID/stat.
fn proc_times(pid: &str) -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0, 0);
    };
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // After ")": field 3 is f[0]; utime is field 14, stime 15.
    let get = |i: usize| f.get(i - 3).and_then(|v| v.parse().ok()).unwrap_or(0);
    (get(14), get(15))
}

/// Voluntary + involuntary context switches of every live thread, and the thread count.
fn ctx_switches(pid: &str) -> (u64, u64) {
    let (mut sum, mut threads) = (0, 0);
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for t in dir.flatten() {
        threads += 1;
        let Ok(s) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        for line in s.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                sum += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    (sum, threads)
}

/// Busy and total ticks of one CPU (/proc/stat).
fn cpu_ticks(cpu: &str) -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    let Some(line) = s.lines().find(|l| l.starts_with(&name)) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn sample(pid: Option<&str>, cpu: &str, shared: &Shared) -> Sample {
    let mut s = Sample {
        answers: shared.answers.get(),
        ..Sample::default()
    };
    if let Some(pid) = pid {
        (s.server_user, s.server_sys) = proc_times(pid);
        (s.server_ctxsw, s.server_threads) = ctx_switches(pid);
    }
    (s.cpu_busy, s.cpu_total) = cpu_ticks(cpu);
    let (u, sy) = proc_times("self");
    s.self_ticks = u + sy;
    s.at = Some(Instant::now());
    s
}

pub fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let addr = a.str("--addr", "");
    if addr.is_empty() {
        return Err("--addr ADDR is needed".into());
    }
    let conns = a.usize("--conns", 8).max(1);
    let pipeline = a.usize("--pipeline", 16).max(1);
    let warmup = a.f64("--warmup", 2.0);
    let duration = a.f64("--duration", 5.0);
    let iters = a.u32("--iters", 20);
    let pid = a.str("--server-pid", "");
    let pid = (!pid.is_empty()).then_some(pid);
    let cpu = a.str("--server-cpu", "0");
    let label = a.str("--label", "");

    let payloads: Rc<Vec<Vec<u8>>> = Rc::new(
        (0..crate::PAYLOADS)
            .map(|i| {
                let p = crate::payload(i);
                let mut f = (p.len() as u32).to_be_bytes().to_vec();
                f.extend_from_slice(&p);
                f
            })
            .collect(),
    );
    let digests: Rc<Vec<u64>> = Rc::new(
        (0..crate::PAYLOADS)
            .map(|i| crate::hash(&crate::payload(i), iters))
            .collect(),
    );
    let shared = Rc::new(Shared {
        answers: Cell::new(0),
        failed: Cell::new(None),
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let (w0, w1) = local.block_on(&rt, async {
        for c in 0..conns {
            let stream = TcpStream::connect(addr.as_str()).await?;
            stream.set_nodelay(true)?;
            let (p, d, s) = (payloads.clone(), digests.clone(), shared.clone());
            // Connections start at different places of the payload cycle.
            let start = c * 17 % crate::PAYLOADS;
            tokio::task::spawn_local(async move {
                if let Err(e) = drive(stream, pipeline, start, &p, &d, &s).await {
                    s.failed.set(Some(e));
                }
            });
        }
        tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
        let w0 = sample(pid.as_deref(), &cpu, &shared);
        let end = w0.at.expect("set") + Duration::from_secs_f64(duration);
        let mut tick = w0.at.expect("set");
        loop {
            tick += Duration::from_secs(1);
            if tick >= end {
                break;
            }
            tokio::time::sleep_until(tick.into()).await;
            eprintln!(
                "[{:5.1}s] {} answers",
                (tick - w0.at.expect("set")).as_secs_f64(),
                shared.answers.get() - w0.answers
            );
        }
        tokio::time::sleep_until(end.into()).await;
        let w1 = sample(pid.as_deref(), &cpu, &shared);
        Ok::<_, std::io::Error>((w0, w1))
    })?;
    if let Some(e) = shared.failed.take() {
        return Err(e.into());
    }
    let secs = (w1.at.expect("set") - w0.at.expect("set")).as_secs_f64();
    let n = (w1.answers - w0.answers) as f64;
    if n == 0.0 {
        return Err("no answers in the window".into());
    }
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc_sysconf_clk_tck() } as f64;
    let tick_us = 1e6 / hz;
    let user_us = (w1.server_user - w0.server_user) as f64 * tick_us;
    let sys_us = (w1.server_sys - w0.server_sys) as f64 * tick_us;
    let server_ticks = (w1.server_user + w1.server_sys) - (w0.server_user + w0.server_sys);
    let cpu_busy = w1.cpu_busy - w0.cpu_busy;
    let cpu_total = (w1.cpu_total - w0.cpu_total).max(1);
    let others = cpu_busy.saturating_sub(server_ticks) as f64 / cpu_total as f64 * 100.0;
    let load_pct = (w1.self_ticks - w0.self_ticks) as f64 * tick_us / (secs * 1e6) * 100.0;
    println!(
        "{{\"server\":\"{label}\",\"iters\":{iters},\"conns\":{conns},\"pipeline\":{pipeline},\
         \"window_s\":{secs:.3},\"jobs\":{n},\"jobs_per_s\":{:.1},\
         \"server_cpu_us_per_job\":{:.4},\"server_user_us_per_job\":{:.4},\
         \"server_sys_us_per_job\":{:.4},\"server_cpu_pct\":{:.1},\
         \"ctx_switches_per_job\":{:.4},\"server_threads\":{},\
         \"others_on_server_cpu_pct\":{others:.1},\"load_cpu_pct\":{load_pct:.1},\
         \"user_ticks\":{}}}",
        n / secs,
        (user_us + sys_us) / n,
        user_us / n,
        sys_us / n,
        (user_us + sys_us) / (secs * 1e6) * 100.0,
        (w1.server_ctxsw as f64 - w0.server_ctxsw as f64) / n,
        w1.server_threads,
        w1.server_user - w0.server_user,
    );
    std::process::exit(0);
}

extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// `sysconf(_SC_CLK_TCK)` (2 on Linux).
unsafe fn libc_sysconf_clk_tck() -> i64 {
    // SAFETY: the caller's; sysconf has no preconditions.
    let v = unsafe { sysconf(2) };
    if v > 0 {
        v
    } else {
        100
    }
}

/// One connection: `pipeline` frames in flight, a new one per answer, every answer
/// checked against the digest of the frame it answers (frames are answered in order).
async fn drive(
    mut stream: TcpStream,
    pipeline: usize,
    start: usize,
    payloads: &[Vec<u8>],
    digests: &[u64],
    shared: &Shared,
) -> Result<(), String> {
    let k = payloads.len();
    let (mut sent, mut got) = (start, start);
    let mut out = Vec::with_capacity(pipeline * 68);
    for _ in 0..pipeline {
        out.extend_from_slice(&payloads[sent % k]);
        sent += 1;
    }
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut rbuf = vec![0u8; 16 * 1024];
    let mut have = 0usize;
    loop {
        let n = stream
            .read(&mut rbuf[have..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed a connection".into());
        }
        have += n;
        let (mut at, mut answered) = (0, 0u64);
        out.clear();
        while have - at >= 12 {
            let len = u32::from_be_bytes(rbuf[at..at + 4].try_into().expect("4"));
            if len != 8 {
                return Err(format!("answer of {len} bytes, not 8"));
            }
            let digest = u64::from_be_bytes(rbuf[at + 4..at + 12].try_into().expect("8"));
            if digest != digests[got % k] {
                return Err(format!(
                    "answer {} of a connection: digest {digest:016x}, expected {:016x} (out of order or wrong)",
                    got - start,
                    digests[got % k]
                ));
            }
            got += 1;
            answered += 1;
            at += 12;
            out.extend_from_slice(&payloads[sent % k]);
            sent += 1;
        }
        rbuf.copy_within(at..have, 0);
        have -= at;
        shared.answers.set(shared.answers.get() + answered);
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
        }
    }
}
