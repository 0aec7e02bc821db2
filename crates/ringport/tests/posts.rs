//! Posts (`ConnRef::post`, `Workers::post`): values reach `on_posted` on the
//! connection's worker in order with its other events (sends from the same handle),
//! never after `on_close` (counted undelivered instead); worker posts arrive in order;
//! posts are bounded by the mailbox.

mod util;

use ringport::{CloseReason, Conn, ConnRef, Handler, Posted, SendError, Server};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use util::{connect, read_n, wait_for_value, wait_until, watchdog, TEST_LIMIT, WAIT};

#[derive(Default)]
struct Shared {
    handles: Mutex<Vec<ConnRef>>,
    closed: AtomicU64,
    posted_after_close: AtomicU64,
    worker_posts: Mutex<Vec<(usize, u32)>>,
}

/// Answers each posted number `n` by sending `p{n},` on the connection.
struct Poster(Arc<Shared>);

impl Handler for Poster {
    type Session = bool; // closed (never true while a callback can see it)
    fn on_open(&self, conn: &mut Conn) -> bool {
        self.0.handles.lock().unwrap().push(conn.handle());
        false
    }
    fn on_data(&self, _s: &mut bool, _conn: &mut Conn, _data: &[u8]) {}
    fn on_posted(&self, closed: &mut bool, conn: &mut Conn, value: Posted) {
        if *closed {
            self.0.posted_after_close.fetch_add(1, Ordering::SeqCst);
        }
        let n = value.downcast::<u32>().expect("a u32 was posted");
        conn.send(format!("p{n},").as_bytes());
    }
    fn on_worker_posted(&self, worker: usize, value: Posted) {
        if let Some(&n) = value.downcast_ref::<u32>() {
            self.0.worker_posts.lock().unwrap().push((worker, n));
        }
    }
    fn on_close(&self, _s: bool, _conn: &Conn, _why: CloseReason) {
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn server() -> (Server<Poster>, std::net::SocketAddr, Arc<Shared>) {
    let shared = Arc::new(Shared::default());
    let (server, addr) = util::start_server(Poster(shared.clone()));
    (server, addr, shared)
}

#[test]
fn posts_arrive_in_order_with_the_handles_sends() {
    let _w = watchdog("posts-order", TEST_LIMIT);
    let (_server, addr, shared) = server();
    let mut client = connect(addr);
    wait_until(WAIT, "on_open", || {
        shared.handles.lock().unwrap().len() == 1
    });
    let handle = shared.handles.lock().unwrap()[0].clone();
    let mut expected = String::new();
    for n in 0..2000u32 {
        handle.post(n).unwrap();
        handle.send(format!("{n},")).unwrap();
        expected.push_str(&format!("p{n},{n},"));
    }
    let got = read_n(&mut client, expected.len());
    assert_eq!(String::from_utf8(got).unwrap(), expected);
}

#[test]
fn a_post_after_on_close_is_dropped_and_counted() {
    let _w = watchdog("posts-late", TEST_LIMIT);
    let (server, addr, shared) = server();
    let client = connect(addr);
    wait_until(WAIT, "on_open", || {
        shared.handles.lock().unwrap().len() == 1
    });
    let handle = shared.handles.lock().unwrap()[0].clone();
    drop(client);
    wait_until(WAIT, "on_close", || {
        shared.closed.load(Ordering::SeqCst) == 1
    });
    // The mailbox takes it; the worker finds the connection gone.
    handle.post(7u32).unwrap();
    wait_for_value(
        WAIT,
        "undelivered posts",
        || server.stats().posts_undelivered,
        1,
    );
    assert_eq!(server.stats().posts, 0);
    assert_eq!(shared.posted_after_close.load(Ordering::SeqCst), 0);
}

#[test]
fn worker_posts_arrive_in_order_on_their_worker() {
    let _w = watchdog("posts-worker", TEST_LIMIT);
    let (server, _addr, shared) = server();
    let workers = server.workers();
    assert_eq!(workers.count(), 2);
    for n in 0..500u32 {
        workers.post((n % 2) as usize, n).unwrap();
    }
    wait_for_value(WAIT, "posts", || server.stats().posts, 500);
    let got = shared.worker_posts.lock().unwrap().clone();
    for w in 0..2 {
        let mine: Vec<u32> = got
            .iter()
            .filter(|(at, _)| *at == w)
            .map(|(_, n)| *n)
            .collect();
        let want: Vec<u32> = (0..500).filter(|n| (n % 2) as usize == w).collect();
        assert_eq!(mine, want, "worker {w}");
    }
    assert_eq!(workers.post(9, 0u32), Err(SendError::WorkerStopped));
}

#[test]
fn posts_are_bounded_by_the_mailbox() {
    let _w = watchdog("posts-bound", TEST_LIMIT);
    let shared = Arc::new(Shared::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .mailbox_bytes(4096)
        .start(Poster(shared))
        .unwrap();
    // A value's own size counts against the bound (a 2 KiB array: two fill the 4 KiB
    // mailbox until the worker drains it), so posting faster than it drains is refused.
    let workers = server.workers();
    let refused = (0..1000).any(|_| workers.post(0, [0u8; 2048]) == Err(SendError::Full));
    assert!(
        refused,
        "a 4 KiB mailbox took a thousand 2 KiB posts at once"
    );
}
