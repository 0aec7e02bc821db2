//! `bench --attack` end to end: each hostile client against a small `std::net` server
//! whose behaviour is known (so the reported closes and timings can be checked), and
//! against `ringport echo-server` (which must still serve afterwards). Short runs, small
//! counts, every wait bounded.

mod common;

use common::*;
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How the helper server treats each connection it accepts.
#[derive(Clone, Copy)]
struct Behaviour {
    /// Close this long after accepting (None: keep it until the helper stops).
    close_after: Option<Duration>,
    /// Read what arrives (false: never read a byte).
    read: bool,
    /// Close with RST (SO_LINGER 0) instead of FIN.
    abort: bool,
}

/// What one accepted connection brought.
#[derive(Default, Clone)]
struct Seen {
    /// Each read: when (since accept), and the bytes.
    reads: Vec<(Duration, Vec<u8>)>,
    eof: bool,
    reset: bool,
}

impl Seen {
    fn bytes(&self) -> Vec<u8> {
        self.reads
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }
}

/// A loopback server on one thread with non-blocking sockets, polled every 2 ms.
struct Helper {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    fn start(behaviour: Behaviour) -> Helper {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || serve(listener, behaviour, &seen, &stop))
        };
        Helper {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait (at most 10 s) until `done` holds for what the helper has seen.
    fn wait_until(&self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&self.seen.lock().unwrap()) {
            assert!(Instant::now() < deadline, "helper never saw {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, b: Behaviour, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    // (stream, accepted at, index into `seen`); None once closed.
    let mut conns: Vec<Option<(TcpStream, Instant, usize)>> = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        while let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(true).expect("non-blocking");
            if b.abort {
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER 0");
            }
            let mut seen = seen.lock().unwrap();
            seen.push(Seen::default());
            conns.push(Some((s, Instant::now(), seen.len() - 1)));
        }
        let now = Instant::now();
        for slot in &mut conns {
            let Some((s, at, i)) = slot else { continue };
            let mut done = false;
            while b.read && !done {
                let result = s.read(&mut buf);
                let mut seen = seen.lock().unwrap();
                let seen = &mut seen[*i];
                match result {
                    Ok(0) => {
                        seen.eof = true;
                        done = true;
                    }
                    Ok(n) => seen.reads.push((now - *at, buf[..n].to_vec())),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        seen.reset = true;
                        done = true;
                    }
                }
            }
            if done || b.close_after.is_some_and(|d| now - *at >= d) {
                *slot = None;
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn attack(addr: &str, kind: &str, extra: &[&str]) -> Value {
    let mut args = vec![addr, "--attack", kind];
    args.extend_from_slice(extra);
    let (report, _) = bench_json(&args);
    assert_eq!(report["mode"], "attack", "{report}");
    assert_eq!(report["attack"]["kind"], kind, "{report}");
    assert_no_errors(&report);
    report["attack"].clone()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

fn secs(v: &Value, key: &str, which: &str) -> f64 {
    v[key][which]
        .as_f64()
        .unwrap_or_else(|| panic!("{key}.{which} is not a number in {v}"))
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

const CLOSE_200MS: Behaviour = Behaviour {
    close_after: Some(Duration::from_millis(200)),
    read: true,
    abort: false,
};
const KEEP_AND_READ: Behaviour = Behaviour {
    close_after: None,
    read: true,
    abort: false,
};
const KEEP_NEVER_READ: Behaviour = Behaviour {
    close_after: None,
    read: false,
    abort: false,
};

#[test]
fn silent_sees_each_close_of_a_server_that_closes_after_200ms() {
    let helper = Helper::start(CLOSE_200MS);
    let a = attack(
        &helper.addr,
        "silent",
        &["--connections", "20", "--duration", "1.5"],
    );
    assert_eq!(num(&a, "connected"), 20, "{a}");
    assert_eq!(num(&a, "closed"), 20, "{a}");
    assert_eq!(a["closed_by"]["eof"], 20, "{a}");
    assert_eq!(num(&a, "open_at_end"), 0, "{a}");
    assert_eq!(num(&a, "refused"), 0, "{a}");
    assert_eq!(num(&a, "bytes_sent"), 0, "{a}");
    let (min, max) = (
        secs(&a, "closed_after_secs", "min"),
        secs(&a, "closed_after_secs", "max"),
    );
    assert!(min >= 0.19 && max <= 0.7, "closes at {min}..{max} s: {a}");
    assert!(secs(&a, "closed_after_secs", "median") >= min);
    assert!(helper.seen().iter().all(|s| s.reads.is_empty()));
}

#[test]
fn silent_counts_held_and_refused_connections() {
    let helper = Helper::start(KEEP_AND_READ);
    let a = attack(
        &helper.addr,
        "silent",
        &["--connections", "10", "--duration", "1"],
    );
    assert_eq!(
        (num(&a, "connected"), num(&a, "open_at_end")),
        (10, 10),
        "{a}"
    );
    assert_eq!(num(&a, "closed"), 0, "{a}");
    assert!(a["closed_after_secs"].is_null(), "{a}");

    let a = attack(
        &closed_port(),
        "silent",
        &["--connections", "10", "--duration", "1"],
    );
    assert_eq!(num(&a, "attempted"), 10, "{a}");
    assert_eq!(num(&a, "refused"), 10, "{a}");
    assert_eq!(a["refused_by"]["refused"], 10, "{a}");
    assert_eq!(num(&a, "connected") + num(&a, "open_at_end"), 0, "{a}");
}

#[test]
fn a_reset_before_any_byte_counts_as_refused() {
    // Accept, then RST at once: how a server may turn connections away past a limit.
    let helper = Helper::start(Behaviour {
        close_after: Some(Duration::ZERO),
        read: false,
        abort: true,
    });
    let a = attack(
        &helper.addr,
        "silent",
        &["--connections", "10", "--duration", "1"],
    );
    assert_eq!(num(&a, "refused"), 10, "{a}");
    assert_eq!(
        a["refused_by"]["reset_early"].as_u64().unwrap()
            + a["refused_by"]["reset"].as_u64().unwrap(),
        10,
        "{a}"
    );
    assert_eq!(num(&a, "closed") + num(&a, "open_at_end"), 0, "{a}");

    let a = attack(
        &helper.addr,
        "flood",
        &["--connections", "4", "--duration", "1"],
    );
    assert!(num(&a, "refused") > 4, "refused slots try again: {a}");
    assert_eq!(num(&a, "closed"), 0, "{a}");
    let per_second: u64 = a["per_second"]
        .as_array()
        .expect("per_second")
        .iter()
        .map(|s| num(s, "refused"))
        .sum();
    assert_eq!(per_second, num(&a, "refused"), "{a}");
}

#[test]
fn slowloris_sends_a_framed_message_one_byte_per_interval() {
    let helper = Helper::start(KEEP_AND_READ);
    // length:2 with a 10-byte payload: the frame starts 0x00 0x0a.
    let a = attack(
        &helper.addr,
        "slowloris",
        &[
            "--connections",
            "5",
            "--interval",
            "0.2",
            "--duration",
            "1.1",
            "--codec",
            "length:2",
            "--size",
            "10",
        ],
    );
    assert_eq!(num(&a, "open_at_end"), 5, "{a}");
    assert_eq!(num(&a, "closed"), 0, "{a}");
    assert_eq!(a["interval_secs"], 0.2, "{a}");
    let sent = num(&a, "bytes_sent");
    // Bytes at 0, 0.2, .., 1.0 s: 6 per connection (a tick may fall either side of the end).
    assert!((25..=35).contains(&sent), "{sent} bytes sent: {a}");
    helper.wait_until("every byte sent", |seen| {
        seen.iter().map(|s| s.bytes().len() as u64).sum::<u64>() == sent
    });
    for s in helper.seen() {
        let bytes = s.bytes();
        assert!((4..=7).contains(&bytes.len()), "{} bytes", bytes.len());
        assert_eq!(&bytes[..2], &[0x00, 0x0a], "the frame header comes first");
        let times: Vec<Duration> = s
            .reads
            .iter()
            .flat_map(|(t, b)| std::iter::repeat(*t).take(b.len()))
            .collect();
        for w in times.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(100),
                "bytes {:?} apart",
                w[1] - w[0]
            );
        }
    }
}

#[test]
fn slowloris_sees_a_server_that_times_out_slow_frames() {
    let helper = Helper::start(CLOSE_200MS);
    let a = attack(
        &helper.addr,
        "slowloris",
        &[
            "--connections",
            "8",
            "--interval",
            "0.05",
            "--duration",
            "1",
        ],
    );
    assert_eq!(num(&a, "closed"), 8, "{a}");
    let (min, max) = (
        secs(&a, "closed_after_secs", "min"),
        secs(&a, "closed_after_secs", "max"),
    );
    assert!(min >= 0.19 && max <= 0.7, "closes at {min}..{max} s: {a}");
    // About 4 bytes each before the close, all of them read (an orderly close).
    assert!((8..=64).contains(&num(&a, "bytes_sent")), "{a}");
}

#[test]
fn slow_reader_stalls_against_a_server_that_never_reads() {
    let helper = Helper::start(KEEP_NEVER_READ);
    let a = attack(
        &helper.addr,
        "slow-reader",
        &[
            "--connections",
            "4",
            "--interval",
            "0.3",
            "--duration",
            "1.5",
        ],
    );
    assert_eq!(num(&a, "stalled"), 4, "{a}");
    assert_eq!(num(&a, "closed"), 0, "{a}");
    assert_eq!(num(&a, "open_at_end"), 4, "{a}");
    assert!(secs(&a, "written_per_conn", "min") > 0.0, "{a}");
    // Stalled once the kernel buffers filled, well before the end.
    assert!(secs(&a, "stalled_after_secs", "max") < 1.0, "{a}");
    assert_eq!(num(&a, "bytes_received"), 0, "{a}");
}

#[test]
fn slow_reader_sees_the_reset_of_a_server_that_closes_with_unread_data() {
    let helper = Helper::start(Behaviour {
        close_after: Some(Duration::from_millis(200)),
        read: false,
        abort: false,
    });
    let a = attack(
        &helper.addr,
        "slow-reader",
        &["--connections", "4", "--duration", "1.5"],
    );
    assert_eq!(num(&a, "closed"), 4, "{a}");
    // Closing with unread bytes makes the kernel answer RST.
    assert_eq!(a["closed_by"]["reset"], 4, "{a}");
    let (min, max) = (
        secs(&a, "closed_after_secs", "min"),
        secs(&a, "closed_after_secs", "max"),
    );
    assert!(min >= 0.19 && max <= 0.7, "closes at {min}..{max} s: {a}");
    assert_eq!(num(&a, "stalled"), 0, "{a}");
}

#[test]
fn flood_reconnects_as_the_server_closes_and_counts_each_second() {
    let helper = Helper::start(Behaviour {
        close_after: Some(Duration::ZERO),
        read: true,
        abort: false,
    });
    let a = attack(
        &helper.addr,
        "flood",
        &["--connections", "8", "--duration", "1.5"],
    );
    let seconds = a["per_second"].as_array().expect("per_second");
    assert_eq!(seconds.len(), 2, "{a}");
    let attempted: u64 = seconds.iter().map(|s| num(s, "attempted")).sum();
    let closed: u64 = seconds.iter().map(|s| num(s, "closed")).sum();
    assert_eq!(attempted, num(&a, "attempted"), "{a}");
    assert_eq!(closed, num(&a, "closed"), "{a}");
    assert!(closed > 8, "slots reconnect after a close: {a}");
    assert!(num(&a, "attempted") >= num(&a, "connected"), "{a}");
    assert_eq!(
        num(&a, "connected"),
        closed + num(&a, "open_at_end"),
        "every connection closed or still open: {a}"
    );
    assert!(a["attempted_per_sec"].as_f64().unwrap() > 0.0, "{a}");

    let a = attack(
        &closed_port(),
        "flood",
        &["--connections", "4", "--duration", "1"],
    );
    assert_eq!(num(&a, "connected"), 0, "{a}");
    assert!(num(&a, "refused") > 4, "refused slots try again: {a}");
    assert_eq!(
        num(&a, "attempted"),
        num(&a, "refused") + num(&a, "pending_at_end") + num(&a, "local_errors"),
        "{a}"
    );
}

#[test]
fn reset_sends_half_a_frame_then_rst() {
    let helper = Helper::start(KEEP_AND_READ);
    let a = attack(
        &helper.addr,
        "reset",
        &[
            "--connections",
            "4",
            "--duration",
            "1",
            "--codec",
            "length:4",
            "--size",
            "64",
        ],
    );
    let cycles = num(&a, "cycles");
    assert!(cycles > 0, "{a}");
    assert!(a["cycles_per_sec"].as_f64().unwrap() > 0.0, "{a}");
    assert_eq!(num(&a, "write_errors"), 0, "{a}");
    // 68 bytes framed; half of it (34) per cycle.
    assert_eq!(num(&a, "bytes_sent"), 34 * cycles, "{a}");
    helper.wait_until("some reset", |seen| seen.iter().any(|s| s.reset));
    let seen = helper.seen();
    assert!(
        seen.iter().all(|s| !s.eof),
        "an orderly close instead of RST"
    );
    for s in seen.iter().filter(|s| !s.reads.is_empty()) {
        let bytes = s.bytes();
        assert!(bytes.len() <= 34, "{} bytes", bytes.len());
        let n = bytes.len().min(4);
        assert_eq!(
            bytes[..n],
            [0u8, 0, 0, 64][..n],
            "the frame header comes first"
        );
    }
}

/// One echo round trip on a fresh connection (bounded): the server still serves.
fn assert_echoes(addr: &str, msg: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect after the attack");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).expect("echo after the attack");
    assert_eq!(back, msg);
}

#[test]
fn echo_server_survives_silent_flood_and_reset() {
    let (server, addr) = echo_server(&[]);
    let small = ["--connections", "20", "--duration", "1"];

    let a = attack(&addr, "silent", &small);
    assert_eq!(num(&a, "connected"), 20, "{a}");
    assert_eq!(num(&a, "refused"), 0, "{a}");
    assert_eq!(num(&a, "closed") + num(&a, "open_at_end"), 20, "{a}");
    assert_eq!(
        num(&a, "bytes_received"),
        0,
        "an echo server says nothing first"
    );

    let a = attack(&addr, "flood", &small);
    assert!(num(&a, "connected") >= 20, "{a}");
    assert_eq!(a["per_second"].as_array().map(Vec::len), Some(1), "{a}");
    assert_eq!(
        num(&a, "connected"),
        num(&a, "closed") + num(&a, "open_at_end"),
        "{a}"
    );

    let a = attack(&addr, "reset", &small);
    assert!(num(&a, "cycles") > 0, "{a}");
    assert_eq!(num(&a, "refused"), 0, "{a}");

    assert_echoes(&addr, b"still here");
    stop(server);
}

#[test]
fn echo_server_echoes_slowloris_frames_once_complete() {
    let (server, addr) = echo_server_with(&["--codec", "length:4"], &[]);
    // An 8-byte frame (4 header + 4 payload) at 20 bytes/s: one every 0.4 s.
    let a = attack(
        &addr,
        "slowloris",
        &[
            "--connections",
            "10",
            "--interval",
            "0.05",
            "--duration",
            "1.2",
            "--codec",
            "length:4",
            "--size",
            "4",
        ],
    );
    assert_eq!(num(&a, "open_at_end") + num(&a, "closed"), 10, "{a}");
    let (sent, received) = (num(&a, "bytes_sent"), num(&a, "bytes_received"));
    assert!(received >= 8 * 10, "at least one frame echoed each: {a}");
    assert!(received <= sent && received % 8 == 0, "whole frames: {a}");
    assert_echoes(&addr, b"\x00\x00\x00\x02ok");
    stop(server);
}

#[test]
fn echo_server_against_a_slow_reader() {
    let (server, addr) = echo_server(&[]);
    // Few connections for a short while: a server that buffers its replies takes in
    // hundreds of MB a second here.
    let a = attack(
        &addr,
        "slow-reader",
        &["--connections", "2", "--duration", "1", "--interval", "0.5"],
    );
    assert_eq!(num(&a, "connected"), 2, "{a}");
    assert!(num(&a, "bytes_sent") > 0, "{a}");
    assert_eq!(num(&a, "bytes_received"), 0, "{a}");
    assert_eq!(num(&a, "closed") + num(&a, "open_at_end"), 2, "{a}");
    assert_echoes(&addr, b"still here");
    stop(server);
}

#[test]
fn attack_flags_are_checked() {
    let mut run = spawn(&["bench", "127.0.0.1:9", "--attack", "silent", "--rate", "5"]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "clap usage error expected: {err}");
    let mut run = spawn(&[
        "bench",
        "127.0.0.1:9",
        "--attack",
        "silent",
        "--connections",
        "9001",
    ]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert!(!status.success() && err.contains("at most 9000"), "{err}");
    let mut run = spawn(&["bench", "127.0.0.1:9", "--attack", "nap"]);
    let (status, _, err) = run.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{err}");
}
