//! Two protocols on two ports of one server: a length-prefixed echo for clients on one
//! listener, a line-based console for operators on another, each with its own handler,
//! session type, codec and admission limits, and each with its own statistics.
//!
//! Run: `cargo run --release -p ringport --example two_protocols`, then try the console
//! with `nc 127.0.0.1 7011` (type `help`).

use ringport::codec::{DelimitedCodec, Endian, LengthCodec};
use ringport::{CloseReason, Codec, Conn, Handler, Listener, Server};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The clients' protocol: each frame is echoed; the session counts frames.
struct FrameEcho {
    frames: Arc<AtomicU64>,
}

impl Handler for FrameEcho {
    type Session = u64;

    fn on_open(&self, _conn: &mut Conn) -> u64 {
        0
    }

    fn on_data(&self, frames: &mut u64, conn: &mut Conn, frame: &[u8]) {
        *frames += 1;
        if conn.send_frame(frame).is_err() {
            conn.close();
        }
    }

    fn on_close(&self, frames: u64, _conn: &Conn, _why: CloseReason) {
        self.frames.fetch_add(frames, Ordering::Relaxed);
    }
}

/// The operators' console: one command per line.
struct Console {
    frames: Arc<AtomicU64>,
}

impl Handler for Console {
    type Session = String;

    fn on_open(&self, conn: &mut Conn) -> String {
        let who = conn.peer_addr().to_string();
        let _ = conn.send_frame(format!("hello {who}; commands: frames, quit").as_bytes());
        who
    }

    fn on_data(&self, who: &mut String, conn: &mut Conn, line: &[u8]) {
        let reply = match line {
            b"frames" => format!(
                "{} frames echoed by closed client connections",
                self.frames.load(Ordering::Relaxed)
            ),
            b"quit" => {
                conn.close();
                format!("bye {who}")
            }
            _ => "commands: frames, quit".to_string(),
        };
        let _ = conn.send_frame(reply.as_bytes());
    }

    fn on_close(&self, _who: String, _conn: &Conn, _why: CloseReason) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .codec(Codec::Length(LengthCodec::new(2, Endian::Big)?))
        .listener(
            Listener::bind("127.0.0.1:7010")?
                .name("clients")
                .max_per_ip(64),
        )
        .listener(
            Listener::bind("127.0.0.1:7011")?
                .name("console")
                .handler(Console {
                    frames: frames.clone(),
                })
                .codec(Codec::Delimited(DelimitedCodec::lines().max_length(256)))
                .max_connections(4),
        )
        .start(FrameEcho { frames })?;
    println!(
        "clients on {}, console on {}",
        server.local_addrs()[0],
        server.local_addrs()[1]
    );
    let serve_for = std::env::var("SERVE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    std::thread::sleep(Duration::from_secs(serve_for));
    // With two listeners the stats print a block for each.
    println!("{}", server.shutdown(Duration::from_secs(5)).stats);
    Ok(())
}
