//! `ringport put ADDR PATH [--name NAME]`: upload a file to a file server (sent with
//! `std::io::copy`, which is `sendfile(2)` from a file to a socket on Linux) and check
//! the server's digest of what it stored against the local file's.

use crate::file::digest::{digest_file, Digest, DigestKind};
use crate::file::progress::{Progress, Style};
use crate::file::protocol::{Reply, Request};
use anyhow::Context;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Bytes handed to one `io::copy` between two progress updates.
const STEP: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct PutOptions {
    pub addr: SocketAddr,
    pub path: PathBuf,
    /// The name under the server's root (default: the file's name).
    pub name: Option<Vec<u8>>,
    /// On the connect and on every read and write.
    pub timeout: Duration,
}

pub fn run(opts: &PutOptions) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => opts
            .path
            .file_name()
            .with_context(|| format!("{} has no file name: give --name", opts.path.display()))?
            .as_bytes()
            .to_vec(),
    };
    let shown = String::from_utf8_lossy(&name).into_owned();
    let file =
        File::open(&opts.path).with_context(|| format!("opening {}", opts.path.display()))?;
    let meta = file.metadata()?;
    anyhow::ensure!(
        meta.is_file(),
        "{} is not a regular file",
        opts.path.display()
    );
    let size = meta.len();

    let stream = crate::file::connect(opts.addr, opts.timeout)?;
    (&stream)
        .write_all(Request::Put { name, size }.line().as_bytes())
        .context("sending the request")?;
    let mut reader = BufReader::new(&stream);
    match Reply::parse(&crate::file::read_line(&mut reader)?).map_err(anyhow::Error::msg)? {
        Reply::Ready => {}
        Reply::Err(refusal) => anyhow::bail!("the server refused: {refusal}"),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }

    // Hash the local file on a thread of its own while it is being sent.
    let file = Arc::new(file);
    let hashing = {
        let file = Arc::clone(&file);
        std::thread::Builder::new()
            .name("digest".into())
            .spawn(move || {
                let b3 = digest_file(DigestKind::Blake3, &file, size);
                (b3, file)
            })?
    };
    let mut progress = Progress::new(format!("put {shown}"), size, 0, Style::for_stderr());
    let sent = send(&file, &stream, size, |n| progress.update(n));
    progress.finish(*sent.as_ref().unwrap_or(&0));
    let sent = sent.context("sending the file")?;
    anyhow::ensure!(
        sent == size,
        "{} ended after {sent} of {size} bytes (it shrank while it was sent)",
        opts.path.display()
    );

    let reply = Reply::parse(&crate::file::read_line(&mut reader)?).map_err(anyhow::Error::msg)?;
    let (b3, file) = hashing
        .join()
        .map_err(|_| anyhow::anyhow!("the digest thread panicked"))?;
    let theirs = match reply {
        Reply::Done {
            size: stored,
            digest,
        } => {
            anyhow::ensure!(stored == size, "the server stored {stored} of {size} bytes");
            digest
        }
        Reply::Err(refusal) => anyhow::bail!("the server failed to store {shown:?}: {refusal}"),
        other => anyhow::bail!("unexpected reply {other:?}"),
    };
    let ours: Digest = match theirs.kind {
        DigestKind::Blake3 => b3,
        kind => digest_file(kind, &file, size),
    }
    .with_context(|| format!("hashing {}", opts.path.display()))?;
    anyhow::ensure!(
        ours == theirs,
        "digest mismatch: the server stored {theirs}, {} has {ours}",
        opts.path.display()
    );
    println!("{shown}: {size} bytes uploaded, {ours} verified");
    Ok(())
}

/// Send `size` bytes of `file` from its start to `stream` with `io::copy` (sendfile),
/// `STEP` bytes at a time; returns the bytes sent (fewer if the file is shorter).
fn send(
    file: &File,
    mut stream: &std::net::TcpStream,
    size: u64,
    mut progress: impl FnMut(u64),
) -> std::io::Result<u64> {
    let mut reader: &File = file;
    let mut sent = 0u64;
    while sent < size {
        let step = (size - sent).min(STEP);
        let n = std::io::copy(&mut Read::by_ref(&mut reader).take(step), &mut stream)?;
        if n == 0 {
            break;
        }
        sent += n;
        progress(sent);
    }
    Ok(sent)
}
