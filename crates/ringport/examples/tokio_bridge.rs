//! Awaiting async work from a handler: each request is answered after a task on a tokio
//! runtime (`Conn::spawn_async`, feature `tokio`) has awaited a simulated database.
//!
//! Line protocol: `GET key` is answered `VALUE key value` or `NOTFOUND key`; anything
//! else `ERR expected GET key`. The "database" is an in-memory map shared by every task;
//! a lookup awaits `tokio::time::sleep` of a random-ish 0 to 20 ms first, as a network
//! round trip would, so a connection's lookups finish out of order. Their answers are
//! sent in request order all the same: the engine hands `on_job_done` a connection's
//! results in the order they were spawned, async tasks as jobs. The I/O workers never
//! block; a connection with 32 lookups outstanding is read no further until one is
//! answered.
//!
//! Keys: `user:1` to `user:100` (values `name-N`).
//!
//! Run: `cargo run --release -p ringport --features tokio --example tokio_bridge --
//! 127.0.0.1:7014`, then e.g. `printf 'GET user:7\nGET nobody\n' | nc 127.0.0.1 7014`.
//! Prints `listening on ADDR` once bound; serves until killed.

use ringport::codec::DelimitedCodec;
use ringport::{CloseReason, Codec, Conn, Handler, JobDone, Server};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The shared "database".
struct Database {
    rows: HashMap<String, String>,
    /// Counts lookups, to vary their delays.
    lookups: AtomicU64,
}

impl Database {
    /// Look `key` up after a simulated round trip of 0 to 20 ms.
    async fn get(&self, key: &str) -> Option<String> {
        let n = self.lookups.fetch_add(1, Ordering::Relaxed);
        // A cheap mix of the lookup number: delays jump about, so lookups overtake.
        let delay_us = n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) % 20_000;
        tokio::time::sleep(Duration::from_micros(delay_us)).await;
        self.rows.get(key).cloned()
    }
}

struct Bridge {
    db: Arc<Database>,
}

/// The answer to one request line (in a tokio task).
async fn answer(db: Arc<Database>, line: Vec<u8>) -> String {
    let text = String::from_utf8_lossy(&line);
    let mut words = text.split_whitespace();
    let (Some("GET"), Some(key), None) = (words.next(), words.next(), words.next()) else {
        return "ERR expected GET key".into();
    };
    match db.get(key).await {
        Some(value) => format!("VALUE {key} {value}"),
        None => format!("NOTFOUND {key}"),
    }
}

impl Handler for Bridge {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {}

    fn on_data(&self, _session: &mut (), conn: &mut Conn, line: &[u8]) {
        let task = answer(Arc::clone(&self.db), line.to_vec());
        if let Err(e) = conn.spawn_async(task) {
            eprintln!("tokio_bridge: {}: {e}; closing", conn.id());
            conn.abort();
        }
    }

    fn on_job_done(&self, _session: &mut (), conn: &mut Conn, done: JobDone) {
        if let Ok(reply) = done.downcast::<String>() {
            let _ = conn.send_frame(reply.as_bytes());
        }
    }

    // The default `on_eof` closes gracefully: the answers still outstanding are sent
    // first.

    fn on_close(&self, _session: (), _conn: &Conn, _why: CloseReason) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7014".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;
    let rows = (1..=100)
        .map(|i| (format!("user:{i}"), format!("name-{i}")))
        .collect();
    let db = Arc::new(Database {
        rows,
        lookups: AtomicU64::new(0),
    });
    let server = Server::builder()
        .listen(addr.as_str())?
        .codec(Codec::Delimited(DelimitedCodec::lines()))
        .tokio_runtime(runtime.handle().clone())
        .start(Bridge { db })?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    eprintln!(
        "tokio_bridge: a tokio runtime of 2 threads, on the {} backend",
        server.stats().backend
    );
    // Serve until killed (the runtime lives as long as `runtime` does: to the end).
    loop {
        std::thread::park();
    }
}
