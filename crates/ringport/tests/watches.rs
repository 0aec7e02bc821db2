//! Watches on an engine's workers (`Workers::watch`, `Handler::on_ready`), on the backend
//! under test: level, edge, one-shot and persistent; modify; exactly one
//! `on_watch_removed` on every path (removed from the callback or another thread, peer
//! hang-up then removal, a panicking callback, shutdown) and no notification after it;
//! refusals; 10,000 watches on one worker.

mod util;

use ringport::notify::{Interest, Ready, RemoveReason, WatchError, WatchRemoved};
use ringport::{Client, CloseReason, Conn, Handler, WatchCtl, Workers};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{watchdog, TEST_LIMIT, WAIT};

/// Long enough for a notification that should not come to have come.
const QUIET: Duration = Duration::from_millis(60);

#[derive(Debug)]
enum Event {
    Ready(u64, Ready),
    Removed(u64, RemoveReason),
}

/// What `on_ready` does, besides recording the notification.
type Plan = dyn Fn(u64, Ready, &mut WatchCtl<'_>) + Send + Sync;

struct Watcher {
    events: Mutex<Sender<Event>>,
    plan: Box<Plan>,
}

impl Handler for Watcher {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}

    fn on_ready(&self, token: u64, ready: Ready, watch: &mut WatchCtl<'_>) {
        // After the plan: a test that answers an event acts after the callback did.
        (self.plan)(token, ready, watch);
        let _ = self.events.lock().unwrap().send(Event::Ready(token, ready));
    }

    fn on_watch_removed(&self, removed: WatchRemoved) {
        let e = Event::Removed(removed.token, removed.reason);
        let _ = self.events.lock().unwrap().send(e);
    }
}

struct Rig {
    client: Client<Watcher>,
    workers: Workers,
    events: Receiver<Event>,
}

fn rig(
    workers: usize,
    plan: impl Fn(u64, Ready, &mut WatchCtl<'_>) + Send + Sync + 'static,
) -> Rig {
    let (tx, events) = channel();
    let handler = Watcher {
        events: Mutex::new(tx),
        plan: Box::new(plan),
    };
    let client = Client::builder()
        .workers(workers)
        .start(handler)
        .expect("start");
    assert_eq!(client.stats().backend, util::backend_under_test());
    let workers = client.workers();
    Rig {
        client,
        workers,
        events,
    }
}

impl Rig {
    /// The next event, within the deadline.
    fn next(&self) -> Event {
        self.events.recv_timeout(WAIT).expect("an event in time")
    }

    /// Every event that comes within `QUIET` of the last one (bounded).
    fn quiet(&self) -> Vec<Event> {
        let mut got = Vec::new();
        let until = Instant::now() + WAIT;
        while let Ok(e) = self.events.recv_timeout(QUIET) {
            got.push(e);
            assert!(Instant::now() < until, "events never stop: {got:?}");
        }
        got
    }
}

fn pair() -> (UnixStream, OwnedFd) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    b.set_nonblocking(true).unwrap();
    (a, OwnedFd::from(b))
}

/// Read what is there from a watched descriptor (non-blocking).
fn drain(fd: std::os::fd::BorrowedFd<'_>) -> usize {
    let s = socket2::SockRef::from(&fd);
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok(k) = (&*s).read(&mut buf) {
        if k == 0 {
            break;
        }
        n += k;
    }
    n
}

fn nothing(_: u64, _: Ready, _: &mut WatchCtl<'_>) {}

#[test]
fn level_fires_again_while_data_stays_unread() {
    let _w = watchdog("level", TEST_LIMIT);
    let read_now = Arc::new(AtomicBool::new(false));
    let flag = read_now.clone();
    let r = rig(1, move |_, _, w| {
        if flag.load(Ordering::SeqCst) {
            drain(w.fd());
        }
    });
    let (mut a, b) = pair();
    r.workers.watch(b, Interest::READABLE, 1).unwrap();
    a.write_all(b"x").unwrap();
    for _ in 0..5 {
        assert!(matches!(r.next(), Event::Ready(1, ready) if ready.is_readable()));
    }
    read_now.store(true, Ordering::SeqCst);
    let _ = r.quiet(); // the reports until the callback read
    assert!(r.quiet().is_empty(), "read: no more reports");
    a.write_all(b"y").unwrap();
    assert!(matches!(r.next(), Event::Ready(1, _)));
}

#[test]
fn edge_fires_once_per_arrival() {
    let _w = watchdog("edge", TEST_LIMIT);
    let r = rig(1, nothing);
    let (mut a, b) = pair();
    r.workers.watch(b, Interest::READABLE.edge(), 2).unwrap();
    for round in 0..3 {
        a.write_all(b"e").unwrap();
        assert!(matches!(r.next(), Event::Ready(2, _)), "round {round}");
        assert!(r.quiet().is_empty(), "unread, yet no new arrival");
    }
}

#[test]
fn one_shot_fires_once_until_rearmed() {
    let _w = watchdog("oneshot", TEST_LIMIT);
    let r = rig(1, nothing);
    let (mut a, b) = pair();
    let id = r.workers.watch(b, Interest::READABLE.oneshot(), 3).unwrap();
    a.write_all(b"o").unwrap();
    assert!(matches!(r.next(), Event::Ready(3, _)));
    a.write_all(b"o").unwrap();
    assert!(r.quiet().is_empty(), "disarmed");
    r.workers.rearm(id).unwrap();
    assert!(
        matches!(r.next(), Event::Ready(3, _)),
        "re-armed: still readable"
    );
    assert!(r.quiet().is_empty());
}

#[test]
fn a_one_shot_rearmed_from_its_callback_handles_each_message_once() {
    let _w = watchdog("oneshot-rearm", TEST_LIMIT);
    let r = rig(1, |_, ready, w| {
        if !ready.is_hangup() {
            assert!(drain(w.fd()) > 0, "a one-shot never fires for nothing here");
        }
        w.rearm();
    });
    let (mut a, b) = pair();
    r.workers.watch(b, Interest::READABLE.oneshot(), 4).unwrap();
    for i in 0..100 {
        a.write_all(b"m").unwrap();
        assert!(matches!(r.next(), Event::Ready(4, _)), "message {i}");
    }
}

#[test]
fn persistent_edge_keeps_firing() {
    let _w = watchdog("persistent", TEST_LIMIT);
    let r = rig(1, |_, _, w| {
        drain(w.fd());
    });
    let (mut a, b) = pair();
    r.workers.watch(b, Interest::READABLE.edge(), 5).unwrap();
    for i in 0..200 {
        a.write_all(b"p").unwrap();
        assert!(matches!(r.next(), Event::Ready(5, _)), "arrival {i}");
    }
}

#[test]
fn modify_changes_what_fires() {
    let _w = watchdog("modify", TEST_LIMIT);
    let r = rig(1, |_, ready, w| {
        if ready.is_readable() {
            drain(w.fd());
            w.modify(Interest::WRITABLE.oneshot());
        }
    });
    let (mut a, b) = pair();
    let id = r.workers.watch(b, Interest::READABLE, 6).unwrap();
    a.write_all(b"r").unwrap();
    assert!(matches!(r.next(), Event::Ready(6, ready) if ready.is_readable()));
    assert!(
        matches!(r.next(), Event::Ready(6, ready) if ready.is_writable() && !ready.is_readable())
    );
    assert!(r.quiet().is_empty(), "one-shot writable now");
    // And from another thread: back to readable.
    r.workers.modify(id, Interest::READABLE.edge()).unwrap();
    a.write_all(b"r").unwrap();
    assert!(matches!(r.next(), Event::Ready(6, ready) if ready.is_readable()));
}

/// The events after a removal was asked: exactly one removal notice for `token`, with
/// `why`, and no notification after it.
fn removed_once(r: &Rig, token: u64, why: RemoveReason) {
    let mut got = vec![r.next()];
    got.extend(r.quiet());
    let at = got
        .iter()
        .position(|e| matches!(e, Event::Removed(t, _) if *t == token))
        .unwrap_or_else(|| panic!("no removal: {got:?}"));
    assert!(
        matches!(got[at], Event::Removed(_, w) if w == why),
        "{got:?}"
    );
    assert!(
        got[at + 1..]
            .iter()
            .all(|e| !matches!(e, Event::Ready(t, _) | Event::Removed(t, _) if *t == token)),
        "after the notice: {got:?}"
    );
}

#[test]
fn removed_from_its_callback_once() {
    let _w = watchdog("remove-cb", TEST_LIMIT);
    let r = rig(1, |_, _, w| w.remove());
    for interest in [
        Interest::READABLE,
        Interest::READABLE.edge(),
        Interest::READABLE.oneshot(),
    ] {
        let (mut a, b) = pair();
        r.workers.watch(b, interest, 7).unwrap();
        a.write_all(b"1").unwrap();
        assert!(matches!(r.next(), Event::Ready(7, _)), "{interest}");
        // The notice may have come and closed the descriptor already.
        let _ = a.write_all(b"2");
        removed_once(&r, 7, RemoveReason::Removed);
    }
    assert_eq!(r.client.stats().watches_removed, 3);
    util::wait_for_value(WAIT, "watches gauge", || r.client.stats().watches, 0);
}

#[test]
fn unwatched_from_another_thread_once() {
    let _w = watchdog("unwatch", TEST_LIMIT);
    let r = rig(1, nothing);
    let (mut a, b) = pair();
    let id = r.workers.watch(b, Interest::READABLE.edge(), 8).unwrap();
    a.write_all(b"1").unwrap();
    assert!(matches!(r.next(), Event::Ready(8, _)));
    r.workers.unwatch(id).unwrap();
    // The notice may have come and closed the descriptor already.
    let _ = a.write_all(b"2");
    removed_once(&r, 8, RemoveReason::Removed);
    // Gone: asking again is no error and does nothing.
    r.workers.unwatch(id).unwrap();
    assert!(r.quiet().is_empty());
}

#[test]
fn peer_hang_up_then_removal() {
    let _w = watchdog("hangup", TEST_LIMIT);
    let r = rig(1, |_, ready, w| {
        if ready.is_hangup() {
            w.remove();
        }
    });
    let (a, b) = pair();
    r.workers
        .watch(b, Interest::READABLE | Interest::HANGUP, 9)
        .unwrap();
    drop(a);
    assert!(matches!(r.next(), Event::Ready(9, ready) if ready.is_hangup()));
    removed_once(&r, 9, RemoveReason::Removed);
}

#[test]
fn a_panicking_callback_removes_its_watch() {
    let _w = watchdog("panic", TEST_LIMIT);
    let r = rig(1, |_, _, _| panic!("on_ready fails (on purpose)"));
    let (mut a, b) = pair();
    r.workers.watch(b, Interest::READABLE, 10).unwrap();
    a.write_all(b"!").unwrap();
    // The callback panics before the test's handler records the notification.
    removed_once(&r, 10, RemoveReason::HandlerPanic);
    let stats = r.client.stats();
    assert_eq!((stats.handler_panics, stats.watches_abandoned), (1, 1));
}

#[test]
fn shutdown_removes_every_watch_once() {
    let _w = watchdog("shutdown", TEST_LIMIT);
    let r = rig(2, nothing);
    let mut writers = Vec::new();
    let kinds = [
        Interest::READABLE.edge(),
        Interest::READABLE.oneshot(),
        Interest::WRITABLE.oneshot(),
    ];
    for (i, interest) in kinds.into_iter().cycle().take(30).enumerate() {
        let (a, b) = pair();
        r.workers.watch(b, interest, 100 + i as u64).unwrap();
        writers.push(a);
    }
    writers[1].write_all(b"fire the one-shot").unwrap();
    let Rig { client, events, .. } = r;
    let report = client.shutdown(WAIT);
    let mut removed = std::collections::HashMap::new();
    for e in events.try_iter() {
        if let Event::Removed(token, why) = e {
            assert_eq!(why, RemoveReason::Shutdown);
            *removed.entry(token).or_insert(0) += 1;
        }
    }
    assert_eq!(removed.len(), 30, "{removed:?}");
    assert!(removed.values().all(|&n| n == 1));
    assert_eq!(report.stats.watches_shut_down, 30);
    assert_eq!(report.stats.watches, 0);
}

#[test]
fn a_file_watched_twice_unpollable_or_nowhere_is_refused_and_handed_back() {
    let _w = watchdog("refusals", TEST_LIMIT);
    let r = rig(2, nothing);
    let (_a, b) = pair();
    let dup = b.try_clone().unwrap();
    let id = r.workers.watch_on(0, b, Interest::READABLE, 1).unwrap();
    let refused = r
        .workers
        .watch_on(1, dup, Interest::READABLE, 2)
        .unwrap_err();
    assert!(
        matches!(refused.error, WatchError::AlreadyWatched),
        "{refused}"
    );
    let refused = r
        .workers
        .watch_on(9, refused.fd, Interest::READABLE, 2)
        .unwrap_err();
    assert!(
        matches!(refused.error, WatchError::NoWorker(9)),
        "{refused}"
    );
    // Once the first is removed, the file may be watched again.
    r.workers.unwatch(id).unwrap();
    removed_once(&r, 1, RemoveReason::Removed);
    r.workers
        .watch_on(1, refused.fd, Interest::READABLE, 3)
        .unwrap();

    let dir = std::fs::File::open(env!("CARGO_MANIFEST_DIR")).unwrap();
    let refused = r
        .workers
        .watch(dir.into(), Interest::READABLE, 4)
        .unwrap_err();
    assert!(
        matches!(refused.error, WatchError::NotPollable("a directory")),
        "{refused}"
    );
}

#[test]
fn ten_thousand_watches_on_one_worker() {
    const N: usize = 10_000;
    let _w = watchdog("ten-thousand", TEST_LIMIT);
    let r = rig(1, |_, _, w| {
        drain(w.fd());
    });
    let mut addrs = Vec::with_capacity(N);
    for i in 0..N {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        addrs.push(s.local_addr().unwrap());
        r.workers
            .watch_on(0, s.into(), Interest::READABLE.edge(), i as u64)
            .unwrap();
    }
    util::wait_for_value(WAIT, "watches", || r.client.stats().watches, N as u64);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for addr in &addrs {
        sender.send_to(b"?", addr).unwrap();
    }
    let mut seen = vec![0u32; N];
    let mut got = 0;
    while got < N {
        match r.next() {
            Event::Ready(token, _) => {
                seen[token as usize] += 1;
                got += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(r.quiet().is_empty());
    assert!(seen.iter().all(|&n| n == 1));
    let Rig { client, events, .. } = r;
    let report = client.shutdown(WAIT);
    assert_eq!(report.stats.watches_shut_down, N as u64);
    assert_eq!(
        events
            .try_iter()
            .filter(|e| matches!(e, Event::Removed(..)))
            .count(),
        N
    );
}

#[test]
fn two_thousand_peers_hanging_up_at_once_each_removed_once() {
    const N: u64 = 2000;
    let _w = watchdog("hangups", TEST_LIMIT);
    let r = rig(2, |_, ready, w| {
        if ready.is_hangup() {
            w.remove();
        }
    });
    let mut peers = Vec::new();
    for token in 0..N {
        let (a, b) = pair();
        r.workers
            .watch(b, Interest::READABLE | Interest::HANGUP, token)
            .unwrap();
        peers.push(a);
    }
    util::wait_for_value(WAIT, "watches", || r.client.stats().watches, N);
    drop(peers);
    let mut removed = vec![0u32; N as usize];
    let mut left = N;
    while left > 0 {
        if let Event::Removed(token, why) = r.next() {
            assert_eq!(why, RemoveReason::Removed);
            removed[token as usize] += 1;
            left -= 1;
        }
    }
    assert!(r.quiet().is_empty(), "nothing after the notices");
    assert!(removed.iter().all(|&n| n == 1));
    assert_eq!(r.client.stats().watches_removed, N);
}
