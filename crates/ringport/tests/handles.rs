//! Handles (`ConnRef`, `ConnId` lookups, handler timers) never reach a later connection in
//! the same slot, even once the slot's 24-bit generation has come round: the test hook
//! `inject_generation_step = 2^24` gives the next tenant of a freed slot the very
//! generation of the one before, as 2^24 reuses of the slot would.

mod util;

use ringport::{CloseReason, Conn, ConnRef, EngineConfig, Handler, Server};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{connect, read_n, wait_for_value, wait_until, watchdog, write_all, TEST_LIMIT, WAIT};

/// Echoes, keeps a handle to every connection it opens, and (if asked) sets a timer at
/// open whose token is the connection's id.
#[derive(Default)]
struct Kept {
    handles: Mutex<Vec<ConnRef>>,
    timer_after: Option<Duration>,
    /// Ids (as u64) of the connections whose timer fired, in order.
    fired: Mutex<Vec<u64>>,
    closes: AtomicU64,
}

#[derive(Clone)]
struct Keeper(Arc<Kept>);

impl std::ops::Deref for Keeper {
    type Target = Kept;
    fn deref(&self) -> &Kept {
        &self.0
    }
}

impl Handler for Keeper {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        self.handles.lock().unwrap().push(conn.handle());
        if let Some(after) = self.timer_after {
            conn.set_timer(after, conn.id().as_u64());
        }
    }
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }
    fn on_timer(&self, _s: &mut (), conn: &mut Conn, token: u64) {
        assert_eq!(
            token,
            conn.id().as_u64(),
            "a timer fired on another connection"
        );
        self.fired.lock().unwrap().push(token);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

/// One worker (so the freed slot is the one reused) whose slots come back with the same
/// generation.
fn wrapping_server(keeper: &Keeper) -> (Server<Keeper>, SocketAddr) {
    let mut config = EngineConfig::default();
    config.workers = 1;
    config.inject_generation_step = 1 << 24;
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .config(config)
        .start(keeper.clone())
        .unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

/// Wait until the worker has freed every slot (no connection, no op in flight).
fn wait_slots_free(server: &Server<Keeper>) {
    wait_until(WAIT, "every slot freed", || {
        let s = server.stats();
        s.open == 0 && s.inflight_ops == 0
    });
}

#[test]
fn an_old_handle_never_reaches_the_next_tenant_of_its_slot() {
    let _w = watchdog("an_old_handle_never_reaches_the_next_tenant", TEST_LIMIT);
    let keeper = Keeper(Arc::default());
    let (server, addr) = wrapping_server(&keeper);

    let mut first = connect(addr);
    write_all(&mut first, b"a");
    assert_eq!(read_n(&mut first, 1), b"a");
    let old = keeper.handles.lock().unwrap()[0].clone();
    drop(first);
    wait_for_value(WAIT, "closes", || keeper.closes.load(Ordering::SeqCst), 1);
    wait_slots_free(&server);

    let mut second = connect(addr);
    write_all(&mut second, b"b");
    assert_eq!(read_n(&mut second, 1), b"b");
    let new = keeper.handles.lock().unwrap()[1].clone();
    assert_ne!(
        old.id(),
        new.id(),
        "same slot, same generation, another connection"
    );
    assert_ne!(old.id().as_u64(), new.id().as_u64());

    // The old handle's send and close are taken by the mailbox and found late.
    old.send(&b"for a stranger"[..]).unwrap();
    old.close().unwrap();
    wait_for_value(WAIT, "late sends", || server.stats().late_sends, 2);
    assert!(
        server.connection(old.id()).is_none(),
        "the old id finds nothing"
    );
    assert!(server.connection(new.id()).is_some());

    // The new tenant saw none of it: its next echo is its own, and it is still open.
    write_all(&mut second, b"ping");
    assert_eq!(read_n(&mut second, 4), b"ping");
    assert_eq!(server.stats().open, 1);
    assert_eq!(server.stats().undelivered_bytes, 14);
    new.send(&b"!"[..]).unwrap();
    assert_eq!(read_n(&mut second, 1), b"!", "the live handle still works");
    drop(second);
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_closed_connections_timer_never_fires_for_the_next_tenant() {
    let _w = watchdog("a_closed_connections_timer_never_fires", TEST_LIMIT);
    let keeper = Keeper(Arc::new(Kept {
        timer_after: Some(Duration::from_millis(300)),
        ..Kept::default()
    }));
    let (server, addr) = wrapping_server(&keeper);

    // The first connection arms its timer and closes long before it is due.
    let first = connect(addr);
    wait_until(WAIT, "the first open", || {
        keeper.handles.lock().unwrap().len() == 1
    });
    let old = keeper.handles.lock().unwrap()[0].id();
    drop(first);
    wait_for_value(WAIT, "closes", || keeper.closes.load(Ordering::SeqCst), 1);
    wait_slots_free(&server);

    // Its successor in the slot arms its own; when that one fires, the first one (due
    // earlier) would have fired already had it not been cancelled at close.
    let mut second = connect(addr);
    wait_until(WAIT, "the second open", || {
        keeper.handles.lock().unwrap().len() == 2
    });
    let new = keeper.handles.lock().unwrap()[1].id();
    wait_until(WAIT, "the second timer", || {
        !keeper.fired.lock().unwrap().is_empty()
    });
    assert_eq!(*keeper.fired.lock().unwrap(), vec![new.as_u64()]);
    assert_ne!(old, new);
    assert_eq!(server.stats().timers_fired, 1);
    second
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert!(
        second.read(&mut buf).is_err(),
        "nothing was sent to the second tenant"
    );
    server.shutdown(Duration::from_secs(5));
}
