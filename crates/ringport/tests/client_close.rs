//! An outbound connection's full life: connect, echo, close by the client, `on_close`,
//! slot freed, and a shutdown with nothing left to force.

use ringport::{Accept, Client, CloseReason, Conn, Handler, Incoming, Server};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Echo;

impl Handler for Echo {
    type Session = ();
    fn on_accept(&self, _incoming: &Incoming) -> Accept {
        Accept::Accept
    }
    fn on_open(&self, _conn: &mut Conn) {}
    fn on_data(&self, _s: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

/// Sends one message, closes once it is echoed, records the close reason.
struct OneShot {
    closes: Arc<Mutex<Vec<(u64, CloseReason)>>>,
}

impl Handler for OneShot {
    type Session = usize;
    fn on_open(&self, conn: &mut Conn) -> usize {
        conn.send(b"ping");
        0
    }
    fn on_data(&self, got: &mut usize, conn: &mut Conn, data: &[u8]) {
        *got += data.len();
        if *got == 4 {
            conn.close();
        }
    }
    fn on_close(&self, got: usize, conn: &Conn, why: CloseReason) {
        assert_eq!(got, 4);
        self.closes.lock().unwrap().push((conn.token(), why));
    }
}

#[test]
fn client_close_runs_on_close_and_frees_the_connection() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .start(Echo)
        .unwrap();
    let closes = Arc::new(Mutex::new(Vec::new()));
    let client = Client::builder()
        .workers(2)
        .start(OneShot {
            closes: closes.clone(),
        })
        .unwrap();
    for token in 1..=50 {
        client.connect(server.local_addrs()[0], token).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while closes.lock().unwrap().len() < 50 {
        assert!(Instant::now() < deadline, "closes: {:?}", client.stats());
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut got = closes.lock().unwrap().clone();
    got.sort_by_key(|(token, _)| *token);
    let want: Vec<_> = (1..=50).map(|t| (t, CloseReason::Local)).collect();
    assert_eq!(got, want);
    let stats = client.stats();
    assert_eq!((stats.connected, stats.closed, stats.open), (50, 50, 0));
    let report = client.shutdown(Duration::from_secs(5));
    assert_eq!(report.forced, 0);
    assert_eq!(report.connections, 0);
}

/// Records the local address each outbound connection got.
struct Sources {
    seen: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Handler for Sources {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        self.seen.lock().unwrap().push(conn.local_addr().unwrap());
        conn.close();
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

#[test]
fn connect_from_binds_the_source_address() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(1)
        .start(Echo)
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = Client::builder()
        .workers(1)
        .start(Sources { seen: seen.clone() })
        .unwrap();
    let sources = ["127.0.0.2:0", "127.0.0.3:0"];
    for (token, src) in sources.iter().enumerate() {
        let bind: SocketAddr = src.parse().unwrap();
        client
            .connect_from(server.local_addrs()[0], bind, token as u64)
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", client.stats());
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut ips: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.ip().to_string())
        .collect();
    ips.sort();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.3"]);
}
