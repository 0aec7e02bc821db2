//! Sends on both drivers with real sockets: memory after a burst, and a reclaim that
//! comes too early.

use super::*;
use crate::sys::driver::Driver;
use crate::sys::fake::FakeDriver;
use crate::sys::op::testing::{driver, wait_until};
use crate::sys::poll::PollDriver;
use crate::sys::uring::UringDriver;
use bytes::Bytes;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// Socket pairs in the burst (two descriptors each, within the default soft limit).
const BURST: usize = 2000;
/// Chunks in each reply: one gathered sendmsg of many iovecs.
const CHUNKS: usize = 300;

/// (sends held, spares, room the spares keep).
struct SendFootprint;

impl Call for SendFootprint {
    type Answer = (usize, usize, usize);

    fn call_uring(self, core: &mut UringCore) -> Self::Answer {
        footprint(core.state::<Sends>())
    }

    fn call_poll(self, core: &mut PollCore) -> Self::Answer {
        footprint(&core.op_state::<PollSends>().1.sends)
    }

    fn call_fake(self, fake: &mut FakeDriver) -> Self::Answer {
        (fake.sends_held(), 0, 0)
    }
}

fn footprint(s: &Sends) -> (usize, usize, usize) {
    let (spares, room, _) = s.table.footprint();
    (s.table.in_flight(), spares, room)
}

fn a_burst_of_gathered_sends_leaves_a_bounded_free_list<D: Driver>() {
    let Some(mut d) = driver::<D>() else { return };
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
        let op = SendMsg {
            key: key as u32,
            fd: ours.as_raw_fd(),
            out,
        };
        assert_eq!(d.start(op, key as u64), CHUNKS * 8);
    }
    assert_eq!(d.call(SendFootprint).0, BURST);

    // Every send completes once (written whole: the replies fit the socket buffers).
    let mut done = vec![false; BURST];
    let mut left = BURST;
    let mut batch = Vec::new();
    while left > 0 {
        wait_until(&mut d, &mut batch, |b| !b.is_empty());
        for c in batch.drain(..) {
            let key = c.user_data as usize;
            assert_eq!(c.result, (CHUNKS * 8) as i32, "send {key}");
            assert!(!std::mem::replace(&mut done[key], true), "one completion");
            let sent = c.result as usize;
            d.call(ReclaimSend {
                key: key as u32,
                sent,
                out: &mut outs[key],
            });
            left -= 1;
        }
    }
    assert!(outs.iter().all(Outbound::is_empty));
    let (held, spares, room) = d.call(SendFootprint);
    assert_eq!(held, 0);
    assert!(spares <= 512, "{spares} spare ops kept");
    // Room counts chunks and iovecs alike; bounded, not BURST * CHUNKS.
    assert!(
        room <= 4096 + 512 * 4,
        "spares keep room for {room} entries"
    );
    // The sockets stay open until every send completed (the pairs live to here).
    drop(pairs);
}

fn a_send_reclaimed_before_its_completion_is_reaped_keeps_its_memory<D: Driver>() {
    let Some(mut d) = driver::<D>() else { return };
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut out = Outbound::default();
    out.push_shared(Bytes::from_static(b"hello"));
    let key = 7u32;
    let name = (3u64 << 56) | u64::from(key);
    let op = SendMsg {
        key,
        fd: ours.as_raw_fd(),
        out: &mut out,
    };
    assert_eq!(d.start(op, name), 5);
    // Too early: nothing reaped yet (not even submitted). The op keeps its chunks.
    d.call(ReclaimSend {
        key,
        sent: 0,
        out: &mut out,
    });
    assert_eq!(
        d.call(SendFootprint).0,
        1,
        "released before the kernel was done"
    );
    assert!(out.is_empty(), "chunks handed back while still lent");

    let mut batch = Vec::new();
    wait_until(&mut d, &mut batch, |b| !b.is_empty());
    assert_eq!((batch[0].user_data, batch[0].result), (name, 5));
    d.call(ReclaimSend {
        key,
        sent: 5,
        out: &mut out,
    });
    assert_eq!(d.call(SendFootprint).0, 0);
    let mut got = [0u8; 5];
    std::io::Read::read_exact(&mut &theirs, &mut got).unwrap();
    assert_eq!(&got, b"hello");
}

#[test]
fn uring_a_burst_of_gathered_sends_leaves_a_bounded_free_list() {
    a_burst_of_gathered_sends_leaves_a_bounded_free_list::<UringDriver>();
}

#[test]
fn poll_a_burst_of_gathered_sends_leaves_a_bounded_free_list() {
    a_burst_of_gathered_sends_leaves_a_bounded_free_list::<PollDriver>();
}

#[test]
fn uring_a_send_reclaimed_early_keeps_its_memory() {
    a_send_reclaimed_before_its_completion_is_reaped_keeps_its_memory::<UringDriver>();
}

#[test]
fn poll_a_send_reclaimed_early_keeps_its_memory() {
    a_send_reclaimed_before_its_completion_is_reaped_keeps_its_memory::<PollDriver>();
}
