//! The readiness backend with real sockets: memory after a burst.

use super::*;
use crate::sys::outbound::Outbound;
use bytes::Bytes;
use std::os::unix::net::UnixStream;

/// Socket pairs in the burst (two descriptors each, within the default soft limit).
const BURST: usize = 2000;
/// Chunks in each reply: one gathered send of many pieces.
const CHUNKS: usize = 300;

fn config() -> DriverConfig {
    DriverConfig {
        ring_entries: 256,
        cq_entries: 512,
        recv_buffers: 16,
        recv_buffer_size: 4096,
    }
}

/// A reply of `CHUNKS` shared pieces of 8 bytes.
fn gathered_reply() -> Outbound {
    let mut out = Outbound::default();
    for _ in 0..CHUNKS {
        out.push_shared(Bytes::from_static(b"12345678"));
    }
    out
}

#[test]
fn a_burst_of_gathered_sends_leaves_no_memory_sized_by_it() {
    let mut d = PollDriver::new(config()).expect("poll driver");
    let pairs: Vec<(UnixStream, UnixStream)> = (0..BURST)
        .map(|_| UnixStream::pair().expect("socketpair"))
        .collect();
    let mut outs: Vec<Outbound> = (0..BURST).map(|_| gathered_reply()).collect();
    for (key, ((ours, _), out)) in pairs.iter().zip(&mut outs).enumerate() {
        let covered = d.send(key as u32, ours.as_raw_fd(), out, key as u64);
        assert_eq!(covered, CHUNKS * 8);
    }
    assert_eq!(d.sends.in_flight(), BURST);

    // Every send completes (written whole: the replies fit the socket buffers).
    let mut done = vec![false; BURST];
    let mut left = BURST;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut batch = Vec::new();
    while left > 0 {
        assert!(Instant::now() < deadline, "{left} sends never completed");
        d.submit_and_wait(1, Duration::ZERO, Some(Duration::from_millis(10)))
            .expect("wait");
        d.drain(&mut batch);
        for c in batch.drain(..) {
            let key = c.user_data as usize;
            assert_eq!(c.result, (CHUNKS * 8) as i32, "send {key}");
            assert!(!std::mem::replace(&mut done[key], true), "one completion");
            d.finish_send(key as u32, c.result as usize, &mut outs[key]);
            left -= 1;
        }
    }
    assert!(outs.iter().all(Outbound::is_empty));
    assert_eq!(d.sends.in_flight(), 0);
    let (spares, room, _) = d.sends.footprint();
    assert!(spares <= 512, "{spares} spare ops kept");
    // A bound of entries, not of the burst (which moved BURST * CHUNKS chunks).
    assert!(room <= 4096 + 512 * 4, "spares keep room for {room} chunks");

    // The burst closes: the descriptor table shrinks back.
    let (len, _) = d.fds.footprint();
    assert!(len > BURST, "every descriptor was known ({len})");
    for (ours, theirs) in pairs {
        d.close(OwnedFd::from(ours), 0);
        drop(theirs);
    }
    let (len, cap) = d.fds.footprint();
    assert_eq!(len, 0, "no state left for closed descriptors");
    assert!(cap <= 4096, "descriptor table capacity {cap}");
}
