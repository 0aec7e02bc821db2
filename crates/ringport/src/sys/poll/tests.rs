//! The readiness backend with real sockets: descriptor state after a burst (the send
//! path is tested on both drivers in `sys/op/send/tests.rs`).

use super::*;
use crate::sys::op::testing::config;
use crate::sys::op::{Close, RecvMulti};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Socket pairs in the burst (two descriptors each, within the default soft limit).
const BURST: usize = 2000;

#[test]
fn a_burst_of_connections_leaves_no_descriptor_state_once_closed() {
    let mut d = PollDriver::new(config()).expect("poll driver");
    let pairs: Vec<(UnixStream, UnixStream)> = (0..BURST)
        .map(|_| UnixStream::pair().expect("socketpair"))
        .collect();
    for (i, (ours, _)) in pairs.iter().enumerate() {
        d.start(
            RecvMulti {
                fd: ours.as_raw_fd(),
            },
            i as u64,
        );
    }
    let (len, _) = d.core.fd_footprint();
    assert!(len > BURST, "every descriptor was known ({len})");

    // The burst closes (no receive completed: nothing was sent): the table shrinks back.
    for (i, (ours, theirs)) in pairs.into_iter().enumerate() {
        d.start(
            Close {
                fd: OwnedFd::from(ours),
            },
            i as u64,
        );
        drop(theirs);
    }
    let (len, cap) = d.core.fd_footprint();
    assert_eq!(len, 0, "no state left for closed descriptors");
    assert!(cap <= 4096, "descriptor table capacity {cap}");
}

#[test]
fn a_lingering_poll_keeps_its_descriptor_registered_until_released() {
    use crate::sys::op::testing::wait_until;
    use crate::sys::op::{PollAdd, ReleaseFd};
    use std::io::Write;
    let mut d = PollDriver::new(config()).expect("poll driver");
    let (mut a, b) = UnixStream::pair().expect("socketpair");
    let fd = b.as_raw_fd();
    let lingering = PollAdd {
        linger: true,
        ..PollAdd::oneshot(fd, libc::POLLIN as u32)
    };
    a.write_all(b"x").unwrap();
    let mut got = Vec::new();
    for round in 1..=3 {
        // Unread: each re-arm of the registered descriptor answers from a look at once.
        d.start(lingering, round);
        wait_until(&mut d, &mut got, |g| g.len() == round as usize);
        assert!(
            d.core.io().fd(fd).registered,
            "round {round}: still registered"
        );
    }
    assert!(got
        .iter()
        .all(|c| !c.more() && c.result as u32 & libc::POLLIN as u32 != 0));
    d.call(ReleaseFd { fd });
    assert_eq!(d.core.fd_footprint().0, 0, "released: nothing known of it");

    // Without linger, the end of the last poll takes it out of the set at once.
    d.start(PollAdd::oneshot(fd, libc::POLLIN as u32), 9);
    wait_until(&mut d, &mut got, |g| g.len() == 4);
    assert_eq!(d.core.fd_footprint().0, 0);
}
