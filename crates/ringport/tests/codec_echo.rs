//! Codecs end to end over loopback: whole frames reach the handler whatever the client's
//! write boundaries, framing errors close only the offending connection with a typed
//! reason, and exact reads deliver exactly N bytes with progress.

mod util;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use ringport::codec::{DelimitedCodec, Endian, LengthCodec};
use ringport::{CloseReason, Codec, Conn, FrameError, Handler, Server};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use util::*;

const MAX: usize = 64 * 1024;

/// Echoes every frame back, re-encoded; counts frames and records close reasons.
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
        conn.send_frame(frame).expect("a decoded frame re-encodes");
    }
    fn on_close(&self, _s: (), _conn: &Conn, reason: CloseReason) {
        self.0.closes.lock().unwrap().push(reason);
    }
}

fn start(codec: Codec) -> (Server<Shared<FrameEcho>>, SocketAddr, Arc<FrameEcho>) {
    let state = Shared::new(FrameEcho::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .codec(codec)
        .start(Shared(state.0.clone()))
        .expect("start the server");
    let addr = server.local_addrs()[0];
    (server, addr, state.0)
}

fn length4() -> Codec {
    Codec::Length(
        LengthCodec::new(4, Endian::Big)
            .unwrap()
            .max_payload_len(MAX),
    )
}

/// Send `frames` random frames encoded with `codec`, cut at random boundaries into
/// separate writes, while reading the echo back and comparing it as it arrives.
fn echo_frames(addr: SocketAddr, codec: &Codec, seed: u64, frames: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut wire = Vec::new();
    for _ in 0..frames {
        let len = rng.gen_range(0..3000);
        let payload = random_bytes(&mut rng, len);
        codec.encode(&payload, &mut wire).unwrap();
    }
    expect_echo(addr, wire, seed ^ 1, 700);
}

#[test]
fn length_prefixed_frames_split_anywhere_come_back_whole_on_100_connections() {
    let _w = watchdog("length_prefixed_100", TEST_LIMIT);
    let codec = length4();
    let (server, addr, state) = start(codec.clone());
    let base = rng().next_u64();
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let codec = codec.clone();
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || echo_frames(addr, &codec, base.wrapping_add(i), 40))
                .unwrap()
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    assert_eq!(state.frames.load(Ordering::SeqCst), 100 * 40);
    wait_for_value(WAIT, "closes", || state.closes.lock().unwrap().len(), 100);
    assert!(state
        .closes
        .lock()
        .unwrap()
        .iter()
        .all(|r| *r == CloseReason::PeerClosed));
    let report = server.shutdown(WAIT);
    assert_eq!(report.stats.protocol_errors, 0);
}

#[test]
fn an_oversized_header_closes_only_its_connection() {
    let _w = watchdog("oversized_header", TEST_LIMIT);
    let (server, addr, state) = start(length4());
    let mut good = connect(addr);
    let mut frame = Vec::new();
    length4().encode(b"before", &mut frame).unwrap();
    echo_roundtrip(&mut good, &frame);

    let mut bad = connect(addr);
    write_all(&mut bad, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    let (_ending, echoed) = wait_ended(&mut bad);
    assert!(echoed.is_empty(), "nothing of the bad frame is echoed");
    wait_for_value(WAIT, "closes", || state.closes.lock().unwrap().len(), 1);
    assert_eq!(
        state.closes.lock().unwrap()[0],
        CloseReason::FrameTooLong {
            len: u32::MAX as u64,
            max: MAX as u64
        }
    );
    // The other connection, and new ones, are served as before.
    frame.clear();
    length4().encode(b"after", &mut frame).unwrap();
    echo_roundtrip(&mut good, &frame);
    let mut fresh = connect(addr);
    echo_roundtrip(&mut fresh, &frame);
    assert_eq!(server.stats().protocol_errors, 1);
    drop((good, fresh));
    server.shutdown(WAIT);
}

#[test]
fn a_line_past_the_maximum_closes_with_a_protocol_reason() {
    let _w = watchdog("line_too_long", TEST_LIMIT);
    let codec = Codec::Delimited(DelimitedCodec::lines().max_length(100));
    let (server, addr, state) = start(codec);
    let mut s = connect(addr);
    write_all(&mut s, b"short line\r\n"); // CRLF in, LF out (the codec encodes with LF)
    assert_eq!(read_n(&mut s, 11), b"short line\n");
    write_all(&mut s, &[b'x'; 300]);
    let (_ending, echoed) = wait_ended(&mut s);
    assert!(echoed.is_empty());
    wait_for_value(WAIT, "closes", || state.closes.lock().unwrap().len(), 1);
    assert_eq!(
        state.closes.lock().unwrap()[0],
        CloseReason::Protocol(FrameError::LineTooLong { max: 100 })
    );
    server.shutdown(WAIT);
}

/// Reads a 200,000-byte blob with progress, then frames lines again.
#[derive(Default)]
struct BlobThenLines {
    progress: Mutex<Vec<(usize, usize)>>,
    deliveries: Mutex<Vec<Vec<u8>>>,
}

const BLOB: usize = 200_000;

impl Handler for Shared<BlobThenLines> {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.read_exact_with_progress(BLOB).unwrap();
    }
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        self.0.deliveries.lock().unwrap().push(data.to_vec());
        conn.send(b"ok\n");
    }
    fn on_progress(&self, _s: &mut (), _conn: &mut Conn, received: usize, total: usize) {
        self.0.progress.lock().unwrap().push((received, total));
    }
    fn on_close(&self, _s: (), _conn: &Conn, _reason: CloseReason) {}
}

#[test]
fn read_exact_delivers_exactly_n_bytes_with_progress_then_the_codec_resumes() {
    let _w = watchdog("read_exact", TEST_LIMIT);
    let state = Shared::new(BlobThenLines::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .codec(Codec::Delimited(DelimitedCodec::lines()))
        .start(Shared(state.0.clone()))
        .unwrap();
    let addr = server.local_addrs()[0];
    let mut s = connect(addr);
    let mut rng = rng();
    let mut blob = random_bytes(&mut rng, BLOB);
    blob[1000] = b'\n'; // a codec would cut here; the exact read must not
    let mut off = 0;
    while off < BLOB {
        let n = rng.gen_range(1000..20_000).min(BLOB - off);
        write_all(&mut s, &blob[off..off + n]);
        off += n;
    }
    write_all(&mut s, b"line one\nline two\n");
    assert_eq!(read_n(&mut s, 9), b"ok\nok\nok\n");
    let deliveries = state.0.deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries[0] == blob, "the exact read is the blob, whole");
    assert_eq!(deliveries[1], b"line one");
    assert_eq!(deliveries[2], b"line two");
    let progress = state.0.progress.lock().unwrap().clone();
    assert!(!progress.is_empty(), "a 200 kB read spans receives");
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0), "{progress:?}");
    assert!(progress.iter().all(|&(r, t)| t == BLOB && r <= BLOB));
    assert_eq!(progress.last().unwrap().0, BLOB);
    drop(s);
    server.shutdown(WAIT);
}
