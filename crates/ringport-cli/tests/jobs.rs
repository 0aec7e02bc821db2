//! `echo-server --jobs N --job-work ...` end to end: plain std clients pipeline frames
//! (or raw bytes) of random sizes and check every echo in order, byte for byte; then
//! half-close, and every echo must still come before the server closes (a graceful close
//! waits for outstanding jobs). Sleep jobs run in parallel on the pool; `bench` works
//! against the server unchanged; bad option values are refused with a useful message.
//! The server runs on the backend `RINGPORT_BACKEND` selects (it inherits the variable).
//! Every wait is bounded: socket timeouts, and deadlines on the child.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Read and write timeout of every client socket: a server that stops answering fails
/// the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A small deterministic generator (xorshift64*), enough for random sizes and bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the echo server");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// How a frame goes on the wire.
#[derive(Clone, Copy)]
enum Framing {
    Length4,
    Line,
}

impl Framing {
    fn encode(self, payload: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::Length4 => {
                out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                out.extend_from_slice(payload);
            }
            Framing::Line => {
                out.extend_from_slice(payload);
                out.push(b'\n');
            }
        }
    }

    /// A random payload of 1 to `max` bytes this framing can carry.
    fn payload(self, rng: &mut Rng, max: u64) -> Vec<u8> {
        let len = 1 + rng.below(max) as usize;
        let mut p = rng.bytes(len);
        if let Framing::Line = self {
            // No line ends inside; the server echoes a line with `\n`.
            for b in &mut p {
                if *b == b'\n' || *b == b'\r' {
                    *b = b'.';
                }
            }
        }
        p
    }
}

/// Write everything from a thread while this one reads it all back (so neither side can
/// stall the other on full buffers), then half-close: the rest of the echo and then the
/// server's close must follow.
fn pipeline_and_check(addr: &str, wire: Vec<u8>, who: &str) {
    let mut s = connect(addr);
    let mut writer = s.try_clone().expect("clone the stream");
    let len = wire.len();
    let expected = wire.clone();
    let write = thread::spawn(move || {
        writer.write_all(&wire)?;
        // Half-close at once: jobs are still outstanding for the last frames.
        writer.shutdown(Shutdown::Write)
    });
    let mut back = vec![0u8; len];
    let got = s.read_exact(&mut back);
    write
        .join()
        .expect("the writer thread")
        .unwrap_or_else(|e| panic!("{who}: write: {e}"));
    got.unwrap_or_else(|e| panic!("{who}: read: {e}"));
    if let Some(at) = back.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!("{who}: the echo differs from byte {at} on (of {len})");
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .unwrap_or_else(|e| panic!("{who}: waiting for the server to close: {e}"));
    assert!(
        rest.is_empty(),
        "{who}: {} bytes after the echo",
        rest.len()
    );
}

/// `clients` concurrent connections, each pipelining `frames` random frames.
fn framed_clients(addr: &str, framing: Framing, clients: u64, frames: usize, max: u64) {
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let addr = addr.to_string();
            thread::spawn(move || {
                let mut rng = Rng(0x5eed_0001 + c);
                let mut wire = Vec::new();
                for _ in 0..frames {
                    let payload = framing.payload(&mut rng, max);
                    framing.encode(&payload, &mut wire);
                }
                pipeline_and_check(&addr, wire, &format!("client {c}"));
            })
        })
        .collect();
    for h in handles {
        if let Err(panic) = h.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// The `jobs` line of the final stats: `spawned N, done N, outstanding 0, ...`.
fn jobs_line(out: &str) -> &str {
    out.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("jobs ").filter(|r| r.contains("spawned")))
        .unwrap_or_else(|| panic!("no jobs line in the final stats:\n{out}"))
}

#[test]
fn hashed_frames_come_back_whole_and_in_order_also_after_a_half_close() {
    for (codec, framing) in [("length:4", Framing::Length4), ("line", Framing::Line)] {
        let (server, addr) = echo_server_with(
            &["--jobs", "4", "--job-work", "hash:1000", "--codec", codec],
            &[],
        );
        framed_clients(&addr, framing, 4, 300, 2000);
        let (out, _) = stop(server);
        let jobs = jobs_line(&out);
        assert!(
            jobs.contains("spawned 1,200, done 1,200, outstanding 0"),
            "{jobs}"
        );
        assert!(jobs.contains("threads 4"), "{jobs}");
        assert!(out.contains("job times"), "{out}");
    }
}

#[test]
fn raw_chunks_come_back_in_order() {
    let (server, addr) = echo_server_with(&["--jobs", "4", "--job-work", "hash:100"], &[]);
    let handles: Vec<_> = (0..4u64)
        .map(|c| {
            let addr = addr.clone();
            thread::spawn(move || {
                let mut rng = Rng(0xbad_cafe + c);
                let len = 256 * 1024 + rng.below(64 * 1024) as usize;
                let wire = rng.bytes(len);
                pipeline_and_check(&addr, wire, &format!("raw client {c}"));
            })
        })
        .collect();
    for h in handles {
        if let Err(panic) = h.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let (out, _) = stop(server);
    let jobs = jobs_line(&out);
    assert!(jobs.contains("outstanding 0"), "{jobs}");
}

#[test]
fn sleep_jobs_run_in_parallel_on_the_pool() {
    const CLIENTS: usize = 32;
    let (server, addr) = echo_server_with(
        &[
            "--jobs",
            "32",
            "--job-work",
            "sleep:100",
            "--codec",
            "length:4",
        ],
        &[],
    );
    // Every client connected (and answered once: the server has it) before the clock
    // starts; then all send at once.
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let handles: Vec<_> = (0..CLIENTS as u32)
        .map(|c| {
            let (addr, start) = (addr.clone(), Arc::clone(&start));
            thread::spawn(move || {
                let mut s = connect(&addr);
                let frame = |n: u32| [4u32.to_be_bytes(), n.to_be_bytes()].concat();
                let mut back = [0u8; 8];
                s.write_all(&frame(u32::MAX)).unwrap();
                s.read_exact(&mut back).unwrap();
                start.wait();
                let sent = Instant::now();
                s.write_all(&frame(c)).unwrap();
                s.read_exact(&mut back).unwrap();
                let took = sent.elapsed();
                assert_eq!(back[..], frame(c)[..], "client {c}");
                took
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut slowest = Duration::ZERO;
    for h in handles {
        let took = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        // The echo cannot come before its job slept.
        assert!(took >= Duration::from_millis(100), "an echo after {took:?}");
        slowest = slowest.max(took);
    }
    let all = began.elapsed();
    eprintln!("32 sleep:100 echoes: all back after {all:?}, slowest {slowest:?}");
    assert!(all < Duration::from_secs(2), "32 echoes took {all:?}");
    stop(server);
}

#[test]
fn bench_against_a_job_server_verifies_every_echo() {
    for codec in ["length:4", "raw"] {
        let (server, addr) = echo_server_with(
            &["--jobs", "2", "--job-work", "hash:50", "--codec", codec],
            &[],
        );
        let (report, _) = bench_json(&[
            &addr,
            "--codec",
            codec,
            "--connections",
            "4",
            "--size",
            "200",
            "--pipeline",
            "8",
            "--duration",
            "1",
        ]);
        assert_no_errors(&report);
        assert!(
            report["messages"].as_u64().expect("messages") > 0,
            "{report}"
        );
        let (out, _) = stop(server);
        assert!(out.contains("jobs 2 threads, work hash:50"), "{out}");
        assert!(jobs_line(&out).contains("outstanding 0"), "{out}");
    }
}

#[test]
fn the_live_stats_line_shows_the_jobs() {
    let (server, _addr) =
        echo_server_with(&["--jobs", "2", "--job-work", "sleep:1", "--stats"], &[]);
    let line = line_starting(&server, "stats: ", Duration::from_secs(10));
    assert!(
        line.contains("  jobs 0/s  outstanding 0  pool queued 0"),
        "{line}"
    );
    stop(server);
}

#[test]
fn bad_job_options_are_refused_with_a_reason() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--jobs", "0", "--job-work", "hash:1"],
            "0 is not in 1..=4096",
        ),
        (
            &["--jobs", "5000", "--job-work", "hash:1"],
            "not in 1..=4096",
        ),
        (&["--job-work", "hash:10"], "--jobs <N>"),
        (&["--jobs", "4"], "--job-work <KIND>"),
        (
            &["--jobs", "4", "--job-work", "md5:3"],
            "unknown job work \"md5\"",
        ),
        (
            &["--jobs", "4", "--job-work", "hash"],
            "expected hash:ITERS or sleep:MS",
        ),
        (
            &["--jobs", "4", "--job-work", "hash:ten"],
            "not a number of hash rounds",
        ),
        (
            &["--jobs", "4", "--job-work", "hash:10000001"],
            "at most 10000000",
        ),
        (
            &["--jobs", "4", "--job-work", "hash:99999999999999999999999"],
            "not a number of hash rounds",
        ),
        (
            &["--jobs", "4", "--job-work", "sleep:60001"],
            "at most 60000",
        ),
        (
            &["--jobs", "4", "--job-work", "sleep:-5"],
            "not a number of milliseconds",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["echo-server", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut run = spawn(&args);
        let (status, out, err) = run.wait(Duration::from_secs(10));
        assert!(!status.success(), "{extra:?} was accepted; stdout:\n{out}");
        assert!(
            err.contains(expected),
            "{extra:?}: expected {expected:?} in stderr:\n{err}"
        );
        assert!(!out.contains("listening on"), "{extra:?} started: {out}");
    }
}
