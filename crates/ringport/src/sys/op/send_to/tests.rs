//! Datagram sends on both drivers: each completes with its size and arrives at its
//! address, in order; a hundred in flight at once all complete.

use super::*;
use crate::sys::driver::Driver;
use crate::sys::op::testing::{config, driver_with, wait_until};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

fn sends_arrive_in_order_and_complete_with_their_size<D: Driver>() {
    let Some(mut d) = driver_with::<D>(config()) else {
        return;
    };
    let us = UdpSocket::bind("127.0.0.1:0").unwrap();
    us.set_nonblocking(true).unwrap();
    let them = UdpSocket::bind("127.0.0.1:0").unwrap();
    them.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = SockAddr::from(them.local_addr().unwrap());
    const N: u64 = 100;
    for i in 0..N {
        let data = Bytes::from(format!("datagram {i}").into_bytes());
        d.start(
            SendTo {
                fd: us.as_raw_fd(),
                to: to.clone(),
                data,
                segment: 0,
            },
            i,
        );
    }
    let mut got = Vec::new();
    wait_until(&mut d, &mut got, |g| g.len() as u64 == N);
    for c in &got {
        let want = format!("datagram {}", c.user_data).len() as i32;
        assert_eq!((c.result, c.more()), (want, false), "{c:?}");
    }
    let mut buf = [0u8; 64];
    for i in 0..N {
        let (n, from) = them.recv_from(&mut buf).unwrap();
        assert_eq!(from, us.local_addr().unwrap());
        assert_eq!(&buf[..n], format!("datagram {i}").as_bytes());
    }
}

fn an_empty_datagram_is_sent<D: Driver>() {
    let Some(mut d) = driver_with::<D>(config()) else {
        return;
    };
    let us = UdpSocket::bind("127.0.0.1:0").unwrap();
    us.set_nonblocking(true).unwrap();
    let them = UdpSocket::bind("127.0.0.1:0").unwrap();
    them.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = SockAddr::from(them.local_addr().unwrap());
    d.start(
        SendTo {
            fd: us.as_raw_fd(),
            to,
            data: Bytes::new(),
            segment: 0,
        },
        7,
    );
    let mut got = Vec::new();
    wait_until(&mut d, &mut got, |g| !g.is_empty());
    assert_eq!(got[0].result, 0);
    let mut buf = [0u8; 8];
    assert_eq!(them.recv_from(&mut buf).unwrap().0, 0);
}

fn a_gso_send_arrives_as_segments<D: Driver>() {
    let Some(mut d) = driver_with::<D>(config()) else {
        return;
    };
    let us = UdpSocket::bind("127.0.0.1:0").unwrap();
    us.set_nonblocking(true).unwrap();
    if !crate::sys::socket::udp_gso(&us) {
        eprintln!("no UDP GSO here; skipped");
        return;
    }
    let them = UdpSocket::bind("127.0.0.1:0").unwrap();
    them.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = SockAddr::from(them.local_addr().unwrap());
    let data: Vec<u8> = (0..350).map(|i| i as u8).collect();
    let send = SendTo {
        fd: us.as_raw_fd(),
        to,
        data: Bytes::from(data.clone()),
        segment: 100,
    };
    d.start(send, 9);
    let mut got = Vec::new();
    wait_until(&mut d, &mut got, |g| !g.is_empty());
    assert_eq!(got[0].result, 350, "{got:?}");
    let mut buf = [0u8; 512];
    for chunk in data.chunks(100) {
        let (n, _) = them.recv_from(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            chunk,
            "one datagram per segment, the last one shorter"
        );
    }
}

crate::sys::op::testing::on_both_drivers!(
    sends_arrive_in_order_and_complete_with_their_size,
    an_empty_datagram_is_sent,
    a_gso_send_arrives_as_segments,
);
