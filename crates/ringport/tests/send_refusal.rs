//! Sends the engine cannot take are refused with a type, never queued forever: after
//! `shutdown_write` (which used to wedge the connection: a reply queued behind the FIN was
//! never sent, so the close waiting for the queue to flush never came), and beyond the
//! mailbox's byte bound (`SendError::Full`).

mod util;

use ringport::{CloseReason, Conn, ConnRef, Handler, SendError, Server};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{
    connect, read_n, shutdown_write, wait_ended, wait_for_value, wait_until, watchdog, write_all,
    Ending, TEST_LIMIT, WAIT,
};

/// Upper-cases the first message and shuts its write side; answers later ones too, and
/// records what `try_send` said of them.
#[derive(Clone, Default)]
struct ReplyThenShut {
    refusals: Arc<Mutex<Vec<SendError>>>,
    handles: Arc<Mutex<Vec<ConnRef>>>,
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for ReplyThenShut {
    type Session = bool;
    fn on_open(&self, conn: &mut Conn) -> bool {
        self.handles.lock().unwrap().push(conn.handle());
        false
    }
    fn on_data(&self, shut: &mut bool, conn: &mut Conn, data: &[u8]) {
        let reply = data.to_ascii_uppercase();
        if let Err(e) = conn.try_send(&reply) {
            self.refusals.lock().unwrap().push(e);
        }
        if !*shut {
            conn.shutdown_write();
            *shut = true;
        }
    }
    fn on_close(&self, _s: bool, _conn: &Conn, why: CloseReason) {
        self.closes.lock().unwrap().push(why);
    }
}

#[test]
fn sends_after_shutdown_write_are_refused_and_the_close_completes() {
    let _w = watchdog("sends_after_shutdown_write_are_refused", TEST_LIMIT);
    let h = ReplyThenShut::default();
    let (server, addr) = util::start_server(h.clone());
    let mut c = connect(addr);
    write_all(&mut c, b"hello");
    assert_eq!(read_n(&mut c, 5), b"HELLO");
    // The server's FIN follows its reply.
    let (ending, rest) = wait_ended(&mut c);
    assert_eq!((ending, rest.len()), (Ending::Eof, 0));

    // A handle's send after the FIN is counted late; the handler's own is refused.
    let handle = h.handles.lock().unwrap()[0].clone();
    handle.send(&b"late"[..]).unwrap();
    wait_for_value(WAIT, "late sends", || server.stats().late_sends, 1);
    write_all(&mut c, b"more");
    wait_until(WAIT, "the refusal", || {
        !h.refusals.lock().unwrap().is_empty()
    });
    assert_eq!(*h.refusals.lock().unwrap(), vec![SendError::WriteShut]);
    assert_eq!(server.stats().refused_send_bytes, 4);

    // The peer closes its side: the graceful close completes (it used to wait forever
    // for a queue that could not be sent).
    shutdown_write(&c);
    wait_for_value(WAIT, "open connections", || server.stats().open, 0);
    assert_eq!(*h.closes.lock().unwrap(), vec![CloseReason::PeerClosed]);
    let report = server.shutdown(Duration::from_secs(5));
    assert_eq!(report.undelivered_bytes, 4, "the late send's bytes");
}

/// Blocks in `on_data` until the test lets it go, so the mailbox fills.
#[derive(Clone)]
struct Stalling {
    handle: Arc<Mutex<Option<ConnRef>>>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    stalled: Arc<Mutex<bool>>,
}

impl Handler for Stalling {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        *self.handle.lock().unwrap() = Some(conn.handle());
    }
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        if data == b"stall" {
            *self.stalled.lock().unwrap() = true;
            let _ = self.release.lock().unwrap().recv_timeout(WAIT);
        }
        conn.send(data);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

#[test]
fn a_full_mailbox_refuses_posts_until_the_worker_catches_up() {
    let _w = watchdog("a_full_mailbox_refuses_posts", TEST_LIMIT);
    let (let_go, release) = mpsc::channel();
    let h = Stalling {
        handle: Default::default(),
        release: Arc::new(Mutex::new(release)),
        stalled: Default::default(),
    };
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .mailbox_bytes(64 * 1024)
        .start(h.clone())
        .unwrap();
    let mut c = connect(server.local_addrs()[0]);
    write_all(&mut c, b"stall");
    wait_until(WAIT, "the worker stalled", || *h.stalled.lock().unwrap());
    let handle = h.handle.lock().unwrap().clone().unwrap();
    let chunk = vec![b'x'; 1024];
    let mut taken = 0;
    let refused = loop {
        match handle.send(chunk.clone()) {
            Ok(()) => taken += 1,
            Err(e) => break e,
        }
        assert!(taken <= 64, "more than the bound was taken");
    };
    assert_eq!(refused, SendError::Full);
    assert!(taken >= 50, "only {taken} KiB taken of a 64 KiB bound");
    // Small messages fill what is left; then even a connect is refused (typed).
    let mut small = 0;
    while handle.send(&b"y"[..]).is_ok() {
        small += 1;
        assert!(small < 1024, "the bound counts each message");
    }
    assert!(matches!(
        server.connect(server.local_addrs()[0], 1),
        Err(ringport::Error::Busy)
    ));
    let_go.send(()).unwrap();
    // Everything taken arrives, in order; then the mailbox takes posts again.
    assert_eq!(read_n(&mut c, 5), b"stall");
    assert_eq!(read_n(&mut c, 1024 * taken), vec![b'x'; 1024 * taken]);
    assert_eq!(read_n(&mut c, small), vec![b'y'; small]);
    wait_until(WAIT, "room in the mailbox", || {
        handle.send(&b"!"[..]).is_ok()
    });
    assert_eq!(read_n(&mut c, 1), b"!");
    server.shutdown(Duration::from_secs(5));
}
