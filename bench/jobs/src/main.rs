//! jobs-bench: the per-job overhead of ringport's job pool against
//! `tokio::task::spawn_blocking`, for the same small hash job behind the same client.
//!
//! ```text
//! jobs-bench serve-ringport        [--jobs N] [--iters I] [--workers W] [--inflight K] [--backend uring|poll|auto]
//! jobs-bench serve-ringport-inline [--iters I] [--workers W] [--backend ...]
//! jobs-bench serve-tokio           [--jobs N] [--iters I] [--workers W] [--inflight K]
//! jobs-bench serve-tokio-inline    [--iters I] [--workers W]
//! jobs-bench load --addr ADDR [--conns C] [--pipeline P] [--warmup S] [--duration S]
//!                 [--iters I] [--server-pid PID] [--server-cpu N] [--label NAME]
//! jobs-bench calibrate [--iters I]
//! ```
//!
//! Every server reads length-prefixed frames (4-byte big-endian length), hashes each
//! frame `--iters` rounds ([`hash`]) and answers with the 8-byte digest as a frame, in
//! the order the frames came. See README.md.

mod args;
mod load;
mod ringport_server;
mod tokio_server;

use args::Args;

/// Frame payload size the client sends.
pub const FRAME: usize = 64;
/// Distinct payloads the client cycles through (their digests are computed once).
pub const PAYLOADS: usize = 251;

/// The job: FNV-1a over the frame, `iters` rounds, each round's byte loop one chain of
/// dependent multiplies (nothing to vectorise, so its cost is linear in `iters`).
#[inline(never)]
pub fn hash(data: &[u8], iters: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..iters {
        for &b in std::hint::black_box(data) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = h.rotate_left(29) ^ u64::from(round);
    }
    h
}

/// Payload `i` of the client's set: an id and bytes of a simple generator.
pub fn payload(i: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..FRAME)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn print_listening(addr: std::net::SocketAddr) {
    use std::io::Write;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
}

fn calibrate(a: &Args) {
    let iters = a.u32("--iters", 20);
    let data = payload(0);
    let n = 200_000_000u64 / (u64::from(iters.max(1)) * 64).max(1);
    let n = n.clamp(1_000, 2_000_000);
    let _ = hash(&data, iters);
    let t = std::time::Instant::now();
    let mut acc = 0u64;
    for _ in 0..n {
        acc ^= hash(std::hint::black_box(&data), iters);
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    std::hint::black_box(acc);
    println!("iters {iters}: {ns:.0} ns per job");
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else {
        eprintln!("usage: jobs-bench serve-ringport|serve-ringport-inline|serve-tokio|serve-tokio-inline|load|calibrate [options]");
        std::process::exit(2);
    };
    let a = Args::parse(argv.collect());
    let result = match cmd.as_str() {
        "serve-ringport" => ringport_server::run(&a, false),
        "serve-ringport-inline" => ringport_server::run(&a, true),
        "serve-tokio" => tokio_server::run(&a, false),
        "serve-tokio-inline" => tokio_server::run(&a, true),
        "load" => load::run(&a),
        "calibrate" => {
            calibrate(&a);
            Ok(())
        }
        other => {
            eprintln!("unknown command {other:?}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("jobs-bench {cmd}: {e}");
        std::process::exit(1);
    }
}
