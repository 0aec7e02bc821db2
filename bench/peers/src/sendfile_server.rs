//! `sendfile-server`: the plain file server that ringport's file server is
//! measured against. std blocking IO, one OS thread per connection; each
//! download is the header written with `write_all` and then the file's bytes
//! with a `sendfile(2)` loop (each call asks for everything left, capped at
//! the kernel's per-call limit), so the bytes go page cache -> socket without
//! passing through user space.
//!
//! Requests (see `file_proto`): `GET <name> <offset> noverify\n`, one after
//! another on the same connection; the server closes at EOF, on an error, or
//! after answering a bad request with `ERR <reason>\n`. `<name>` (decoded)
//! must be a plain file name in `--root`: no `/`, not `.` or `..`, no NUL.
//! Downloads with a digest (no `noverify`) are not served: `ERR`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::file_proto::{decode_name, MAX_LINE};

/// Most bytes one `sendfile(2)` call moves on Linux (0x7ffff000); asking for
/// more is allowed but this is what a call can do at most.
const SENDFILE_MAX: usize = 0x7fff_f000;

pub fn run(listener: TcpListener, root: PathBuf) -> io::Result<()> {
    let root = Arc::new(root);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let root = Arc::clone(&root);
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream, &root) {
                        // A peer that goes away mid-download is routine.
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ) {
                            eprintln!("sendfile-server: {e}");
                        }
                    }
                });
            }
            Err(e) => eprintln!("sendfile-server: accept: {e}"),
        }
    }
    Ok(())
}

/// One connection: requests until EOF.
fn serve(stream: TcpStream, root: &Path) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(MAX_LINE, &stream);
    let mut line = Vec::with_capacity(MAX_LINE);
    loop {
        line.clear();
        (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Ok(()); // EOF between requests
        }
        if line.last() != Some(&b'\n') {
            return refuse(&stream, "request line too long or cut short");
        }
        let (file, offset, size) = match open(&line, root) {
            Ok(x) => x,
            Err(reason) => return refuse(&stream, &reason),
        };
        (&stream).write_all(format!("OK {size} {offset}\n").as_bytes())?;
        send(&stream, &file, offset, size)?;
    }
}

/// The file a request line names, its size and the offset asked for, or the
/// reason it is refused.
fn open(line: &[u8], root: &Path) -> Result<(File, u64, u64), String> {
    let line = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    let words: Vec<&str> = line.trim_end_matches('\n').split(' ').collect();
    let (name, offset) = match words.as_slice() {
        ["GET", name, offset, "noverify"] => (*name, *offset),
        ["GET", _, _] => return Err("digests not served here: add noverify".into()),
        _ => return Err("expected GET <name> <offset> noverify".into()),
    };
    let offset: u64 = offset
        .parse()
        .map_err(|_| format!("bad offset {offset:?}"))?;
    let name = decode_name(name).ok_or_else(|| "bad percent-encoding".to_string())?;
    let name = String::from_utf8(name).map_err(|_| "name is not UTF-8".to_string())?;
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(format!("not a plain file name: {name:?}"));
    }
    let file = File::open(root.join(&name)).map_err(|e| format!("{name}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{name}: not a regular file"));
    }
    if offset > meta.len() {
        return Err(format!("offset {offset} past the end ({})", meta.len()));
    }
    Ok((file, offset, meta.len()))
}

/// Bytes `offset..size` of `file` to the socket with `sendfile(2)`.
fn send(stream: &TcpStream, file: &File, offset: u64, size: u64) -> io::Result<()> {
    let mut pos = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let mut left = size - offset;
    while left > 0 {
        let count = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_MAX);
        // SAFETY: both descriptors are open for the whole call (`stream` and
        // `file` are borrowed); `pos` is a live, exclusively borrowed off_t
        // the kernel reads and advances; no user-space buffer is involved.
        let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut pos, count) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            // The file is shorter than its size was: the peer was promised
            // bytes that will not come, so the connection has to end.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file truncated while sent: {left} bytes short"),
            ));
        }
        left -= n as u64;
    }
    Ok(())
}

fn refuse(mut stream: &TcpStream, reason: &str) -> io::Result<()> {
    let reason = reason.replace('\n', " ");
    stream.write_all(format!("ERR {reason}\n").as_bytes())
}
