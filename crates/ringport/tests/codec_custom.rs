//! User-written codecs end to end: the `varint_echo` example's codec (a LEB128 length,
//! then the payload) frames streams cut anywhere; an oversized announcement and an
//! over-long varint close only their connection, with a typed, counted reason; and
//! `Conn::set_codec` switches framing mid-stream, for bytes already received too.

mod util;

#[path = "../examples/varint_echo.rs"]
mod varint_echo;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use ringport::codec::{DelimitedCodec, Endian, LengthCodec};
use ringport::{CloseReason, Codec, Conn, FrameError, Handler, Server};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use util::*;
use varint_echo::{VarintCodec, MAX_PAYLOAD};

fn varint() -> Codec {
    Codec::custom(VarintCodec)
}

fn length4() -> Codec {
    Codec::Length(LengthCodec::new(4, Endian::Big).unwrap())
}

fn lines() -> Codec {
    Codec::Delimited(DelimitedCodec::lines())
}

fn encoded(codec: &Codec, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    codec
        .encode(payload, &mut out)
        .expect("the payload encodes");
    out
}

#[test]
fn varint_frames_split_anywhere_come_back_whole() {
    let _w = watchdog("varint_frames", TEST_LIMIT);
    let server = varint_echo::start("127.0.0.1:0").expect("start the example's server");
    let addr = server.local_addrs()[0];
    let base = rng().next_u64();
    let clients: Vec<_> = (0..20u64)
        .map(|i| {
            thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(base.wrapping_add(i));
                let codec = varint();
                let mut wire = Vec::new();
                for k in 0..60 {
                    // Mostly small frames; now and then one of 1- to 3-byte varints' edges
                    // or the largest allowed.
                    let len = match k % 20 {
                        0 => MAX_PAYLOAD,
                        1 => 127,
                        2 => 128,
                        3 => 16_383,
                        4 => 16_384,
                        5 => 0,
                        _ => rng.gen_range(0..3000),
                    };
                    wire.extend(encoded(&codec, &random_bytes(&mut rng, len)));
                }
                expect_echo(addr, wire, base ^ i, 700);
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    let report = server.shutdown(WAIT);
    assert_eq!(report.stats.protocol_errors, 0);
}

/// Echoes frames with the connection's codec and records close reasons.
#[derive(Default)]
struct Recorder {
    closes: Mutex<Vec<CloseReason>>,
}

impl Handler for Shared<Recorder> {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        conn.send_frame(frame).expect("a decoded frame re-encodes");
    }
    fn on_close(&self, _s: (), _conn: &Conn, reason: CloseReason) {
        self.0.closes.lock().unwrap().push(reason);
    }
}

fn start_varint() -> (Server<Shared<Recorder>>, SocketAddr, Arc<Recorder>) {
    let state = Shared::new(Recorder::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .codec(varint())
        .start(state.clone())
        .expect("start the server");
    let addr = server.local_addrs()[0];
    (server, addr, state.0)
}

/// `bad` is sent to one connection (a byte a write, until the server has closed it) while
/// another goes on; the bad one must be closed with `reason`, counted in
/// `protocol_errors`, and the good one echo.
fn closes_only_its_connection(bad_bytes: &[u8], reason: CloseReason) {
    let (server, addr, state) = start_varint();
    let codec = varint();
    let mut good = connect(addr);
    echo_roundtrip(&mut good, &encoded(&codec, b"before"));
    let mut bad = connect(addr);
    for b in bad_bytes {
        if bad.write_all(std::slice::from_ref(b)).is_err() {
            break; // closed as soon as the bytes in were enough to tell
        }
    }
    let (_, echoed) = wait_ended(&mut bad);
    assert!(echoed.is_empty(), "nothing of a bad frame is echoed");
    wait_for_value(
        WAIT,
        "the bad connection's close",
        || state.closes.lock().unwrap().clone(),
        vec![reason],
    );
    assert_eq!(server.stats().protocol_errors, 1);
    echo_roundtrip(&mut good, &encoded(&codec, b"after"));
    drop(good);
    server.shutdown(WAIT);
}

#[test]
fn a_frame_announcing_more_than_1_mib_closes_only_its_connection() {
    let _w = watchdog("varint_oversized", TEST_LIMIT);
    // 1 MiB + 1 = 0x100001 as LEB128: 0x81 0x80 0x40.
    let too_long = (MAX_PAYLOAD + 1) as u64;
    closes_only_its_connection(
        &[0x81, 0x80, 0x40, 1, 2, 3],
        CloseReason::FrameTooLong {
            len: too_long,
            max: MAX_PAYLOAD as u64,
        },
    );
}

#[test]
fn an_11_byte_varint_closes_only_its_connection() {
    let _w = watchdog("varint_11_bytes", TEST_LIMIT);
    // Eleven continuation bytes of value zero: never oversized, just too long a varint.
    closes_only_its_connection(
        &[0x80; 11],
        CloseReason::Protocol(FrameError::Malformed("varint longer than 10 bytes")),
    );
}

/// A line protocol whose `HELLO` switches the connection to 4-byte length frames; the
/// welcome is sent after the switch, so it is length-framed too. Frames are echoed.
struct Handshake;

impl Handler for Handshake {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        if matches!(conn.codec(), Codec::Delimited(_)) {
            assert_eq!(frame, b"HELLO");
            conn.set_codec(length4());
            conn.send_frame(b"WELCOME").unwrap();
        } else {
            conn.send_frame(frame).unwrap();
        }
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn set_codec_frames_the_rest_of_the_same_receive() {
    let _w = watchdog("set_codec_handshake", TEST_LIMIT);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .codec(lines())
        .start(Handshake)
        .expect("start the server");
    let addr = server.local_addrs()[0];
    let l4 = length4();
    for _ in 0..20 {
        // The line and both frames in one write: the frames arrive in the receive that
        // carried the line, and are held until the handler has switched codecs.
        let mut wire = b"HELLO\n".to_vec();
        wire.extend(encoded(&l4, b"frame one"));
        wire.extend(encoded(&l4, b"frame two\n"));
        let mut want = encoded(&l4, b"WELCOME");
        want.extend(encoded(&l4, b"frame one"));
        want.extend(encoded(&l4, b"frame two\n"));
        let mut s: TcpStream = connect(addr);
        write_all(&mut s, &wire);
        assert_eq!(read_n(&mut s, want.len()), want);
    }
    assert_eq!(server.shutdown(WAIT).stats.protocol_errors, 0);
}

/// Echoes each frame with the codec that decoded it, then moves the connection on to
/// the next codec of the cycle lines → length → varint → lines.
struct Rotate;

impl Handler for Rotate {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        conn.send_frame(frame).unwrap();
        let next = match conn.codec() {
            Codec::Delimited(_) => length4(),
            Codec::Length(_) => varint(),
            _ => lines(),
        };
        conn.set_codec(next);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn a_codec_switched_on_every_frame_survives_any_chunking() {
    let _w = watchdog("set_codec_rotate", TEST_LIMIT);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .codec(lines())
        .start(Rotate)
        .expect("start the server");
    let addr = server.local_addrs()[0];
    let base = rng().next_u64();
    let clients: Vec<_> = (0..10u64)
        .map(|i| {
            thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(base.wrapping_add(i));
                let cycle = [lines(), length4(), varint()];
                let mut wire = Vec::new();
                for k in 0..150 {
                    let len = rng.gen_range(0..400);
                    // Printable bytes: a line never holds its delimiter.
                    let payload: Vec<u8> = (0..len).map(|_| rng.gen_range(b' '..=b'~')).collect();
                    wire.extend(encoded(&cycle[k % 3], &payload));
                }
                // Pieces of 1 to 40 bytes: switches fall inside receives and across them.
                expect_echo(addr, wire, base ^ i, 40);
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    assert_eq!(server.shutdown(WAIT).stats.protocol_errors, 0);
}

/// Lines; `LATER` asks for a timer, and the timer switches to 4-byte length frames: the
/// bytes held by the line decoder since are framed anew without waiting for a receive.
struct SwitchOnTimer;

impl Handler for SwitchOnTimer {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        if frame == b"LATER" && matches!(conn.codec(), Codec::Delimited(_)) {
            conn.set_timer(std::time::Duration::from_millis(20), 1);
        } else {
            conn.send_frame(frame).unwrap();
        }
    }
    fn on_timer(&self, _s: &mut (), conn: &mut Conn, _token: u64) {
        conn.set_codec(length4());
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn set_codec_outside_on_data_frames_the_bytes_already_held() {
    let _w = watchdog("set_codec_timer", TEST_LIMIT);
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .codec(lines())
        .start(SwitchOnTimer)
        .expect("start the server");
    let addr = server.local_addrs()[0];
    let l4 = length4();
    // No newline in the frame: the line decoder holds it until the switch.
    let frame = encoded(&l4, b"held payload");
    let mut wire = b"LATER\n".to_vec();
    wire.extend(&frame);
    let mut s = connect(addr);
    write_all(&mut s, &wire);
    // Nothing more is sent: only the switch itself can deliver the frame.
    assert_eq!(read_n(&mut s, frame.len()), frame);
    assert_eq!(server.shutdown(WAIT).stats.protocol_errors, 0);
}
