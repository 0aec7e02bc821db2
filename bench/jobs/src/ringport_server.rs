//! The ringport servers: each frame hashed on the job pool (`conn.spawn_job`, the digest
//! sent in `on_job_done`), or inline in `on_data`.

use crate::args::Args;
use ringport::codec::{Endian, LengthCodec};
use ringport::{Backend, CloseReason, Codec, Conn, Handler, JobDone, Server};

struct Hash {
    iters: u32,
    inline: bool,
}

impl Handler for Hash {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {}

    fn on_data(&self, _s: &mut (), conn: &mut Conn, frame: &[u8]) {
        if self.inline {
            let digest = crate::hash(frame, self.iters);
            if conn.send_frame(&digest.to_be_bytes()).is_err() {
                conn.abort();
            }
            return;
        }
        let frame = frame.to_vec();
        let iters = self.iters;
        if let Err(e) = conn.spawn_job(move || crate::hash(&frame, iters)) {
            eprintln!("spawn_job refused: {e}; closing");
            conn.abort();
        }
    }

    fn on_job_done(&self, _s: &mut (), conn: &mut Conn, done: JobDone) {
        match done.downcast::<u64>() {
            Ok(digest) => {
                if conn.send_frame(&digest.to_be_bytes()).is_err() {
                    conn.abort();
                }
            }
            Err(_) => conn.abort(),
        }
    }

    fn on_close(&self, _s: (), _conn: &Conn, _why: CloseReason) {}
}

pub fn run(a: &Args, inline: bool) -> Result<(), Box<dyn std::error::Error>> {
    let backend = match a.str("--backend", "uring").as_str() {
        "uring" => Backend::Uring,
        "poll" => Backend::Poll,
        "auto" => Backend::Auto,
        other => return Err(format!("--backend {other:?}: uring, poll or auto").into()),
    };
    let codec = Codec::Length(LengthCodec::new(4, Endian::Big)?);
    let mut b = Server::builder()
        .listen(a.str("--listen", "127.0.0.1:0").as_str())?
        .workers(a.usize("--workers", 1))
        .backend(backend)
        .codec(codec);
    if !inline {
        b = b
            .jobs(a.usize("--jobs", 4))
            .jobs_per_connection(a.usize("--inflight", 32));
    }
    let server = b.start(Hash {
        iters: a.u32("--iters", 20),
        inline,
    })?;
    for addr in server.local_addrs() {
        crate::print_listening(*addr);
    }
    // Serve until killed (the bench stops servers with SIGTERM after measuring).
    loop {
        std::thread::park();
    }
}
