//! The standalone notification port (`ringport::notify::Port`) on the backend under test
//! (`RINGPORT_BACKEND`): level fires again while data stays unread, edge once per
//! arrival, one-shot once until re-armed, persistent keeps firing, modify changes what
//! fires, and every watch ends with exactly one removal notice after which nothing of
//! it is reported.

mod util;

use ringport::notify::{Interest, Notification, Port, RemoveReason, WatchError, WatchId};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Long enough for a notification that should not come to have come.
const QUIET: Duration = Duration::from_millis(50);
const DEADLINE: Duration = Duration::from_secs(10);

fn port() -> Port {
    let p = Port::new().expect("a port");
    assert_eq!(p.backend(), util::backend_under_test());
    p
}

/// A connected pair: the end to write into, and the end to watch (as an `OwnedFd`).
fn pair() -> (UnixStream, OwnedFd) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    b.set_nonblocking(true).unwrap();
    (a, OwnedFd::from(b))
}

/// Wait until at least one notification comes (failing after `DEADLINE`).
fn next(port: &mut Port) -> Vec<Notification> {
    let until = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while got.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no notification within {DEADLINE:?}");
        port.wait(&mut got, Some(left)).unwrap();
    }
    got
}

/// What comes within `QUIET` (several waits, so level re-arms get their turn).
fn quiet(port: &mut Port) -> Vec<Notification> {
    let until = Instant::now() + QUIET;
    let mut got = Vec::new();
    while Instant::now() < until {
        port.wait(&mut got, Some(QUIET / 5)).unwrap();
    }
    got
}

fn ready_of(got: &[Notification], id: WatchId) -> usize {
    got.iter()
        .filter(|n| matches!(n, Notification::Ready { id: i, .. } if *i == id))
        .count()
}

fn read_all(port: &mut Port, id: WatchId) -> usize {
    let fd = port.fd(id).expect("registered");
    let mut s = UnixStream::from(fd.try_clone_to_owned().unwrap());
    let mut buf = [0u8; 4096];
    let mut n = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return n,
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn level_fires_again_while_data_stays_unread() {
    let mut p = port();
    let (mut a, b) = pair();
    let id = p.register(b, Interest::READABLE, 7).unwrap();
    assert!(quiet(&mut p).is_empty(), "nothing to read yet");
    a.write_all(b"x").unwrap();
    let got = next(&mut p);
    match &got[0] {
        Notification::Ready { token, ready, .. } => {
            assert_eq!(*token, 7);
            assert!(ready.is_readable() && !ready.is_writable(), "{ready}");
        }
        other => panic!("{other:?}"),
    }
    // Unread: reported on every wait.
    assert!(ready_of(&quiet(&mut p), id) >= 2);
    assert_eq!(read_all(&mut p, id), 1);
    assert!(quiet(&mut p).is_empty(), "read: level stops");
}

#[test]
fn edge_fires_once_per_arrival() {
    let mut p = port();
    let (mut a, b) = pair();
    let id = p.register(b, Interest::READABLE.edge(), 1).unwrap();
    for round in 1..=3 {
        a.write_all(b"y").unwrap();
        assert_eq!(ready_of(&next(&mut p), id), 1, "round {round}");
        assert!(quiet(&mut p).is_empty(), "unread, yet no new edge");
    }
    assert_eq!(read_all(&mut p, id), 3);
}

#[test]
fn one_shot_fires_once_until_rearmed() {
    let mut p = port();
    let (mut a, b) = pair();
    let id = p.register(b, Interest::READABLE.oneshot(), 2).unwrap();
    a.write_all(b"z").unwrap();
    assert_eq!(ready_of(&next(&mut p), id), 1);
    a.write_all(b"z").unwrap();
    assert!(quiet(&mut p).is_empty(), "disarmed after one notification");
    p.rearm(id).unwrap();
    assert_eq!(
        ready_of(&next(&mut p), id),
        1,
        "re-armed: readiness there is reported"
    );
    assert!(quiet(&mut p).is_empty());
}

#[test]
fn persistent_edge_keeps_firing() {
    let mut p = port();
    let (mut a, b) = pair();
    let id = p.register(b, Interest::READABLE.edge(), 3).unwrap();
    let mut seen = 0;
    for _ in 0..50 {
        a.write_all(b"p").unwrap();
        seen += ready_of(&next(&mut p), id);
        assert_eq!(read_all(&mut p, id), 1);
    }
    assert_eq!(seen, 50);
}

#[test]
fn modify_changes_what_fires() {
    let mut p = port();
    let (_a, b) = pair();
    let id = p.register(b, Interest::READABLE, 4).unwrap();
    assert!(quiet(&mut p).is_empty());
    p.modify(id, Interest::WRITABLE.oneshot()).unwrap();
    match &next(&mut p)[0] {
        Notification::Ready { ready, .. } => assert!(ready.is_writable(), "{ready}"),
        other => panic!("{other:?}"),
    }
    assert!(quiet(&mut p).is_empty(), "one-shot now");
}

/// Exactly one removal notice, then nothing; the descriptor comes back open.
fn removed_once(p: &mut Port, id: WatchId, why: RemoveReason) -> OwnedFd {
    let mut got = next(p);
    got.extend(quiet(p));
    let notices: Vec<_> = got
        .into_iter()
        .filter_map(|n| match n {
            Notification::Removed(r) => Some(r),
            Notification::Ready { id: i, .. } => {
                assert_ne!(i, id, "a notification after the removal was asked");
                None
            }
        })
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].id, id);
    assert_eq!(notices[0].reason, why);
    notices.into_iter().next().unwrap().into_fd()
}

#[test]
fn remove_gives_one_notice_and_the_descriptor_back() {
    for interest in [
        Interest::READABLE,
        Interest::READABLE.edge(),
        Interest::READABLE.oneshot(),
    ] {
        let mut p = port();
        let (mut a, b) = pair();
        let id = p.register(b, interest, 5).unwrap();
        a.write_all(b"before").unwrap();
        p.remove(id).unwrap();
        a.write_all(b"after").unwrap();
        let fd = removed_once(&mut p, id, RemoveReason::Removed);
        assert!(p.is_empty());
        assert_eq!(p.remove(id).unwrap_err().to_string(), "no such watch");
        // Still open: it reads what was written.
        let mut s = UnixStream::from(fd);
        let mut buf = [0u8; 11];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"beforeafter", "{interest}");
    }
}

#[test]
fn peer_hang_up_is_reported_then_removed() {
    let mut p = port();
    let (a, b) = pair();
    let id = p
        .register(b, Interest::READABLE | Interest::HANGUP, 6)
        .unwrap();
    drop(a);
    match &next(&mut p)[0] {
        Notification::Ready { ready, .. } => assert!(ready.is_hangup(), "{ready}"),
        other => panic!("{other:?}"),
    }
    p.remove(id).unwrap();
    removed_once(&mut p, id, RemoveReason::Removed);
}

#[test]
fn a_file_watched_twice_or_unpollable_is_refused_and_handed_back() {
    let mut p = port();
    let (_a, b) = pair();
    let dup = b.try_clone().unwrap();
    let id = p.register(b, Interest::READABLE, 1).unwrap();
    let refused = p.register(dup, Interest::WRITABLE, 2).unwrap_err();
    assert!(
        matches!(refused.error, WatchError::AlreadyWatched),
        "{refused}"
    );
    // Once the first watch is gone, the file may be watched again.
    p.remove(id).unwrap();
    drop(removed_once(&mut p, id, RemoveReason::Removed));
    p.register(refused.fd, Interest::WRITABLE, 2).unwrap();

    let file = std::fs::File::open(env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml").unwrap();
    let refused = p.register(file.into(), Interest::READABLE, 3).unwrap_err();
    assert!(
        matches!(refused.error, WatchError::NotPollable("a regular file")),
        "{refused}"
    );
    let null = std::fs::File::open("/dev/null").unwrap();
    let refused = p.register(null.into(), Interest::READABLE, 4).unwrap_err();
    assert!(
        matches!(
            refused.error,
            WatchError::NotPollable("a device without readiness")
        ),
        "{refused}"
    );
}

#[test]
fn thousands_of_watches_each_fire_once() {
    const N: usize = 2000;
    let mut p = port();
    let mut writers = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for i in 0..N {
        let (a, b) = pair();
        let id = p.register(b, Interest::READABLE.edge(), i as u64).unwrap();
        ids.insert(i as u64, id);
        writers.push(a);
    }
    for a in &mut writers {
        a.write_all(b"!").unwrap();
    }
    let mut seen = vec![0u32; N];
    let until = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while seen.contains(&0) && Instant::now() < until {
        got.clear();
        p.wait(&mut got, Some(Duration::from_millis(100))).unwrap();
        for n in &got {
            if let Notification::Ready { token, .. } = n {
                seen[*token as usize] += 1;
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "each watch once: {:?}",
        &seen[..20]
    );
    assert_eq!(p.len(), N);
}
