//! File transfers on a connection (`Conn::send_file`, `Conn::receive_to_file`), on the
//! backend under test (`RINGPORT_BACKEND`): order with other sends, progress, the end
//! events, a file that ends early, a disk that is full, a peer that stops short or goes
//! away, and the file handles let go.
#[path = "util/transfer.rs"]
mod transfer;
mod util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use transfer::{start, start_with, ShmDir};
use util::{connect, random_bytes, read_n, rng, wait_until, watchdog, TEST_LIMIT, WAIT};

const MIB: usize = 1024 * 1024;

#[test]
fn a_file_goes_out_in_order_with_the_bytes_around_it() {
    let _w = watchdog(
        "a_file_goes_out_in_order_with_the_bytes_around_it",
        TEST_LIMIT,
    );
    let dir = ShmDir::new("send-order");
    let data = random_bytes(&mut rng(), 10 * MIB + 123);
    let path = dir.file("f", &data);
    let (server, addr, log) = start();
    let mut c = connect(addr);
    // Whole file, then a middle range, then an empty one: each framed by HEAD and TAIL.
    let (mid_off, mid_len) = (4097u64, 3 * MIB as u64 + 5);
    let asks = format!(
        "SEND {p} 0 {}\nSEND {p} {mid_off} {mid_len}\nSEND {p} 7 0\n",
        data.len(),
        p = path.display()
    );
    c.write_all(asks.as_bytes()).unwrap();
    let mut expect = Vec::new();
    for (off, len) in [
        (0, data.len()),
        (mid_off as usize, mid_len as usize),
        (7, 0),
    ] {
        expect.extend_from_slice(b"HEAD\n");
        expect.extend_from_slice(&data[off..off + len]);
        expect.extend_from_slice(b"TAIL\n");
    }
    let got = read_n(&mut c, expect.len());
    assert!(
        got == expect,
        "the stream differs from the file and its frame"
    );
    wait_until(WAIT, "three sends reported", || {
        log.snapshot()
            .iter()
            .filter(|l| l.starts_with("sent "))
            .count()
            == 3
    });
    let lines = log.snapshot();
    let sent: Vec<_> = lines.iter().filter(|l| l.starts_with("sent ")).collect();
    assert_eq!(
        sent,
        [
            "sent 0",
            &format!("sent {}", data.len()),
            &format!("sent {mid_len}")
        ],
        "an empty send is reported at once; the others in order"
    );
    // Progress of the whole file: rising, at most once per MiB (a step may move more).
    let done: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("progress "))
        .filter(|p| p.ends_with(&format!("/{}", data.len())))
        .map(|p| p.split('/').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        (2..=10).contains(&done.len()),
        "progress reports: {lines:?}"
    );
    assert!(
        done[0] >= MIB as u64 && done.windows(2).all(|w| w[1] - w[0] >= MIB as u64),
        "{done:?}"
    );
    let stats = server.stats();
    assert_eq!(stats.files_sent, 3 - 1, "the empty send moves no file");
    assert_eq!(stats.file_bytes_sent, data.len() as u64 + mid_len);
    assert_eq!(stats.transfers_failed, 0);
    // The files are let go once sent (the test's log holds the only other handle).
    wait_until(WAIT, "the engine let go of the files", || {
        log.files
            .lock()
            .unwrap()
            .iter()
            .all(|f| Arc::strong_count(f) == 1)
    });
    drop(c);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_file_shorter_than_asked_ends_truncated_and_closes() {
    let _w = watchdog(
        "a_file_shorter_than_asked_ends_truncated_and_closes",
        TEST_LIMIT,
    );
    let dir = ShmDir::new("send-short");
    let data = random_bytes(&mut rng(), 2 * MIB + 17);
    let path = dir.file("f", &data);
    let (server, addr, log) = start();
    let mut c = connect(addr);
    let ask = format!("SEND {} 0 {}\n", path.display(), data.len() + 1000);
    c.write_all(ask.as_bytes()).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got)
        .expect("the server closes after the file");
    assert_eq!(
        got.len(),
        5 + data.len(),
        "HEAD and every byte the file had, then the close"
    );
    assert!(got[5..] == data[..]);
    wait_until(WAIT, "the close", || log.has("close "));
    let lines = log.snapshot();
    assert!(
        lines.contains(&format!(
            "failed truncated {} Truncated {{ undelivered: 1000 }}",
            data.len()
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"close file_truncated".to_string()),
        "{lines:?}"
    );
    let stats = server.stats();
    assert_eq!((stats.transfers_failed, stats.transfers_truncated), (1, 1));
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_file_cut_while_it_is_sent_ends_with_the_bytes_not_sent() {
    let _w = watchdog(
        "a_file_cut_while_it_is_sent_ends_with_the_bytes_not_sent",
        TEST_LIMIT,
    );
    let dir = ShmDir::new("send-cut");
    let total = 256 * MIB;
    let data = random_bytes(&mut rng(), total);
    let path = dir.file("f", &data);
    let (server, addr, log) = start();
    let mut c = connect(addr);
    c.write_all(format!("SEND {} 0 {total}\n", path.display()).as_bytes())
        .unwrap();
    // Read a little, so the send is under way and held up by this reader, then cut the
    // file to a quarter.
    let head = read_n(&mut c, 5 + MIB);
    assert!(head[5..] == data[..MIB]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len((total / 4) as u64)
        .unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("the server closes after the cut file");
    let delivered = MIB + rest.len();
    assert!(delivered <= total / 4, "nothing past the cut: {delivered}");
    assert!(
        rest[..] == data[MIB..delivered],
        "what came is the file's own prefix"
    );
    wait_until(WAIT, "the close", || log.has("close "));
    let lines = log.snapshot();
    let failed = lines
        .iter()
        .find(|l| l.starts_with("failed truncated"))
        .expect("a truncated failure");
    let undelivered = (total - delivered) as u64;
    assert!(
        failed.ends_with(&format!("Truncated {{ undelivered: {undelivered} }}")),
        "the count never sent matches what the reader missed: {failed} vs {undelivered}"
    );
    assert!(lines.contains(&"close file_truncated".to_string()));
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn received_bytes_go_to_the_file_and_the_stream_goes_on_after_them() {
    let _w = watchdog(
        "received_bytes_go_to_the_file_and_the_stream_goes_on_after_them",
        TEST_LIMIT,
    );
    let dir = ShmDir::new("recv");
    let data = random_bytes(&mut rng(), 20 * MIB + 999);
    let path = dir.0.join("in");
    let (server, addr, log) = start();
    let mut c = connect(addr);
    // The announcement, the bytes and the next line in one stream, written in pieces.
    let mut wire = format!("RECV {} {}\n", path.display(), data.len()).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"AFTER\n");
    let writer = {
        let mut c = c.try_clone().unwrap();
        std::thread::spawn(move || {
            for piece in wire.chunks(777_777) {
                c.write_all(piece).unwrap();
            }
        })
    };
    let expect = format!("GOT {}\nECHO AFTER\n", data.len());
    let got = read_n(&mut c, expect.len());
    writer.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&got), expect);
    assert!(
        std::fs::read(&path).unwrap() == data,
        "the file holds exactly the bytes sent"
    );
    let lines = log.snapshot();
    let received = lines
        .iter()
        .position(|l| l.starts_with("received "))
        .unwrap();
    let after = lines.iter().position(|l| l == "line AFTER").unwrap();
    assert!(
        received < after,
        "the line after the bytes comes after their end: {lines:?}"
    );
    let done: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("progress "))
        .map(|p| p.split('/').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        done.len() >= 2,
        "progress as the bytes are written: {lines:?}"
    );
    assert!(
        done.windows(2).all(|w| w[1] - w[0] >= MIB as u64),
        "{done:?}"
    );
    let stats = server.stats();
    assert_eq!(
        (stats.files_received, stats.file_bytes_received),
        (1, data.len() as u64)
    );
    drop(c);
    transfer::wait_nothing_held(&server);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_full_disk_fails_the_receive_and_keeps_the_stream_in_step() {
    let _w = watchdog(
        "a_full_disk_fails_the_receive_and_keeps_the_stream_in_step",
        TEST_LIMIT,
    );
    let (server, addr, log) = start();
    let mut c = connect(addr);
    let n = 3 * MIB;
    let mut wire = format!("RECV /dev/full {n}\n").into_bytes();
    wire.extend(std::iter::repeat_n(b'z', n));
    wire.extend_from_slice(b"AFTER\n");
    let writer = {
        let mut c = c.try_clone().unwrap();
        std::thread::spawn(move || c.write_all(&wire).unwrap())
    };
    let expect = "FAIL disk_full\nECHO AFTER\n";
    let got = read_n(&mut c, expect.len());
    writer.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&got), expect);
    let stats = server.stats();
    assert_eq!((stats.transfers_failed, stats.transfers_disk_full), (1, 1));
    assert!(log
        .snapshot()
        .iter()
        .any(|l| l.starts_with("failed disk_full 0")));
    drop(c);
    transfer::wait_nothing_held(&server);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_peer_that_stops_short_fails_the_receive() {
    let _w = watchdog("a_peer_that_stops_short_fails_the_receive", TEST_LIMIT);
    let dir = ShmDir::new("recv-short");
    let path = dir.0.join("in");
    let (server, addr, log) = start();
    let mut c = connect(addr);
    let mut wire = format!("RECV {} 1000000\n", path.display()).into_bytes();
    wire.extend(std::iter::repeat_n(b'q', 400_000));
    c.write_all(&wire).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), "FAIL peer_closed\n");
    wait_until(WAIT, "the close", || log.has("close "));
    let lines = log.snapshot();
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("PeerClosed { missing: 600000 }")),
        "{lines:?}"
    );
    assert_eq!(server.stats().transfers_peer_closed, 1);
    drop(c);
    transfer::wait_nothing_held(&server);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_peer_gone_mid_send_ends_the_transfer_and_frees_the_file() {
    let _w = watchdog(
        "a_peer_gone_mid_send_ends_the_transfer_and_frees_the_file",
        TEST_LIMIT,
    );
    let dir = ShmDir::new("send-gone");
    let data = random_bytes(&mut rng(), 64 * MIB);
    let path = dir.file("f", &data);
    let (server, addr, log) = start();
    let mut c = connect(addr);
    c.write_all(format!("SEND {} 0 {}\n", path.display(), data.len()).as_bytes())
        .unwrap();
    read_n(&mut c, MIB);
    // Close with unread data: the kernel resets the connection.
    drop(c);
    wait_until(WAIT, "the close", || log.has("close "));
    let lines = log.snapshot();
    assert!(lines.iter().any(|l| l.starts_with("failed ")), "{lines:?}");
    wait_until(WAIT, "the engine let go of the file", || {
        log.files
            .lock()
            .unwrap()
            .iter()
            .all(|f| Arc::strong_count(f) == 1)
    });
    assert_eq!(server.stats().open, 0);
    assert_eq!(server.stats().transfers_failed, 1);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_file_send_the_peer_stops_reading_ends_with_the_write_timeout() {
    let _w = watchdog(
        "a_file_send_the_peer_stops_reading_ends_with_the_write_timeout",
        TEST_LIMIT,
    );
    let dir = ShmDir::new("send-stall");
    let data = random_bytes(&mut rng(), 64 * MIB);
    let path = dir.file("f", &data);
    let mut timeouts = ringport::Timeouts::default();
    timeouts.write = Some(Duration::from_millis(300));
    let (server, addr, log) = start_with(timeouts);
    let mut c = connect(addr);
    c.write_all(format!("SEND {} 0 {}\n", path.display(), data.len()).as_bytes())
        .unwrap();
    read_n(&mut c, MIB); // under way, then never read again
    wait_until(WAIT, "the close", || log.has("close "));
    let lines = log.snapshot();
    assert!(
        lines.contains(&"close timeout_write".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("failed closed")),
        "{lines:?}"
    );
    assert_eq!(server.stats().transfers_closed, 1);
    wait_until(WAIT, "the engine let go of the file", || {
        log.files
            .lock()
            .unwrap()
            .iter()
            .all(|f| Arc::strong_count(f) == 1)
    });
    drop(c);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn two_receives_back_to_back_the_second_asked_from_the_first_ones_end() {
    let _w = watchdog("two_receives_back_to_back", TEST_LIMIT);
    let dir = ShmDir::new("recv-two");
    let (a, b) = (
        random_bytes(&mut rng(), 3 * MIB + 1),
        random_bytes(&mut rng(), 2 * MIB + 7),
    );
    let (pa, pb) = (dir.0.join("a"), dir.0.join("b"));
    let (server, addr, _log) = start();
    let mut c = connect(addr);
    // Everything in one write: the second file's bytes arrive while the first is written.
    let mut wire = format!(
        "RECV2 {} {} {} {}\n",
        pa.display(),
        a.len(),
        pb.display(),
        b.len()
    )
    .into_bytes();
    wire.extend_from_slice(&a);
    wire.extend_from_slice(&b);
    wire.extend_from_slice(b"AFTER\n");
    c.write_all(&wire).unwrap();
    let expect = format!("GOT {}\nGOT {}\nECHO AFTER\n", a.len(), b.len());
    let got = read_n(&mut c, expect.len());
    assert_eq!(String::from_utf8_lossy(&got), expect);
    assert!(std::fs::read(&pa).unwrap() == a && std::fs::read(&pb).unwrap() == b);
    drop(c);
    transfer::wait_nothing_held(&server);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn an_exact_read_asked_with_a_receive_reads_what_follows_the_file() {
    let _w = watchdog("an_exact_read_asked_with_a_receive", TEST_LIMIT);
    let dir = ShmDir::new("recv-exact");
    let data = random_bytes(&mut rng(), MIB + 3);
    let path = dir.0.join("in");
    let (server, addr, _log) = start();
    let mut c = connect(addr);
    let mut wire = format!("RECVX {} {}\n", path.display(), data.len()).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"WXYZ");
    c.write_all(&wire).unwrap();
    let expect = format!("GOT {}\nECHO WXYZ\n", data.len());
    let got = read_n(&mut c, expect.len());
    assert_eq!(String::from_utf8_lossy(&got), expect);
    assert!(std::fs::read(&path).unwrap() == data);
    drop(c);
    transfer::wait_nothing_held(&server);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn an_upload_followed_by_the_peers_eof_is_received_before_the_close() {
    let _w = watchdog("an_upload_followed_by_the_peers_eof", TEST_LIMIT);
    let dir = ShmDir::new("recv-eof");
    let data = random_bytes(&mut rng(), 4 * MIB);
    let path = dir.0.join("in");
    let (server, addr, log) = start();
    let mut c = connect(addr);
    let mut wire = format!("RECV {} {}\n", path.display(), data.len()).into_bytes();
    wire.extend_from_slice(&data);
    c.write_all(&wire).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("GOT {}\n", data.len())
    );
    assert!(std::fs::read(&path).unwrap() == data);
    wait_until(WAIT, "the close", || log.has("close "));
    let lines = log.snapshot();
    assert!(
        lines.contains(&"close peer_closed".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("failed")), "{lines:?}");
    drop(c);
    transfer::wait_nothing_held(&server);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_file_sent_last_is_followed_by_on_drained() {
    let _w = watchdog("a_file_sent_last_is_followed_by_on_drained", TEST_LIMIT);
    let dir = ShmDir::new("send-drained");
    let data = random_bytes(&mut rng(), 2 * MIB);
    let path = dir.file("f", &data);
    let (server, addr, log) = start();
    let mut c = connect(addr);
    c.write_all(format!("ONLY {} 0 {}\n", path.display(), data.len()).as_bytes())
        .unwrap();
    assert!(read_n(&mut c, data.len()) == data);
    wait_until(WAIT, "on_drained after the file", || {
        let lines = log.snapshot();
        let sent = lines.iter().position(|l| l.starts_with("sent "));
        let drained = lines.iter().rposition(|l| l == "drained");
        matches!((sent, drained), (Some(s), Some(d)) if d > s)
    });
    server.shutdown(Duration::from_secs(5));
}
