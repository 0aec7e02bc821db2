//! Hostile framing over loopback, public API only: for every codec family at extreme
//! settings (raw; length fields of 1, 2, 4 and 8 bytes with maxima up to `usize::MAX`,
//! negative, positive and extreme adjustments, header counted or not, discard mode; lines;
//! a custom delimiter; fixed frames), 200 connections at once send adversarial headers
//! (all 0xFF, all zero, just over the maximum, negative once adjusted), over-long lines
//! and noise, in small writes. Then the workers must be alive: every one of those
//! connections closed (`open` back to 0), the ones that had to fail counted as protocol
//! errors with a typed reason, no handler panic, and fresh clients' echoes still work.
//! Runs on the backend `RINGPORT_BACKEND` selects (CI runs it once per backend).

mod util;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringport::codec::{DelimitedCodec, Endian, FixedCodec, LengthCodec};
use ringport::{CloseReason, Codec, Conn, Handler, Server};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use util::*;

const CONNS: usize = 200;
/// Of those, the first ones send only `must_fail` (when the codec has such bytes).
const MUST_FAIL: usize = 20;
const THREADS: usize = 4;

/// Echoes every frame back re-encoded (a frame the codec cannot re-encode is dropped);
/// records close reasons.
#[derive(Default)]
struct FrameEcho {
    frames: AtomicUsize,
    closes: Mutex<Vec<CloseReason>>,
}

impl Handler for Shared<FrameEcho> {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        self.0.frames.fetch_add(1, Ordering::SeqCst);
        let _ = conn.send_frame(frame);
    }
    fn on_close(&self, _s: (), _conn: &Conn, reason: CloseReason) {
        self.0.closes.lock().unwrap().push(reason);
    }
}

/// A codec under attack: its settings, bytes that must fail framing (if any can), and a
/// payload it frames (for the fresh clients' echo; `None` if it frames no short payload).
struct Case {
    name: &'static str,
    codec: Codec,
    must_fail: Option<Vec<u8>>,
    good: Option<&'static [u8]>,
}

fn length(width: u8, endian: Endian) -> LengthCodec {
    LengthCodec::new(width, endian).unwrap()
}

fn cases() -> Vec<Case> {
    let huge = usize::MAX;
    let case = |name, codec, must_fail: Option<&[u8]>| Case {
        name,
        codec,
        must_fail: must_fail.map(<[u8]>::to_vec),
        good: Some(&b"hello"[..]),
    };
    vec![
        case("raw", Codec::Raw, None),
        // 0 - 1: a negative length.
        case(
            "length:1 adjustment -1",
            Codec::Length(length(1, Endian::Big).adjustment(-1)),
            Some(&[0]),
        ),
        case(
            "length:2le counting the header, adjustment +3, max 1000",
            Codec::Length(
                length(2, Endian::Little)
                    .includes_header(true)
                    .adjustment(3)
                    .max_payload_len(1000),
            ),
            Some(&[0xff, 0xff]),
        ),
        case(
            "length:4 max usize::MAX adjustment -5",
            Codec::Length(length(4, Endian::Big).adjustment(-5).max_payload_len(huge)),
            Some(&[0, 0, 0, 1]),
        ),
        // The reproduced worker panic: eight 0xFF against the largest maximum.
        case(
            "length:8 max usize::MAX",
            Codec::Length(length(8, Endian::Big).max_payload_len(huge)),
            Some(&[0xff; 8]),
        ),
        // No payload under 2^63 bytes is expressible: nothing to echo.
        Case {
            good: None,
            ..case(
                "length:8le counting the header, adjustment i64::MAX, max usize::MAX",
                Codec::Length(
                    length(8, Endian::Little)
                        .includes_header(true)
                        .adjustment(i64::MAX)
                        .max_payload_len(huge),
                ),
                Some(&[0xff; 8]),
            )
        },
        case(
            "length:8le adjustment i64::MIN+1, max usize::MAX",
            Codec::Length(
                length(8, Endian::Little)
                    .adjustment(i64::MIN + 1)
                    .max_payload_len(huge),
            ),
            Some(&[0; 8]),
        ),
        case(
            "length:8 counting the header, adjustment i64::MIN, max usize::MAX",
            Codec::Length(
                length(8, Endian::Big)
                    .includes_header(true)
                    .adjustment(i64::MIN)
                    .max_payload_len(huge),
            ),
            Some(&[0; 8]),
        ),
        case(
            "length:4 discarding oversized, max 1000",
            Codec::Length(
                length(4, Endian::Big)
                    .max_payload_len(1000)
                    .discard_oversized(true),
            ),
            None,
        ),
        case(
            "lines max 100",
            Codec::Delimited(DelimitedCodec::lines().max_length(100)),
            Some(&[b'x'; 200]),
        ),
        case(
            "delimited \\r\\n\\r\\n max 64 discarding",
            Codec::Delimited(
                DelimitedCodec::new(b"\r\n\r\n")
                    .unwrap()
                    .max_length(64)
                    .discard_oversized(true),
            ),
            None,
        ),
        Case {
            good: Some(&b"sixteen bytes!!!"[..]),
            ..case("fixed:16", Codec::Fixed(FixedCodec::new(16).unwrap()), None)
        },
    ]
}

/// Adversarial bytes for `codec`: one to three pieces.
fn hostile(rng: &mut StdRng, codec: &Codec) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(1..=3) {
        match rng.gen_range(0..8) {
            0 => out.extend_from_slice(&[0xff; 8]),
            1 => out.extend_from_slice(&[0; 8]),
            2 => {
                // Just over (and at) the maximum, in every width's field.
                let over: u64 = rng.gen_range(0..3) + rng.gen_range(0..=1) * 1000;
                let bytes = if rng.gen() {
                    (over + 255).to_be_bytes()
                } else {
                    (over + 1001).to_le_bytes()
                };
                out.extend_from_slice(&bytes[..1 << rng.gen_range(0..4)]);
            }
            3 => {
                let n = rng.gen_range(0..2000);
                out.extend((0..n).map(|_| rng.gen::<u8>()));
            }
            4 => out.extend(vec![b'x'; rng.gen_range(50..5000)]),
            5 => out.extend_from_slice(b"\r\n\r\n\n\n\r\n"),
            6 => {
                let _ = codec.encode(b"valid", &mut out);
            }
            _ => out.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0x7f]),
        }
    }
    out
}

/// Write, ignoring errors: the server may close the connection mid-attack.
fn write_in_pieces(rng: &mut StdRng, s: &mut TcpStream, data: &[u8]) {
    let mut at = 0;
    while at < data.len() {
        let n = rng.gen_range(1..=600).min(data.len() - at);
        if s.write_all(&data[at..at + n]).is_err() {
            return;
        }
        at += n;
    }
}

/// `CONNS` connections, `THREADS` threads: all connect and attack, then each half-closes
/// and reads until the server ends it (so every attack has been processed).
fn attack(addr: SocketAddr, case: &Case, seed: u64) {
    let per = CONNS / THREADS;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let codec = case.codec.clone();
            let must_fail = case.must_fail.clone();
            thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ (t as u64 + 1));
                let mut conns = Vec::new();
                for i in 0..per {
                    let mut s = connect(addr);
                    let bytes = match &must_fail {
                        Some(b) if t * per + i < MUST_FAIL => b.clone(),
                        _ => hostile(&mut rng, &codec),
                    };
                    write_in_pieces(&mut rng, &mut s, &bytes);
                    conns.push(s);
                }
                for mut s in conns {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    wait_ended(&mut s);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an attacking client failed");
    }
}

fn start(codec: Codec) -> (Server<Shared<FrameEcho>>, SocketAddr, Arc<FrameEcho>) {
    let state = Shared::new(FrameEcho::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .backlog(1024)
        .codec(codec)
        .start(Shared(state.0.clone()))
        .expect("start the server");
    let addr = server.local_addrs()[0];
    (server, addr, state.0)
}

#[test]
fn hostile_frames_never_take_a_worker_down() {
    let _w = watchdog("hostile_frames", TEST_LIMIT * 3);
    let base: u64 = rng().gen();
    for (k, case) in cases().into_iter().enumerate() {
        eprintln!("codec {}", case.name);
        let (server, addr, state) = start(case.codec.clone());
        attack(addr, &case, base.wrapping_add(k as u64));
        wait_for_value(WAIT, "open connections", || server.stats().open, 0);
        wait_for_value(
            WAIT,
            "on_close calls",
            || state.closes.lock().unwrap().len(),
            CONNS,
        );
        let stats = server.stats();
        assert_eq!(stats.handler_panics, 0, "{}", case.name);
        assert_eq!(stats.closed, CONNS as u64, "{}", case.name);
        let closes = state.closes.lock().unwrap().clone();
        let failed = closes
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    CloseReason::FrameTooLong { .. } | CloseReason::Protocol(_)
                )
            })
            .count();
        assert_eq!(failed as u64, stats.protocol_errors, "{}", case.name);
        if case.must_fail.is_some() {
            assert!(
                failed >= MUST_FAIL,
                "{}: {failed} protocol errors, {MUST_FAIL} at least",
                case.name
            );
        }
        if case.codec == Codec::Raw {
            assert_eq!(failed, 0, "raw bytes cannot be malformed");
        }
        // The workers still serve: fresh clients (over both workers) get their echo, or
        // where nothing short can be framed, their bad header is refused as before.
        for _ in 0..8 {
            let mut fresh = connect(addr);
            match (case.good, &case.must_fail) {
                (Some(good), _) => {
                    let mut frame = Vec::new();
                    case.codec.encode(good, &mut frame).unwrap();
                    echo_roundtrip(&mut fresh, &frame);
                }
                (None, Some(bad)) => {
                    let errors = server.stats().protocol_errors;
                    write_all(&mut fresh, bad);
                    wait_ended(&mut fresh);
                    wait_for_value(
                        WAIT,
                        "protocol errors",
                        || server.stats().protocol_errors,
                        errors + 1,
                    );
                }
                (None, None) => unreachable!("every case can show its workers alive"),
            }
        }
        wait_for_value(WAIT, "open connections", || server.stats().open, 0);
        let report = server.shutdown(WAIT);
        assert_eq!(report.stats.handler_panics, 0);
    }
}
