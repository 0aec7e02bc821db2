//! The io_uring send path with real sockets: memory after a burst.

use super::*;
use bytes::Bytes;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Socket pairs in the burst (two descriptors each, within the default soft limit).
const BURST: usize = 2000;
/// Chunks in each reply: one gathered sendmsg of many iovecs.
const CHUNKS: usize = 300;

#[test]
fn a_burst_of_gathered_sends_leaves_a_bounded_free_list() {
    let mut ring = match Uring::new(256, 4096) {
        Ok(ring) => ring,
        Err(e) => {
            // A kernel or sandbox without io_uring: the poll backend's test covers the
            // shared send table.
            eprintln!("no io_uring here ({e}); skipped");
            return;
        }
    };
    let pairs: Vec<(UnixStream, UnixStream)> = (0..BURST)
        .map(|_| UnixStream::pair().expect("socketpair"))
        .collect();
    let mut outs: Vec<Outbound> = (0..BURST)
        .map(|_| {
            let mut out = Outbound::default();
            for _ in 0..CHUNKS {
                out.push_shared(Bytes::from_static(b"12345678"));
            }
            out
        })
        .collect();
    for (key, ((ours, _), out)) in pairs.iter().zip(&mut outs).enumerate() {
        assert_eq!(
            ring.send(key as u32, ours.as_raw_fd(), out, key as u64),
            CHUNKS * 8
        );
    }
    assert_eq!(ring.sends.in_flight(), BURST);

    let mut left = BURST;
    let mut batch = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while left > 0 {
        assert!(Instant::now() < deadline, "{left} sends never completed");
        ring.submit_and_wait(1, Duration::ZERO, Some(Duration::from_millis(10)))
            .expect("wait");
        ring.drain(&mut batch);
        for c in batch.drain(..) {
            let key = c.user_data as usize;
            assert_eq!(c.result, (CHUNKS * 8) as i32, "send {key}");
            ring.finish_send(key as u32, c.result as usize, &mut outs[key]);
            left -= 1;
        }
    }
    assert!(outs.iter().all(Outbound::is_empty));
    assert_eq!(ring.sends.in_flight(), 0);
    let (spares, room, _) = ring.sends.footprint();
    assert!(spares <= 512, "{spares} spare ops kept");
    // Room counts chunks and iovecs alike; bounded, not BURST * CHUNKS.
    assert!(
        room <= 4096 + 512 * 4,
        "spares keep room for {room} entries"
    );
    // The sockets stay open until every send completed (the pairs live to here).
    drop(pairs);
}

#[test]
fn submit_failures_give_up_after_the_limit_and_a_success_resets_them() {
    let mut f = SubmitFailures::default();
    for _ in 0..SUBMIT_FAILURES_MAX - 1 {
        assert!(f.failed(libc::ENOMEM));
    }
    f.succeeded();
    for _ in 0..SUBMIT_FAILURES_MAX - 1 {
        assert!(
            f.failed(libc::ENOMEM),
            "the count restarted after a success"
        );
    }
    assert!(!f.failed(libc::EAGAIN), "the last try in a row gives up");
    assert_eq!(f.broken, Some(libc::EAGAIN));
}

#[test]
fn a_send_finished_before_its_completion_is_reaped_keeps_its_memory() {
    let Ok(mut ring) = Uring::new(64, 256) else {
        eprintln!("no io_uring here; skipped");
        return;
    };
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut out = Outbound::default();
    out.push_shared(Bytes::from_static(b"hello"));
    let key = 7u32;
    let name = (3u64 << 56) | u64::from(key);
    assert_eq!(ring.send(key, ours.as_raw_fd(), &mut out, name), 5);
    // Too early: nothing reaped yet (not even submitted). The op keeps its chunks.
    ring.finish_send(key, 0, &mut out);
    assert_eq!(
        ring.sends.in_flight(),
        1,
        "released before the kernel was done"
    );
    assert!(out.is_empty(), "chunks handed back while still lent");

    let mut batch = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while batch.is_empty() {
        assert!(Instant::now() < deadline, "the send never completed");
        ring.submit_and_wait(1, Duration::ZERO, Some(Duration::from_millis(10)))
            .expect("wait");
        ring.drain(&mut batch);
    }
    assert_eq!((batch[0].user_data, batch[0].result), (name, 5));
    ring.finish_send(key, 5, &mut out);
    assert_eq!(ring.sends.in_flight(), 0);
    let mut got = [0u8; 5];
    std::io::Read::read_exact(&mut &theirs, &mut got).unwrap();
    assert_eq!(&got, b"hello");
}
