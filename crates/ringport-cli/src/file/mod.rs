//! The file-transfer tools: `file-server` (a root directory served with zero-copy sends,
//! digests computed on the job pool, uploads renamed into place when complete) and its
//! clients `get` and `put` (plain blocking std code). The wire format is in
//! [`protocol`]; README.md's "File transfer" section tells it for people.

pub mod digest;
pub mod get;
pub mod names;
pub mod progress;
pub mod protocol;
pub mod put;
pub mod serve;
pub mod server;

use anyhow::Context;
use std::io::BufRead;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Connect to a file server, with `timeout` on the connect and on every read and write.
pub fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One reply line (at most [`protocol::MAX_LINE`] bytes), without its line end.
pub fn read_line(reader: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = Vec::new();
    let limit = protocol::MAX_LINE as u64 + 2;
    let n = std::io::Read::take(&mut *reader, limit)
        .read_until(b'\n', &mut line)
        .context("reading the server's reply")?;
    anyhow::ensure!(n > 0, "the server closed the connection without a reply");
    anyhow::ensure!(
        line.last() == Some(&b'\n'),
        "the server's reply line is cut short or too long"
    );
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).context("the server's reply is not text")
}
