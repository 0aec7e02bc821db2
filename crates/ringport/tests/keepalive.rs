//! TCP keepalive and TCP_USER_TIMEOUT: set on listeners (accepted connections inherit
//! them) and on outbound sockets; read back through `Conn`.

mod util;

use ringport::{Client, CloseReason, Conn, Error, Handler, Server};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use util::{connect, wait_for_value, watchdog, Shared, TEST_LIMIT, WAIT};

/// What a connection's socket said in `on_open`: (outbound, keepalive, user timeout).
type Seen = (bool, Option<Duration>, Option<Duration>);

/// Every connection's [`Seen`].
#[derive(Default)]
struct Options {
    seen: Mutex<Vec<Seen>>,
}

impl Options {
    #[track_caller]
    fn wait(&self, n: usize) -> Vec<Seen> {
        wait_for_value(
            WAIT,
            "connections opened",
            || self.seen.lock().unwrap().len(),
            n,
        );
        let mut seen = self.seen.lock().unwrap().clone();
        seen.sort();
        seen
    }
}

impl Handler for Shared<Options> {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        let seen = (
            conn.is_outbound(),
            conn.tcp_keepalive(),
            conn.tcp_user_timeout(),
        );
        self.seen.lock().unwrap().push(seen);
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

fn server(
    state: &Shared<Options>,
    keepalive: Option<Duration>,
    user: Option<Duration>,
) -> (Server<Shared<Options>>, SocketAddr) {
    let mut b = Server::builder().listen("127.0.0.1:0").unwrap().workers(2);
    if let Some(k) = keepalive {
        b = b.tcp_keepalive(k);
    }
    if let Some(u) = user {
        b = b.tcp_user_timeout(u);
    }
    let server = b.start(state.clone()).unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

#[test]
fn accepted_and_outbound_connections_get_keepalive_and_user_timeout() {
    let _w = watchdog(
        "accepted_and_outbound_connections_get_keepalive_and_user_timeout",
        TEST_LIMIT,
    );
    let state = Shared::new(Options::default());
    let (server, addr) = server(
        &state,
        Some(Duration::from_secs(7)),
        Some(Duration::from_millis(1500)),
    );
    // Accepted: inherited from the listener.
    let _a = connect(addr);
    let _b = connect(addr);
    // Outbound: set on the connecting socket (it connects to its own listener, so this
    // also accepts one more).
    server.connect(addr, 1).unwrap();
    let want = (
        Some(Duration::from_secs(7)),
        Some(Duration::from_millis(1500)),
    );
    let seen = state.wait(4);
    assert_eq!(
        seen,
        vec![
            (false, want.0, want.1),
            (false, want.0, want.1),
            (false, want.0, want.1),
            (true, want.0, want.1),
        ]
    );
}

#[test]
fn a_client_sets_them_on_its_connections() {
    let _w = watchdog("a_client_sets_them_on_its_connections", TEST_LIMIT);
    let plain = Shared::new(Options::default());
    let (_server, addr) = server(&plain, None, None);
    let state = Shared::new(Options::default());
    let client = Client::builder()
        .workers(1)
        .tcp_keepalive(Duration::from_millis(2500)) // whole seconds, rounded up
        .tcp_user_timeout(Duration::from_secs(20))
        .start(state.clone())
        .unwrap();
    client.connect(addr, 9).unwrap();
    assert_eq!(
        state.wait(1),
        vec![(
            true,
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(20))
        )]
    );
    // The server side has neither.
    assert_eq!(plain.wait(1), vec![(false, None, None)]);
}

#[test]
fn off_by_default() {
    let _w = watchdog("off_by_default", TEST_LIMIT);
    let state = Shared::new(Options::default());
    let (server, addr) = server(&state, None, None);
    let _a = connect(addr);
    server.connect(addr, 1).unwrap();
    assert_eq!(
        state.wait(3),
        vec![(false, None, None), (false, None, None), (true, None, None)]
    );
}

#[test]
fn out_of_range_values_are_refused_at_start() {
    let state = Shared::new(Options::default());
    let bad = [
        (Some(Duration::ZERO), None),
        (Some(Duration::from_secs(40_000)), None),
        (None, Some(Duration::ZERO)),
        (None, Some(Duration::from_secs(30 * 86_400))),
    ];
    for (keepalive, user) in bad {
        let mut b = Server::builder().listen("127.0.0.1:0").unwrap().workers(1);
        if let Some(k) = keepalive {
            b = b.tcp_keepalive(k);
        }
        if let Some(u) = user {
            b = b.tcp_user_timeout(u);
        }
        assert!(
            matches!(b.start(state.clone()), Err(Error::Config(_))),
            "{keepalive:?} {user:?} accepted"
        );
    }
}
