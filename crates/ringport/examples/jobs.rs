//! A login server whose password hashing runs on the job pool, off the I/O workers.
//!
//! Line protocol: `LOGIN user password` is answered `OK user` or `DENIED`; anything else
//! `ERR expected LOGIN user password`. Each password is hashed on a pool thread with a
//! deliberately slow iterated hash (a PBKDF-like loop, see [`slow_hash`]) and compared
//! with the digest stored for the user at start. Answers come back in the order the
//! lines came, however the jobs finish: the engine hands `on_job_done` a connection's
//! results in spawn order. Even the `ERR` answer goes through a (trivial) job, so it
//! cannot overtake the answers before it. Meanwhile the workers go on serving other
//! connections; a connection with 32 logins outstanding is read no further until one is
//! answered.
//!
//! Demo users: `alice wonderland`, `bob builder`, `carol s3cret`.
//!
//! Run: `cargo run --release -p ringport --example jobs -- 127.0.0.1:7013`, then e.g.
//! `printf 'LOGIN alice wonderland\nLOGIN bob nope\n' | nc 127.0.0.1 7013`. Prints
//! `listening on ADDR` once bound; serves until killed.
//!
//! (The hash is a demo, not a password hash to deploy: use a real KDF such as Argon2.
//! `DefaultHasher`'s algorithm may change between Rust releases, which is fine here as
//! the stored digests are made at start, by the same binary.)

use ringport::codec::DelimitedCodec;
use ringport::{CloseReason, Codec, Conn, Handler, JobDone, Server};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// Rounds of [`slow_hash`]: a few milliseconds per login in a release build.
const ROUNDS: u32 = 20_000;
/// Job pool threads.
const POOL_THREADS: usize = 4;

/// A salted, iterated hash: each round hashes the last digest with the salt, the round
/// number and the password, so the rounds cannot be skipped or run in parallel.
fn slow_hash(salt: u64, password: &[u8], rounds: u32) -> u64 {
    let mut digest = salt;
    for round in 0..rounds {
        let mut h = DefaultHasher::new();
        (digest, salt, round).hash(&mut h);
        password.hash(&mut h);
        digest = h.finish();
    }
    digest
}

/// A stored login: the salt and the digest of the password.
struct Account {
    salt: u64,
    digest: u64,
}

struct Login {
    accounts: Arc<HashMap<String, Account>>,
}

/// Check one request line (on a pool thread); the answer to send.
fn answer(accounts: &HashMap<String, Account>, line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace();
    let (Some("LOGIN"), Some(user), Some(password), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return "ERR expected LOGIN user password".into();
    };
    // An unknown user costs as much as a known one: the hash runs either way.
    let (salt, stored) = accounts
        .get(user)
        .map_or((0, None), |a| (a.salt, Some(a.digest)));
    let digest = slow_hash(salt, password.as_bytes(), ROUNDS);
    if stored == Some(digest) {
        format!("OK {user}")
    } else {
        "DENIED".into()
    }
}

impl Handler for Login {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {}

    fn on_data(&self, _session: &mut (), conn: &mut Conn, line: &[u8]) {
        let (accounts, line) = (Arc::clone(&self.accounts), line.to_vec());
        if let Err(e) = conn.spawn_job(move || answer(&accounts, &line)) {
            // A full pool queue, say: this login cannot be answered in order.
            eprintln!("jobs: {}: {e}; closing", conn.id());
            conn.abort();
        }
    }

    fn on_job_done(&self, _session: &mut (), conn: &mut Conn, done: JobDone) {
        if let Ok(reply) = done.downcast::<String>() {
            // Only an over-long line fails to encode; the answers are short.
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
        .unwrap_or_else(|| "127.0.0.1:7013".into());
    let users = [
        ("alice", "wonderland"),
        ("bob", "builder"),
        ("carol", "s3cret"),
    ];
    let accounts: HashMap<String, Account> = users
        .iter()
        .enumerate()
        .map(|(i, (user, password))| {
            let salt = 0x5a17_0000 + i as u64;
            let digest = slow_hash(salt, password.as_bytes(), ROUNDS);
            (user.to_string(), Account { salt, digest })
        })
        .collect();
    let server = Server::builder()
        .listen(addr.as_str())?
        .codec(Codec::Delimited(DelimitedCodec::lines()))
        .jobs(POOL_THREADS)
        .start(Login {
            accounts: Arc::new(accounts),
        })?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    eprintln!(
        "jobs: {POOL_THREADS} pool threads on the {} backend",
        server.stats().backend
    );
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
