//! A file-transfer test server: a line protocol over `Conn::send_file` and
//! `Conn::receive_to_file`, recording every transfer event.
//!
//! - `SEND <path> <offset> <len>` → `HEAD\n`, the file's bytes, `TAIL\n` (in order);
//! - `RECV <path> <len>` → the next `len` bytes go to the file (created), then
//!   `GOT <bytes>\n` (or `FAIL <reason>\n`);
//! - `RECV2 <path1> <len1> <path2> <len2>`: two receives back to back, the second
//!   started from the first one's `Received`;
//! - `RECVX <path> <len>`: a receive and an exact read of 4 bytes asked together (the 4
//!   bytes after the file come back as `ECHO <bytes>`);
//! - `ONLY <path> <offset> <len>`: the file alone (then `on_drained`);
//! - any other line → `ECHO <line>\n`.
#![allow(dead_code)]

use ringport::codec::DelimitedCodec;
use ringport::{CloseReason, Codec, Conn, Handler, Server, TransferEvent};
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the server saw, in order, as short strings.
#[derive(Default)]
pub struct Log {
    pub lines: Mutex<Vec<String>>,
    /// The files it is sending, to check when they are let go.
    pub files: Mutex<Vec<Arc<File>>>,
    pub closed: Mutex<Vec<CloseReason>>,
    /// `RECV2`: the receive to start when the first one ends.
    pub next: Mutex<Option<String>>,
}

impl Log {
    pub fn push(&self, s: String) {
        self.lines.lock().unwrap().push(s);
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn has(&self, prefix: &str) -> bool {
        self.snapshot().iter().any(|l| l.starts_with(prefix))
    }
}

pub struct FileProto {
    pub log: Arc<Log>,
}

fn describe(ev: &TransferEvent) -> String {
    match ev {
        TransferEvent::Progress { done, total, .. } => format!("progress {done}/{total}"),
        TransferEvent::Sent { bytes, .. } => format!("sent {bytes}"),
        TransferEvent::Received { bytes, .. } => format!("received {bytes}"),
        TransferEvent::Failed { done, error, .. } => {
            format!("failed {} {done} {error:?}", error.name())
        }
        _ => "other".into(),
    }
}

impl Handler for FileProto {
    type Session = ();

    fn on_open(&self, _conn: &mut Conn) {}

    fn on_data(&self, _s: &mut (), conn: &mut Conn, line: &[u8]) {
        let text = String::from_utf8_lossy(line).to_string();
        self.log.push(format!("line {text}"));
        let words: Vec<&str> = text.split(' ').collect();
        match words.as_slice() {
            ["SEND", path, offset, len] => {
                let file = Arc::new(File::open(path).expect("open the file to send"));
                self.log.files.lock().unwrap().push(file.clone());
                conn.send(b"HEAD\n");
                conn.send_file(file, offset.parse().unwrap(), len.parse().unwrap())
                    .expect("send_file");
                conn.send(b"TAIL\n");
            }
            ["RECV", path, len] => receive(conn, path, len),
            ["RECV2", path, len, then @ ..] => {
                // The second receive starts from the first one's Received.
                receive(conn, path, len);
                *self.log.next.lock().unwrap() = Some(then.join(" "));
            }
            ["RECVX", path, len] => {
                // A receive, then an exact read of what follows it, asked together.
                receive(conn, path, len);
                conn.read_exact(4).expect("read_exact");
            }
            ["ONLY", path, offset, len] => {
                // A file with nothing after it: on_drained follows its end.
                let file = Arc::new(File::open(path).expect("open the file to send"));
                conn.send_file(file, offset.parse().unwrap(), len.parse().unwrap())
                    .expect("send_file");
            }
            _ => conn.send(format!("ECHO {text}\n").as_bytes()),
        }
    }

    fn on_drained(&self, _s: &mut (), _conn: &mut Conn) {
        self.log.push("drained".into());
    }

    fn on_transfer(&self, _s: &mut (), conn: &mut Conn, ev: TransferEvent) {
        self.log.push(describe(&ev));
        match ev {
            TransferEvent::Received { bytes, .. } => {
                conn.send(format!("GOT {bytes}\n").as_bytes());
                if let Some(next) = self.log.next.lock().unwrap().take() {
                    let words: Vec<&str> = next.split(' ').collect();
                    receive(conn, words[0], words[1]);
                }
            }
            TransferEvent::Failed { error, .. } => {
                conn.send(format!("FAIL {}\n", error.name()).as_bytes())
            }
            _ => {}
        }
    }

    fn on_close(&self, _s: (), _conn: &Conn, reason: CloseReason) {
        self.log.push(format!("close {}", reason.name()));
        self.log.closed.lock().unwrap().push(reason);
    }
}

fn receive(conn: &mut Conn, path: &str, len: &str) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!path.starts_with("/dev/"))
        .open(path)
        .expect("open the file to receive into");
    conn.receive_to_file(file, len.parse().unwrap())
        .expect("receive_to_file");
}

/// Start a two-worker file-transfer test server on 127.0.0.1:0.
pub fn start() -> (Server<FileProto>, SocketAddr, Arc<Log>) {
    start_with(ringport::Timeouts::default())
}

/// The same, with these timeouts.
pub fn start_with(timeouts: ringport::Timeouts) -> (Server<FileProto>, SocketAddr, Arc<Log>) {
    let log = Arc::new(Log::default());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .unwrap()
        .workers(2)
        .timeouts(timeouts)
        .codec(Codec::Delimited(DelimitedCodec::lines()))
        .start(FileProto { log: log.clone() })
        .expect("start the server");
    let addr = server.local_addrs()[0];
    (server, addr, log)
}

/// A directory in /dev/shm for one test, removed when dropped.
pub struct ShmDir(pub PathBuf);

impl ShmDir {
    pub fn new(test: &str) -> ShmDir {
        let p = PathBuf::from(format!("/dev/shm/ringport-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        ShmDir(p)
    }

    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Wait until every connection has closed and the server holds no bytes for received
/// data (frame readers and receives into files: the frame budget's gauge is back to 0).
pub fn wait_nothing_held(server: &Server<FileProto>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let s = server.stats();
        if s.open == 0 && s.frame_bytes == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still open {} and holding {} bytes",
            s.open,
            s.frame_bytes
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
