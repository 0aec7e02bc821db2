//! The file server's handler: request lines in, files out with [`Conn::send_file`]
//! (zero-copy), uploads into a temporary file with [`Conn::receive_to_file`]. Digests,
//! and the sync and rename of a finished upload, run on the job pool, never on an I/O
//! worker. One request at a time per connection: a line that comes while one is under
//! way is refused and the connection closed.

use crate::file::digest::{Digest, Hasher, DIGEST};
use crate::file::names::{Root, TempUpload};
use crate::file::protocol::{Code, Refusal, Request};
use ringport::{CloseReason, Conn, Direction, Handler, JobDone, TransferError, TransferEvent};
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The server's own counts: requests, completions, refusals by code.
#[derive(Default)]
pub struct Counters {
    pub gets: AtomicU64,
    pub puts: AtomicU64,
    /// Downloads whose last byte (and digest) was queued.
    pub sent: AtomicU64,
    /// Uploads renamed into place.
    pub stored: AtomicU64,
    refused: [AtomicU64; Code::ALL.len()],
}

impl Counters {
    fn refuse(&self, code: Code) {
        self.refused[code.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// ERR replies sent with `code`.
    pub fn refused(&self, code: Code) -> u64 {
        self.refused[code.index()].load(Ordering::Relaxed)
    }

    pub fn refused_total(&self) -> u64 {
        Code::ALL.iter().map(|&c| self.refused(c)).sum()
    }

    /// `requests: get N  put N  sent N  stored N  refused N (code N, ...)`.
    pub fn summary(&self) -> String {
        let by: Vec<String> = Code::ALL
            .iter()
            .filter(|&&c| self.refused(c) > 0)
            .map(|&c| format!("{c} {}", self.refused(c)))
            .collect();
        let by = if by.is_empty() {
            String::new()
        } else {
            format!(" ({})", by.join(", "))
        };
        format!(
            "requests: get {}  put {}  sent {}  stored {}  refused {}{by}",
            self.gets.load(Ordering::Relaxed),
            self.puts.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            self.stored.load(Ordering::Relaxed),
            self.refused_total(),
        )
    }
}

/// The file server's settings, shared by every worker.
pub struct FileHandler {
    pub root: Root,
    pub allow_upload: bool,
    pub max_upload: Option<u64>,
    pub counters: Arc<Counters>,
}

/// Where a connection is.
pub enum Session {
    /// Waiting for a request line.
    Idle,
    /// A file is being sent; done once it is sent and (if asked) its digest queued.
    Sending { sent: bool, digest_pending: bool },
    /// An upload's bytes are going to its temporary file.
    Receiving { upload: TempUpload },
    /// A finished upload is being synced, hashed and renamed on the pool.
    Storing,
}

/// What a job hands back.
enum JobResult {
    /// The digest of a file being sent.
    Digest(io::Result<Digest>),
    /// An upload stored: its size and digest.
    Stored(Result<(u64, Digest), Refusal>),
}

impl FileHandler {
    /// Send an `ERR` reply and count it.
    fn refuse(&self, conn: &mut Conn, refusal: &Refusal) {
        tracing::debug!(conn = %conn.id(), %refusal, "refused");
        self.counters.refuse(refusal.code);
        conn.send(refusal.line().as_bytes());
    }

    fn get(&self, session: &mut Session, conn: &mut Conn, name: &[u8], offset: u64, verify: bool) {
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        let (file, size) = match self.root.open_for_read(name) {
            Ok(found) => found,
            Err(refusal) => return self.refuse(conn, &refusal),
        };
        if offset > size {
            let refusal = Refusal::new(
                Code::BadOffset,
                format!("offset {offset} is past the end ({size} bytes)"),
            );
            return self.refuse(conn, &refusal);
        }
        let header = if verify {
            format!("OK {size} {offset} {}\n", DIGEST.name())
        } else {
            format!("OK {size} {offset}\n")
        };
        conn.send(header.as_bytes());
        let file = Arc::new(file);
        if let Err(e) = conn.send_file(Arc::clone(&file), offset, size - offset) {
            tracing::warn!(conn = %conn.id(), error = %e, "cannot queue a file; closing");
            conn.abort();
            return;
        }
        if verify {
            let spawned = conn.spawn_job_cancellable(move |cancel| {
                let mut hasher: Hasher = DIGEST.hasher();
                let hashed = hasher.update_from_file_until(&file, size, &|| cancel.is_cancelled());
                JobResult::Digest(hashed.map(|()| hasher.finish()))
            });
            if let Err(e) = spawned {
                tracing::warn!(conn = %conn.id(), error = %e, "cannot hash a file; closing");
                conn.abort();
                return;
            }
        }
        *session = Session::Sending {
            sent: false,
            digest_pending: verify,
        };
    }

    fn put(&self, session: &mut Session, conn: &mut Conn, name: &[u8], size: u64) {
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        // A refused upload closes the connection: the client may have sent bytes already.
        let refuse_and_close = |conn: &mut Conn, refusal: Refusal| {
            self.refuse(conn, &refusal);
            conn.close();
        };
        if !self.allow_upload {
            return refuse_and_close(
                conn,
                Refusal::new(Code::UploadDisabled, "this server takes no uploads"),
            );
        }
        if let Some(max) = self.max_upload.filter(|&max| size > max) {
            return refuse_and_close(
                conn,
                Refusal::new(
                    Code::TooLarge,
                    format!("{size} bytes is over the limit of {max}"),
                ),
            );
        }
        let (file, upload) = match self.root.prepare_upload(name) {
            Ok(prepared) => prepared,
            Err(refusal) => return refuse_and_close(conn, refusal),
        };
        if size == 0 {
            conn.send(b"READY\n");
            return self.store(session, conn, upload, file, 0);
        }
        if let Err(e) = conn.receive_to_file(file, size) {
            let refusal = Refusal::new(Code::Io, format!("cannot receive the upload: {e}"));
            return refuse_and_close(conn, refusal);
        }
        conn.send(b"READY\n");
        *session = Session::Receiving { upload };
    }

    /// Sync, hash and rename a complete upload on the pool.
    fn store(
        &self,
        session: &mut Session,
        conn: &mut Conn,
        upload: TempUpload,
        file: File,
        bytes: u64,
    ) {
        let spawned = conn.spawn_job_cancellable(move |cancel| {
            JobResult::Stored(store(upload, &file, bytes, &|| cancel.is_cancelled()))
        });
        match spawned {
            Ok(_) => *session = Session::Storing,
            Err(e) => {
                tracing::warn!(conn = %conn.id(), error = %e, "cannot store an upload; closing");
                conn.abort();
            }
        }
    }
}

/// On a pool thread: the upload's bytes to disk, their digest, then the rename (unless
/// the connection closed meanwhile: then the temporary file goes).
fn store(
    upload: TempUpload,
    file: &File,
    bytes: u64,
    cancelled: &dyn Fn() -> bool,
) -> Result<(u64, Digest), Refusal> {
    let failed = |what: &str, e: io::Error| {
        let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT]
            .iter()
            .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()));
        let code = if full { Code::DiskFull } else { Code::Io };
        Refusal::new(code, format!("{what}: {e}"))
    };
    file.sync_data()
        .map_err(|e| failed("syncing the upload", e))?;
    let mut hasher = DIGEST.hasher();
    hasher
        .update_from_file_until(file, bytes, cancelled)
        .map_err(|e| failed("hashing the upload", e))?;
    if cancelled() {
        return Err(Refusal::new(Code::Io, "the connection closed"));
    }
    upload.commit()?;
    Ok((bytes, hasher.finish()))
}

impl Handler for FileHandler {
    type Session = Session;

    fn on_open(&self, conn: &mut Conn) -> Session {
        tracing::debug!(conn = %conn.id(), peer = %conn.peer_addr(), "open");
        Session::Idle
    }

    fn on_data(&self, session: &mut Session, conn: &mut Conn, line: &[u8]) {
        if !matches!(session, Session::Idle) {
            let refusal = Refusal::new(
                Code::BadRequest,
                "a request came while another was under way",
            );
            self.refuse(conn, &refusal);
            conn.close();
            return;
        }
        match Request::parse(line) {
            Err(refusal) => self.refuse(conn, &refusal),
            Ok(Request::Get {
                name,
                offset,
                verify,
            }) => self.get(session, conn, &name, offset, verify),
            Ok(Request::Put { name, size }) => self.put(session, conn, &name, size),
        }
    }

    fn on_transfer(&self, session: &mut Session, conn: &mut Conn, event: TransferEvent) {
        match event {
            TransferEvent::Sent { .. } => {
                if let Session::Sending {
                    sent,
                    digest_pending,
                } = session
                {
                    *sent = true;
                    if !*digest_pending {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        *session = Session::Idle;
                    }
                }
            }
            TransferEvent::Received { bytes, file, .. } => {
                match std::mem::replace(session, Session::Idle) {
                    Session::Receiving { upload } => self.store(session, conn, upload, file, bytes),
                    other => {
                        *session = other;
                        tracing::warn!(conn = %conn.id(), "an upload finished unasked; closing");
                        conn.abort();
                    }
                }
            }
            TransferEvent::Failed {
                direction, error, ..
            } => {
                tracing::debug!(conn = %conn.id(), ?direction, %error, "transfer failed");
                // Dropping a receive's TempUpload removes its temporary file.
                *session = Session::Idle;
                if direction == Direction::Receive {
                    let code = match error {
                        TransferError::DiskFull => Some(Code::DiskFull),
                        TransferError::Io { .. } => Some(Code::Io),
                        _ => None,
                    };
                    if let Some(code) = code {
                        // The rest of the upload's bytes are read and dropped: the stream
                        // stays in step, so the client can be told.
                        let refusal = Refusal::new(code, format!("storing the upload: {error}"));
                        self.refuse(conn, &refusal);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_job_done(&self, session: &mut Session, conn: &mut Conn, done: JobDone) {
        let Ok(result) = done.downcast::<JobResult>() else {
            tracing::warn!(conn = %conn.id(), "a job returned something else; closing");
            conn.abort();
            return;
        };
        match result {
            JobResult::Digest(Ok(digest)) => {
                conn.send(format!("{digest}\n").as_bytes());
                if let Session::Sending {
                    sent,
                    digest_pending,
                } = session
                {
                    *digest_pending = false;
                    if *sent {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        *session = Session::Idle;
                    }
                }
            }
            JobResult::Digest(Err(e)) => {
                // The client sees the connection end without a digest: a failure.
                tracing::warn!(conn = %conn.id(), error = %e, "cannot hash a file being sent; closing");
                conn.abort();
            }
            JobResult::Stored(Ok((bytes, digest))) => {
                self.counters.stored.fetch_add(1, Ordering::Relaxed);
                conn.send(format!("DONE {bytes} {digest}\n").as_bytes());
                *session = Session::Idle;
            }
            JobResult::Stored(Err(refusal)) => {
                self.refuse(conn, &refusal);
                *session = Session::Idle;
            }
        }
    }

    fn on_close(&self, session: Session, conn: &Conn, reason: CloseReason) {
        tracing::debug!(conn = %conn.id(), %reason, "closed");
        // An unfinished upload's TempUpload goes with the session: its file is removed.
        drop(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_refusals_by_code() {
        let c = Counters::default();
        c.gets.fetch_add(3, Ordering::Relaxed);
        c.refuse(Code::BadName);
        c.refuse(Code::BadName);
        c.refuse(Code::OutsideRoot);
        assert_eq!(
            c.summary(),
            "requests: get 3  put 0  sent 0  stored 0  refused 3 (bad-name 2, outside-root 1)"
        );
        assert_eq!(c.refused_total(), 3);
    }
}
