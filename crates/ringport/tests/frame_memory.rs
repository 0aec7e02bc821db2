//! Memory for a frame follows the bytes that arrived, not what its header announces, and
//! a worker-wide budget bounds what partly received frames may hold
//! (`EngineConfig::frame_budget`, `CloseReason::FrameBudget`).

mod util;

use ringport::codec::{Endian, LengthCodec};
use ringport::{CloseReason, Codec, Conn, Handler, Server};
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{connect, read_n, wait_ended, wait_until, watchdog, TEST_LIMIT, WAIT};

const MIB: usize = 1 << 20;

/// Echoes whole frames and records close reasons.
#[derive(Clone, Default)]
struct FrameEcho {
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for FrameEcho {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        conn.send_frame(frame).unwrap();
    }
    fn on_close(&self, _s: (), _conn: &Conn, why: CloseReason) {
        self.closes.lock().unwrap().push(why);
    }
}

fn length4(max: usize) -> Codec {
    Codec::Length(
        LengthCodec::new(4, Endian::Big)
            .unwrap()
            .max_payload_len(max),
    )
}

/// VmSize and VmRSS of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    };
    (field("VmSize:"), field("VmRSS:"))
}

#[test]
fn two_thousand_announced_8_mib_frames_hold_what_arrived_only() {
    let _w = watchdog("two_thousand_announced_frames", TEST_LIMIT);
    const CONNS: usize = 2000;
    const SENT: usize = 4096;
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .backlog(4096)
        .codec(length4(8 * MIB))
        .start(FrameEcho::default())
        .unwrap();
    let addr = server.local_addrs()[0];
    // One warm connection first, so the workers' own buffers are counted before.
    drop(connect(addr));
    wait_until(WAIT, "the warm-up closed", || server.stats().open == 0);
    let (vm_before, rss_before) = memory();

    let mut head = (8 * MIB as u32).to_be_bytes().to_vec();
    head.extend(std::iter::repeat(7u8).take(SENT));
    let clients: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(&head).unwrap();
            c
        })
        .collect();
    wait_until(WAIT, "every partial frame received", || {
        let s = server.stats();
        s.bytes_in as usize == CONNS * (SENT + 4)
    });
    wait_until(WAIT, "the frame memory published", || {
        server.stats().frame_bytes as usize >= CONNS * SENT
    });
    let (vm_after, rss_after) = memory();
    let held = server.stats().frame_bytes as usize;
    eprintln!(
        "{CONNS} frames announcing 8 MiB, {SENT} B each received: frame bytes {held}, \
         VmSize +{} MiB, VmRSS +{} MiB",
        (vm_after.saturating_sub(vm_before)) >> 20,
        (rss_after.saturating_sub(rss_before)) >> 20
    );
    assert!(
        held <= CONNS * 4 * SENT,
        "{held} bytes held for {CONNS} x {SENT}"
    );
    assert!(
        vm_after < vm_before + (1 << 30),
        "virtual memory grew by a GiB or more"
    );
    assert!(
        rss_after < rss_before + 200 * (1 << 20),
        "RSS grew by 200 MiB or more"
    );
    assert_eq!(server.stats().open as usize, CONNS, "nobody was closed");

    drop(clients);
    wait_until(WAIT, "all closed and their frames freed", || {
        let s = server.stats();
        s.open == 0 && s.frame_bytes == 0
    });
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn the_frame_budget_closes_the_connection_that_asks_for_more() {
    let _w = watchdog("the_frame_budget_closes_the_right_one", TEST_LIMIT);
    let echo = FrameEcho::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .codec(length4(16 * MIB))
        .frame_budget(12 * MIB)
        .start(echo.clone())
        .unwrap();
    let addr = server.local_addrs()[0];
    let frame = vec![5u8; 8 * MIB];
    let head = (frame.len() as u32).to_be_bytes();

    // The first client sends 6 of its frame's 8 MiB and waits.
    let mut first = connect(addr);
    first.write_all(&head).unwrap();
    first.write_all(&frame[..6 * MIB]).unwrap();
    wait_until(WAIT, "the first partial frame held", || {
        server.stats().frame_bytes as usize >= 6 * MIB
    });

    // The second does the same: together they pass the budget; the second is closed.
    let mut second = connect(addr);
    second.write_all(&head).unwrap();
    let _ = second.write_all(&frame[..6 * MIB]); // the server may reset it mid-way
    wait_until(WAIT, "the second closed", || {
        !echo.closes.lock().unwrap().is_empty()
    });
    assert_eq!(*echo.closes.lock().unwrap(), vec![CloseReason::FrameBudget]);
    assert_eq!(server.stats().closed_with("frame_budget"), 1);
    wait_ended(&mut second);

    // The first finishes its frame and gets it back whole.
    first.write_all(&frame[6 * MIB..]).unwrap();
    assert_eq!(read_n(&mut first, 4), head);
    assert!(
        read_n(&mut first, frame.len()) == frame,
        "the echoed frame differs"
    );
    wait_until(WAIT, "nothing held once delivered", || {
        server.stats().frame_bytes == 0
    });
    assert_eq!(server.stats().open, 1);
    server.shutdown(Duration::from_secs(5));
}
