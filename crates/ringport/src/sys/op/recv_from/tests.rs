//! Datagram receives on both drivers, with real UDP sockets: datagrams of every size up
//! to the largest arrive whole with their source; one longer than the buffer is marked
//! truncated; an ICMP error on a connected socket ends the receive; a cancel ends it.

use super::*;
use crate::sys::driver::{Driver, DriverConfig};
use crate::sys::op::testing::{config, driver_with, wait_until};
use crate::sys::op::Cancel;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

fn bound() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_nonblocking(true).unwrap();
    s
}

/// The datagrams of `got`'s successful completions: (from, bytes, truncated).
fn datagrams<D: Driver>(d: &mut D, got: &[Completion]) -> Vec<(Option<SocketAddr>, Vec<u8>, bool)> {
    got.iter()
        .filter(|c| c.result >= 0)
        .map(|c| {
            let buf = d.claim_datagram(c).expect("a datagram to claim");
            let dg = d.datagram(&buf);
            let out = (dg.from, dg.data.to_vec(), dg.truncated);
            d.recycle_datagram(buf);
            out
        })
        .collect()
}

fn datagrams_arrive_whole_with_their_source<D: Driver>() {
    let Some(mut d) = driver_with::<D>(config()) else {
        return;
    };
    let (us, them) = (bound(), bound());
    d.start(RecvFromMulti { fd: us.as_raw_fd() }, 1);
    let sizes = [0usize, 1, 1000, 9000, 65_507];
    let mut got = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..n).map(|b| (b * 7 + i) as u8).collect();
        them.send_to(&payload, us.local_addr().unwrap()).unwrap();
        // One at a time: each is claimed before the next wait resets what was lent.
        let before = got.len();
        wait_until(&mut d, &mut got, |g| g.len() > before);
        let all = datagrams(&mut d, &got[before..]);
        assert_eq!(all.len(), 1, "{:?}", &got[before..]);
        let (from, data, truncated) = &all[0];
        assert_eq!(*from, Some(them.local_addr().unwrap()));
        assert!(!truncated, "{n} bytes");
        assert_eq!(*data, payload, "{n} bytes");
        if !got[before].more() {
            // io_uring ends a multishot recvmsg on a zero-length datagram (the kernel
            // treats it like a stream's end of file); it is delivered all the same, and
            // the owner arms another receive.
            assert_eq!(n, 0, "{:?}", &got[before..]);
            d.start(RecvFromMulti { fd: us.as_raw_fd() }, 1);
        }
    }
}

fn a_datagram_longer_than_the_buffer_is_marked_truncated<D: Driver>() {
    let small = DriverConfig {
        datagram_buffer_size: 1024 + crate::sys::DATAGRAM_HEADROOM,
        ..config()
    };
    let Some(mut d) = driver_with::<D>(small) else {
        return;
    };
    let (us, them) = (bound(), bound());
    d.start(RecvFromMulti { fd: us.as_raw_fd() }, 2);
    let payload: Vec<u8> = (0..2000).map(|b| b as u8).collect();
    them.send_to(&payload, us.local_addr().unwrap()).unwrap();
    let mut got = Vec::new();
    wait_until(&mut d, &mut got, |g| !g.is_empty());
    let all = datagrams(&mut d, &got);
    assert_eq!(all.len(), 1);
    let (_, data, truncated) = &all[0];
    assert!(*truncated);
    assert_eq!(data[..], payload[..1024]);
}

fn an_icmp_error_on_a_connected_socket_ends_the_receive<D: Driver>() {
    let Some(mut d) = driver_with::<D>(config()) else {
        return;
    };
    let us = bound();
    // A port nobody listens on: the send draws an ICMP port unreachable.
    let gone = bound().local_addr().unwrap();
    us.connect(gone).unwrap();
    d.start(RecvFromMulti { fd: us.as_raw_fd() }, 3);
    us.send(b"anyone?").unwrap();
    let mut got = Vec::new();
    wait_until(&mut d, &mut got, |g| g.iter().any(|c| !c.more()));
    let last = got.last().unwrap();
    assert_eq!(
        (last.result, last.more()),
        (-libc::ECONNREFUSED, false),
        "{got:?}"
    );
}

fn a_cancel_ends_the_receive<D: Driver>() {
    let Some(mut d) = driver_with::<D>(config()) else {
        return;
    };
    let us = bound();
    d.start(RecvFromMulti { fd: us.as_raw_fd() }, 4);
    d.start(
        Cancel {
            target: 4,
            fd: us.as_raw_fd(),
        },
        5,
    );
    let mut got = Vec::new();
    wait_until(&mut d, &mut got, |g| g.len() >= 2);
    let end: Vec<_> = got.iter().filter(|c| c.user_data == 4).collect();
    assert_eq!(
        (end[0].result, end[0].more()),
        (-libc::ECANCELED, false),
        "{got:?}"
    );
}

crate::sys::op::testing::on_both_drivers!(
    datagrams_arrive_whole_with_their_source,
    a_datagram_longer_than_the_buffer_is_marked_truncated,
    an_icmp_error_on_a_connected_socket_ends_the_receive,
    a_cancel_ends_the_receive,
);
