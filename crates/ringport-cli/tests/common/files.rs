//! Helpers of the file-transfer tests: a `file-server` child on a root in /dev/shm,
//! random files with their BLAKE3 (computed here, independently of the binary), the
//! `get`/`put` commands run to completion, raw protocol requests.
#![allow(dead_code)]

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A temporary directory in /dev/shm (the disk is slow), removed on drop.
pub fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringport-ft-")
        .tempdir_in("/dev/shm")
        .expect("a temporary directory in /dev/shm")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Write `len` pseudo-random bytes (from `seed`) to `path`; returns their BLAKE3 hex.
pub fn write_random(path: &Path, len: u64, seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut hasher = blake3::Hasher::new();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).expect("write");
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    f.flush().expect("flush");
    hasher.finalize().to_hex().to_string()
}

/// The BLAKE3 hex of a file's bytes.
pub fn blake3_file(path: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finalize().to_hex().to_string()
}

/// Files under `dir` (recursively) that look like unfinished uploads.
pub fn temp_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".ringport-upload.") {
            n += 1;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            n += temp_files(&entry.path());
        }
    }
    n
}

/// A running `ringport file-server`.
pub struct FileServer {
    pub run: Running,
    pub addr: String,
}

impl FileServer {
    /// Serve `root` on a free loopback port with 2 workers and 2 job threads.
    pub fn start(root: &Path, extra: &[&str]) -> FileServer {
        let mut args = vec![
            "file-server",
            "--root",
            path_str(root),
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--jobs",
            "2",
        ];
        args.extend_from_slice(extra);
        let run = spawn(&args);
        let addr = line_starting(&run, "listening on ", Duration::from_secs(10));
        FileServer { run, addr }
    }

    pub fn pid(&self) -> u32 {
        self.run.child.id()
    }

    /// SIGTERM, a clean exit required; its stdout and stderr.
    pub fn stop(self) -> (String, String) {
        stop(self.run)
    }
}

/// Run `ringport <args>` to completion (at most 120 s): success, stdout, stderr.
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let mut run = spawn(args);
    let (status, out, err) = run.wait(Duration::from_secs(120));
    (status.success(), out, err)
}

/// A client socket with 20 s timeouts.
pub fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the file server");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One raw request line (given without its `\n`) on a fresh connection: the reply line.
pub fn raw_request(addr: &str, line: &[u8]) -> String {
    let mut s = connect(addr);
    let mut all = line.to_vec();
    all.push(b'\n');
    s.write_all(&all).expect("send the request");
    let mut reply = String::new();
    BufReader::new(s)
        .read_line(&mut reply)
        .expect("read the reply");
    reply
}

/// `GET name 0 verify|noverify` on a fresh connection: the reply line and, for `OK`,
/// the file's bytes.
pub fn raw_get(addr: &str, name: &str, verify: bool) -> (String, Vec<u8>) {
    let mut s = connect(addr);
    let mode = if verify { "verify" } else { "noverify" };
    s.write_all(format!("GET {name} 0 {mode}\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(s);
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    let mut body = Vec::new();
    if let Some(rest) = reply.strip_prefix("OK ") {
        let size: usize = rest.split(' ').next().unwrap().parse().unwrap();
        body.resize(size, 0);
        reader.read_exact(&mut body).unwrap();
    }
    (reply, body)
}

/// Open descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Wait (at most 10 s) for a `--stats` line saying `open N`.
pub fn wait_for_open(server: &FileServer, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no stats line with open {n} within 10 s");
        let rest = line_starting(&server.run, "stats: open ", left);
        let open: u64 = rest.split(' ').next().unwrap().parse().unwrap();
        if open == n {
            return;
        }
    }
}
