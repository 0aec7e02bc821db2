//! `get`: the plain download client. Connects, sends
//! `GET <name> <offset> noverify\n`, reads the `OK <size> <offset>` header,
//! then reads the `size - offset` bytes with a plain blocking `read` loop into
//! one 256 KiB buffer and writes each read to the output file (at `offset`;
//! the file is created, and truncated when the offset is 0). It checks the
//! count, not the bytes (no digest: `noverify`).
//!
//! Prints one line to stdout:
//! `get NAME: BYTES bytes in SECONDS s, GIB_PER_S GiB/s (MB_PER_S MB/s)`,
//! timed from the request sent to the last byte written. The same client reads
//! from `sendfile-server` and from `ringport file-server`.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::file_proto::{encode_name, MAX_LINE};

/// Bytes each `read` asks for.
pub const READ_BUF: usize = 256 * 1024;

pub struct Args {
    pub addr: String,
    pub name: String,
    pub out: String,
    pub offset: u64,
}

pub fn run(args: Args) -> io::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(args.offset == 0)
        .open(&args.out)?;
    if args.offset > 0 {
        out.seek(SeekFrom::Start(args.offset))?;
    }
    let mut stream = TcpStream::connect(&args.addr)?;
    let mut buf = vec![0u8; READ_BUF];
    let start = Instant::now();
    let request = format!("GET {} {} noverify\n", encode_name(&args.name), args.offset);
    stream.write_all(request.as_bytes())?;

    // The header, and whatever of the body came with it.
    let mut have = 0;
    let newline = loop {
        if let Some(i) = buf[..have].iter().position(|&b| b == b'\n') {
            break i;
        }
        if have >= MAX_LINE {
            return Err(io::Error::other("header line too long"));
        }
        let n = read(&mut stream, &mut buf[have..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the header",
            ));
        }
        have += n;
    };
    let header = String::from_utf8_lossy(&buf[..newline]).into_owned();
    let size = parse_header(&header, args.offset)?;
    let expected = size - args.offset;
    let early = (have - newline - 1) as u64;
    if early > expected {
        return Err(io::Error::other("more bytes than the header announced"));
    }
    out.write_all(&buf[newline + 1..have])?;

    let mut got = early;
    while got < expected {
        let want = usize::try_from(expected - got)
            .unwrap_or(usize::MAX)
            .min(READ_BUF);
        let n = read(&mut stream, &mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed after {got} of {expected} bytes"),
            ));
        }
        out.write_all(&buf[..n])?;
        got += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "get {}: {got} bytes in {secs:.6} s, {:.3} GiB/s ({:.1} MB/s)",
        args.name,
        got as f64 / secs / (1u64 << 30) as f64,
        got as f64 / secs / 1e6
    );
    Ok(())
}

/// The size of an `OK <size> <offset>` header answering a request at `offset`.
fn parse_header(header: &str, offset: u64) -> io::Result<u64> {
    let bad = || io::Error::other(format!("server answered {header:?}"));
    let mut words = header.split(' ');
    if words.next() != Some("OK") {
        return Err(bad());
    }
    let size: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let echoed: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    // Words after the offset (none today) are left to later versions.
    if echoed != offset || size < offset {
        return Err(bad());
    }
    Ok(size)
}

fn read(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}
