//! A worker that dies outside every handler guard (the test hook
//! `Server::inject_worker_panic` makes one panic as an engine bug would) is reported, not
//! silently absent: counted and degraded, its handles refused, its connections closed
//! with `WorkerLost`, registry queries not kept waiting; the other worker keeps serving,
//! new connections included.

mod util;

use ringport::{CloseReason, Conn, ConnId, Handler, Health, SendError};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{connect, echo_roundtrip, wait_ended, wait_until, watchdog, TEST_LIMIT, WAIT};

#[derive(Clone, Default)]
struct Recorder {
    closes: Arc<Mutex<Vec<(ConnId, CloseReason)>>>,
}

impl Handler for Recorder {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }
    fn on_close(&self, _s: (), conn: &Conn, why: CloseReason) {
        self.closes.lock().unwrap().push((conn.id(), why));
    }
}

#[test]
fn a_lost_worker_is_reported_and_the_others_go_on() {
    let _w = watchdog("a_lost_worker_is_reported", TEST_LIMIT);
    let rec = Recorder::default();
    let (server, addr) = util::start_server(rec.clone());

    // Connections until both workers have some (the kernel spreads them by hash).
    let mut clients: Vec<(TcpStream, ConnId)> = Vec::new();
    for _ in 0..64 {
        let mut c = connect(addr);
        echo_roundtrip(&mut c, b"hi");
        let me = c.local_addr().unwrap();
        let id = server
            .connections()
            .into_iter()
            .find(|i| i.peer == me)
            .expect("listed")
            .id;
        clients.push((c, id));
        let on = |w| clients.iter().filter(|(_, id)| id.worker() == w).count();
        if on(0) >= 2 && on(1) >= 2 {
            break;
        }
    }
    let on_lost: Vec<ConnId> = clients
        .iter()
        .filter(|(_, id)| id.worker() == 0)
        .map(|(_, id)| *id)
        .collect();
    assert!(on_lost.len() >= 2, "64 connections all went to worker 1");
    let handle = server.connection(on_lost[0]).expect("open");
    assert_eq!(server.health(), Health::Healthy);

    server.inject_worker_panic(0).unwrap();
    wait_until(WAIT, "the worker counted lost", || {
        server.stats().workers_lost == 1
    });
    let stats = server.stats();
    assert!(stats.degraded());
    assert_eq!(
        server.health(),
        Health::Degraded {
            workers_lost: 1,
            workers: 2
        }
    );
    assert_eq!(handle.send(&b"x"[..]), Err(SendError::WorkerStopped));
    assert_eq!(handle.close(), Err(SendError::WorkerStopped));

    // Its connections were closed and reported; the others still echo.
    wait_until(WAIT, "on_close for the lost worker's connections", || {
        rec.closes.lock().unwrap().len() == on_lost.len()
    });
    for (id, why) in rec.closes.lock().unwrap().iter() {
        assert!(on_lost.contains(id));
        assert_eq!(*why, CloseReason::WorkerLost);
    }
    // Read after the closes were seen: the snapshot above may predate some of them.
    let closed = server.stats().closed_with("worker_lost") as usize;
    assert_eq!(closed, on_lost.len());
    for (c, id) in clients.iter_mut() {
        if id.worker() == 0 {
            let (_ending, rest) = wait_ended(c); // panics if still open after a while
            assert!(rest.is_empty(), "{id}: nothing was pending");
        } else {
            echo_roundtrip(c, b"still here");
        }
    }
    assert_eq!(
        server.stats().open as usize,
        clients.len() - on_lost.len(),
        "open counts the live worker's connections only"
    );

    // Registry questions skip the lost worker at once instead of waiting for it.
    let asked = Instant::now();
    let listed = server.connections();
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    assert!(listed.iter().all(|i| i.id.worker() == 1));
    let asked = Instant::now();
    assert!(server.connection(on_lost[1]).is_none());
    assert!(asked.elapsed() < Duration::from_millis(500));

    // New connections reach the live worker (the lost one's listener closed with it).
    for _ in 0..20 {
        let mut c = connect(addr);
        echo_roundtrip(&mut c, b"new");
    }

    // Broadcasts still reach the live worker's connections, and outbound connects go to
    // it (round robin skips the lost worker).
    server.broadcast(&b"all"[..]).unwrap();
    for (c, id) in clients.iter_mut().filter(|(_, id)| id.worker() == 1) {
        assert_eq!(util::read_n(c, 3), b"all", "{id}");
    }
    let connected = server.stats().connected;
    for token in 0..4 {
        server.connect(addr, token).unwrap();
    }
    wait_until(WAIT, "four outbound connections", || {
        server.stats().connected == connected + 4
    });
    let report = server.shutdown(Duration::from_secs(5));
    assert_eq!(report.stats.workers_lost, 1);
}

/// Records the removal notices of watches.
#[derive(Clone, Default)]
struct WatchRecorder {
    removed: Arc<Mutex<Vec<(u64, ringport::notify::RemoveReason)>>>,
}

impl Handler for WatchRecorder {
    type Session = ();
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
    fn on_watch_removed(&self, removed: ringport::notify::WatchRemoved) {
        let entry = (removed.token, removed.reason);
        self.removed.lock().unwrap().push(entry);
    }
}

#[test]
fn a_lost_workers_watches_get_their_notice_and_it_takes_no_more() {
    use ringport::notify::{Interest, RemoveReason, WatchError};
    let _w = watchdog("lost-watches", TEST_LIMIT);
    let rec = WatchRecorder::default();
    let client = ringport::Client::builder()
        .workers(2)
        .start(rec.clone())
        .unwrap();
    let workers = client.workers();
    let mut peers = Vec::new();
    for token in 0..4u64 {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let interest = if token % 2 == 0 {
            Interest::READABLE.edge()
        } else {
            Interest::READABLE.oneshot()
        };
        workers.watch_on(0, b.into(), interest, token).unwrap();
        peers.push(a);
    }
    wait_until(WAIT, "the watches armed", || client.stats().watches == 4);
    client.inject_worker_panic(0).unwrap();
    wait_until(WAIT, "four notices", || {
        rec.removed.lock().unwrap().len() == 4
    });
    let mut removed = rec.removed.lock().unwrap().clone();
    removed.sort_by_key(|(token, _)| *token);
    let want: Vec<_> = (0..4).map(|t| (t, RemoveReason::WorkerLost)).collect();
    assert_eq!(removed, want);
    assert_eq!(client.stats().watches_abandoned, 4);
    // The lost worker takes no new watch, and hands the descriptor back.
    let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let refused = workers
        .watch_on(0, b.into(), Interest::READABLE, 9)
        .unwrap_err();
    assert!(matches!(refused.error, WatchError::Stopped), "{refused}");
    workers
        .watch_on(1, refused.fd, Interest::READABLE, 9)
        .unwrap();
}
