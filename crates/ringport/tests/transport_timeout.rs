//! ETIMEDOUT on an established connection is reported as `CloseReason::TransportTimeout`,
//! not as a connect timeout. Loopback always acknowledges, so the test makes a network
//! namespace joined by a veth pair, puts a client in it, and takes the client's link down:
//! the server's data then goes unacknowledged until TCP_USER_TIMEOUT gives up. Needs root
//! and `ip` (iproute2), as CI has; without them it says so and checks nothing else.

mod util;

use ringport::{CloseReason, Conn, Handler, Server};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{wait_until, watchdog, TEST_LIMIT, WAIT};

/// Sends a byte at open, then keeps sending every 20 ms (data for the kernel to
/// retransmit once the peer is gone).
#[derive(Clone, Default)]
struct Talker {
    reasons: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for Talker {
    type Session = ();
    fn on_open(&self, conn: &mut Conn) {
        conn.send(b"!");
        conn.set_timer(Duration::from_millis(20), 0);
    }
    fn on_data(&self, _s: &mut (), _conn: &mut Conn, _data: &[u8]) {}
    fn on_timer(&self, _s: &mut (), conn: &mut Conn, _token: u64) {
        conn.send(&[0u8; 512]);
        conn.set_timer(Duration::from_millis(20), 0);
    }
    fn on_close(&self, _s: (), _conn: &Conn, why: CloseReason) {
        self.reasons.lock().unwrap().push(why);
    }
}

/// A namespace with one end of a veth pair (the other end in ours); deleted on drop,
/// which removes both ends.
struct Netns {
    name: String,
    client_link: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// `10.201.N.1` here, `10.201.N.2` in the namespace.
    fn make(n: u32) -> Option<Netns> {
        let pid = std::process::id();
        let ns = Netns {
            name: format!("ringport-t{pid}"),
            client_link: format!("rpc{}", pid % 100_000),
        };
        let host_link = format!("rph{}", pid % 100_000);
        let (host_addr, client_addr) = (format!("10.201.{n}.1/24"), format!("10.201.{n}.2/24"));
        let ok = ip(&["netns", "add", &ns.name])
            && ip(&[
                "link",
                "add",
                &host_link,
                "type",
                "veth",
                "peer",
                "name",
                &ns.client_link,
            ])
            && ip(&["link", "set", &ns.client_link, "netns", &ns.name])
            && ip(&["addr", "add", &host_addr, "dev", &host_link])
            && ip(&["link", "set", &host_link, "up"])
            && ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &client_addr,
                "dev",
                &ns.client_link,
            ])
            && ip(&["-n", &ns.name, "link", "set", &ns.client_link, "up"]);
        ok.then_some(ns)
    }

    fn link_down(&self) {
        assert!(ip(&[
            "-n",
            &self.name,
            "link",
            "set",
            &self.client_link,
            "down"
        ]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn an_unacknowledged_peer_times_out_as_a_transport_timeout() {
    let _w = watchdog("transport_timeout", TEST_LIMIT);
    let n = std::process::id() % 200 + 20;
    let Some(ns) = Netns::make(n) else {
        eprintln!("cannot make a network namespace here (needs root and iproute2): skipped");
        return;
    };
    let talker = Talker::default();
    let server = Server::builder()
        .listen(format!("10.201.{n}.1:0"))
        .unwrap()
        .workers(1)
        .tcp_user_timeout(Duration::from_millis(400))
        .start(talker.clone())
        .unwrap();
    let port = server.local_addrs()[0].port();
    let script = format!(
        "import socket,sys,time\n\
         s=socket.create_connection(('10.201.{n}.1',{port}))\n\
         s.recv(1); print('ready', flush=True); time.sleep(60)"
    );
    let mut client: Child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the client in the namespace");
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the client did not connect");

    ns.link_down();
    wait_until(WAIT, "the server gave up on the peer", || {
        !talker.reasons.lock().unwrap().is_empty()
    });
    assert_eq!(
        *talker.reasons.lock().unwrap(),
        vec![CloseReason::TransportTimeout]
    );
    assert_eq!(server.stats().closed_with("transport_timeout"), 1);
    let _ = client.kill();
    let _ = client.wait();
    server.shutdown(Duration::from_secs(2));
}
