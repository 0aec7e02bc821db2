//! How connections end: the peer closes, the peer resets, the peer half-closes.

mod util;

use ringport::CloseReason;
use socket2::SockRef;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;
use util::*;

#[test]
fn peer_close_is_reported_as_peer_closed() {
    let _watchdog = watchdog("peer_close_is_reported_as_peer_closed", TEST_LIMIT);
    let (server, addr, events) = echo_server();
    let mut stream = connect(addr);
    echo_roundtrip(&mut stream, b"hello");
    drop(stream);

    let reasons = events.wait_closes(1);
    assert_eq!(reasons, vec![CloseReason::PeerClosed]);
    assert_eq!(events.eofs.load(Ordering::SeqCst), 1, "on_eof runs once");
    wait_for_value(WAIT, "open connections", || server.stats().open, 0);
    assert_eq!(server.stats().closed, 1);
}

#[test]
fn peer_reset_is_reported_as_peer_reset() {
    let _watchdog = watchdog("peer_reset_is_reported_as_peer_reset", TEST_LIMIT);
    let (server, addr, events) = echo_server();
    let mut stream = connect(addr);
    echo_roundtrip(&mut stream, b"hello");
    // SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(stream);

    let reasons = events.wait_closes(1);
    assert_eq!(reasons, vec![CloseReason::PeerReset]);
    assert_eq!(
        events.eofs.load(Ordering::SeqCst),
        0,
        "a reset is not an EOF"
    );
    wait_for_value(WAIT, "open connections", || server.stats().open, 0);
}

#[test]
fn half_close_gets_every_echoed_byte_then_eof() {
    let _watchdog = watchdog("half_close_gets_every_echoed_byte_then_eof", TEST_LIMIT);
    const LEN: usize = 768 * 1024;
    let (server, addr, events) = echo_server();
    let data = random_bytes(&mut rng(), LEN);
    let mut stream = connect(addr);
    let mut writer_stream = stream.try_clone().unwrap();
    let to_send = data.clone();
    // Write from another thread so this one reads while the echo comes back.
    let writer = thread::spawn(move || {
        for chunk in to_send.chunks(10_000) {
            write_all(&mut writer_stream, chunk);
        }
        shutdown_write(&writer_stream);
    });

    // read_to_eof only returns on read() == 0: every echoed byte, then EOF.
    let back = read_to_eof(&mut stream);
    writer.join().expect("the writer failed");
    assert_eq!(back.len(), LEN, "echoed byte count");
    assert!(back == data, "the echo differs from what was sent");

    let reasons = events.wait_closes(1);
    assert_eq!(reasons, vec![CloseReason::PeerClosed]);
    assert_eq!(events.eofs.load(Ordering::SeqCst), 1);
    let stats = server.stats();
    assert_eq!(stats.bytes_in, LEN as u64);
    assert_eq!(stats.bytes_out, LEN as u64);
    assert_eq!(stats.undelivered_bytes, 0);
}

#[test]
fn half_close_with_nothing_sent_gets_eof() {
    let _watchdog = watchdog("half_close_with_nothing_sent_gets_eof", TEST_LIMIT);
    let (_server, addr, events) = echo_server();
    let mut stream = connect(addr);
    shutdown_write(&stream);
    let back = read_to_eof(&mut stream);
    assert!(
        back.is_empty(),
        "nothing was sent, yet {} bytes came back",
        back.len()
    );
    assert_eq!(events.wait_closes(1), vec![CloseReason::PeerClosed]);
}
