//! The README's example: an echo server on io_uring.
//!
//! Run: `cargo run --release -p ringport --example echo -- 127.0.0.1:7007`

use ringport::{CloseReason, Conn, Handler, Server};
use std::time::Duration;

struct Echo;

impl Handler for Echo {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {}

    fn on_data(&self, _session: &mut (), conn: &mut Conn, data: &[u8]) {
        conn.send(data);
    }

    fn on_close(&self, _session: (), _conn: &Conn, _why: CloseReason) {}
}

fn main() -> Result<(), ringport::Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7007".into());
    let server = Server::builder().listen(addr.as_str())?.start(Echo)?;
    println!("echoing on {:?}", server.local_addrs());
    // Serve for a while, then shut down gracefully (a real server waits for a signal).
    let serve_for = std::env::var("ECHO_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    std::thread::sleep(Duration::from_secs(serve_for));
    let report = server.shutdown(Duration::from_secs(5));
    println!(
        "shutdown: {} open, {} forced",
        report.connections, report.forced
    );
    // The counters after every worker stopped, for people (`{:?}` has every field).
    println!("{}", report.stats);
    Ok(())
}
