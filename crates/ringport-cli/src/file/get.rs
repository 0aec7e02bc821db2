//! `ringport get ADDR NAME [-o PATH] [--resume] [--no-verify]`: download a file from a
//! file server and check it against the server's digest of the whole file.

use crate::file::digest::Hasher;
use crate::file::progress::{Progress, Style};
use crate::file::protocol::{Reply, Request};
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Bytes moved per read.
const BUF: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct GetOptions {
    pub addr: SocketAddr,
    /// The name under the server's root (any bytes).
    pub name: Vec<u8>,
    /// Where to write (default: the name's last component, in the current directory).
    pub output: Option<PathBuf>,
    /// Continue from the local file's length.
    pub resume: bool,
    /// Ask for and check the digest.
    pub verify: bool,
    /// On the connect and on every read and write.
    pub timeout: Duration,
}

/// The local path for `name` when none is given: its last component.
fn default_output(name: &[u8]) -> anyhow::Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let last = name.rsplit(|&b| b == b'/').next().unwrap_or_default();
    anyhow::ensure!(
        !last.is_empty() && last != b"." && last != b"..",
        "cannot name a local file after {:?}: give -o PATH",
        String::from_utf8_lossy(name)
    );
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(last)))
}

pub fn run(opts: &GetOptions) -> anyhow::Result<()> {
    let path = match &opts.output {
        Some(p) => p.clone(),
        None => default_output(&opts.name)?,
    };
    let shown = String::from_utf8_lossy(&opts.name).into_owned();
    // A resumed download opens its file first (its length is the offset); a fresh one
    // only once the server said OK, so a refusal leaves no empty file behind.
    let open = |resume: bool| {
        OpenOptions::new()
            .create(true)
            .truncate(!resume)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    };
    let mut resumed = if opts.resume { Some(open(true)?) } else { None };
    let offset = match &resumed {
        Some(file) => file
            .metadata()
            .with_context(|| format!("reading the length of {}", path.display()))?
            .len(),
        None => 0,
    };

    let stream = crate::file::connect(opts.addr, opts.timeout)?;
    let request = Request::Get {
        name: opts.name.clone(),
        offset,
        verify: opts.verify,
    };
    (&stream)
        .write_all(request.line().as_bytes())
        .context("sending the request")?;
    let mut reader = BufReader::with_capacity(BUF, &stream);
    let (size, kind) =
        match Reply::parse(&crate::file::read_line(&mut reader)?).map_err(anyhow::Error::msg)? {
            Reply::Ok {
                size,
                offset: at,
                digest,
            } => {
                anyhow::ensure!(at == offset, "the server starts at {at}, not at {offset}");
                anyhow::ensure!(
                    digest.is_some() == opts.verify,
                    "the server {} a digest",
                    if opts.verify { "names no" } else { "names" }
                );
                (size, digest)
            }
            Reply::Err(refusal) => anyhow::bail!("the server refused: {refusal}"),
            other => anyhow::bail!("unexpected reply {other:?}"),
        };

    let mut file = match resumed.take() {
        Some(file) => file,
        None => open(false)?,
    };
    // The digest covers the whole file: what is there already is hashed first, then
    // each byte as it is written.
    let mut hashers: Vec<Hasher> = Vec::new();
    if let Some(kind) = kind {
        let mut h = kind.hasher();
        h.update_from_file(&file, offset)
            .with_context(|| format!("hashing the part of {} already there", path.display()))?;
        hashers.push(h);
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut progress = Progress::new(format!("get {shown}"), size, offset, Style::for_stderr());
    let received = copy(&mut reader, &mut file, size - offset, &mut hashers, |n| {
        progress.update(offset + n)
    });
    progress.finish(offset + received.as_ref().map_or(0, |&n| n));
    let received = received.with_context(|| format!("writing {}", path.display()))?;
    anyhow::ensure!(
        received == size - offset,
        "the server closed the connection after {} of {size} bytes (run again with --resume)",
        offset + received
    );
    file.flush()?;

    if !opts.verify {
        println!("{shown}: {size} bytes to {} (not verified)", path.display());
        return Ok(());
    }
    let line = crate::file::read_line(&mut reader).context("reading the digest")?;
    let theirs = crate::file::digest::Digest::parse(&line)
        .with_context(|| format!("unexpected digest line {line:?}"))?;
    let ours = hashers
        .into_iter()
        .map(Hasher::finish)
        .next()
        .context("no digest was computed")?;
    anyhow::ensure!(
        ours == theirs,
        "digest mismatch for {}: the server sent {theirs}, the file has {ours}",
        path.display()
    );
    println!(
        "{shown}: {size} bytes to {}, {ours} verified",
        path.display()
    );
    Ok(())
}

/// Copy up to `len` bytes from `from` to `to`, feeding every hasher; returns the bytes
/// copied (fewer if the stream ended first).
fn copy(
    from: &mut impl Read,
    to: &mut File,
    len: u64,
    hashers: &mut [Hasher],
    mut progress: impl FnMut(u64),
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from((len - done).min(BUF as u64)).unwrap_or(BUF);
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        for h in hashers.iter_mut() {
            h.update(&buf[..n]);
        }
        done += n as u64;
        progress(done);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::digest::DigestKind;

    #[test]
    fn the_default_output_is_the_last_component() {
        assert_eq!(
            default_output(b"a/b/c.txt").unwrap(),
            PathBuf::from("c.txt")
        );
        assert_eq!(default_output(b"x").unwrap(), PathBuf::from("x"));
        assert!(default_output(b"a/").is_err());
        assert!(default_output(b"..").is_err());
    }

    #[test]
    fn copy_stops_at_len_or_the_end() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut f = File::create(dir.path().join("o")).unwrap();
        let data = vec![7u8; BUF * 2 + 3];
        let mut hs = vec![DigestKind::Blake3.hasher()];
        let n = copy(&mut &data[..], &mut f, 10, &mut hs, |_| {}).unwrap();
        assert_eq!(n, 10);
        let n = copy(&mut &data[..], &mut f, u64::MAX, &mut [], |_| {}).unwrap();
        assert_eq!(n, data.len() as u64);
    }
}
