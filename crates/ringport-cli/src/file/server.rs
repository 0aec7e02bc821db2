//! The file server's handler: request lines in, files out with [`Conn::send_file`]
//! (zero-copy), uploads into a temporary file with [`Conn::receive_to_file`]. Digests,
//! and the sync and rename of a finished upload, run on the job pool, never on an I/O
//! worker. Requests are served one at a time per connection, in order: `GET`s may be
//! pipelined (up to [`MAX_QUEUED`] wait), a `PUT` must come alone (its bytes follow its
//! line), so one that arrives while anything else is under way is refused and the
//! connection closed after the earlier replies.

use crate::file::digest::{Digest, Hasher, DIGEST};
use crate::file::names::{Root, TempUpload};
use crate::file::protocol::{Code, Refusal, Request};
use ringport::{CloseReason, Conn, Direction, Handler, JobDone, TransferError, TransferEvent};
use std::collections::VecDeque;
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

/// Most requests waiting behind the one being served.
pub const MAX_QUEUED: usize = 64;

/// A connection's requests: the one being served and those waiting.
pub struct Session {
    state: State,
    queued: VecDeque<Queued>,
    /// A refusal closed the connection: later lines are ignored.
    closing: bool,
}

/// A request line waiting its turn.
enum Queued {
    Request(Request),
    /// A bad line: refused in its turn.
    Refuse(Refusal),
    /// Refused in its turn, then the connection closes.
    RefuseAndClose(Refusal),
}

/// Where a connection's current request is.
enum State {
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

    /// Serve the waiting requests while none is under way.
    fn serve_queue(&self, session: &mut Session, conn: &mut Conn) {
        while matches!(session.state, State::Idle) && !session.closing {
            let Some(next) = session.queued.pop_front() else {
                return;
            };
            match next {
                Queued::Request(Request::Get {
                    name,
                    offset,
                    verify,
                }) => self.get(&mut session.state, conn, &name, offset, verify),
                Queued::Request(Request::Put { name, size }) => {
                    if self.put(&mut session.state, conn, &name, size).is_err() {
                        session.closing = true;
                    }
                }
                Queued::Refuse(refusal) => self.refuse(conn, &refusal),
                Queued::RefuseAndClose(refusal) => {
                    self.refuse(conn, &refusal);
                    session.closing = true;
                    conn.close();
                }
            }
        }
    }

    fn get(&self, session: &mut State, conn: &mut Conn, name: &[u8], offset: u64, verify: bool) {
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
        *session = State::Sending {
            sent: false,
            digest_pending: verify,
        };
    }

    /// Start an upload; `Err` if it was refused (and the connection is closing: the
    /// client may have sent bytes already).
    fn put(&self, session: &mut State, conn: &mut Conn, name: &[u8], size: u64) -> Result<(), ()> {
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        let refuse_and_close = |conn: &mut Conn, refusal: Refusal| {
            self.refuse(conn, &refusal);
            conn.close();
            Err(())
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
            self.store(session, conn, upload, file, 0);
            return Ok(());
        }
        if let Err(e) = conn.receive_to_file(file, size) {
            let refusal = Refusal::new(Code::Io, format!("cannot receive the upload: {e}"));
            return refuse_and_close(conn, refusal);
        }
        conn.send(b"READY\n");
        *session = State::Receiving { upload };
        Ok(())
    }

    /// Sync, hash and rename a complete upload on the pool.
    fn store(
        &self,
        session: &mut State,
        conn: &mut Conn,
        upload: TempUpload,
        file: File,
        bytes: u64,
    ) {
        let spawned = conn.spawn_job_cancellable(move |cancel| {
            JobResult::Stored(store(upload, &file, bytes, &|| cancel.is_cancelled()))
        });
        match spawned {
            Ok(_) => *session = State::Storing,
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
        Session {
            state: State::Idle,
            queued: VecDeque::new(),
            closing: false,
        }
    }

    fn on_data(&self, session: &mut Session, conn: &mut Conn, line: &[u8]) {
        if session.closing {
            return;
        }
        let busy = !matches!(session.state, State::Idle) || !session.queued.is_empty();
        let item = match Request::parse(line) {
            Ok(Request::Put { .. }) if busy => Queued::RefuseAndClose(Refusal::new(
                Code::BadRequest,
                "a PUT must wait for every earlier reply",
            )),
            _ if session.queued.len() >= MAX_QUEUED => Queued::RefuseAndClose(Refusal::new(
                Code::BadRequest,
                format!("more than {MAX_QUEUED} requests are waiting"),
            )),
            Ok(request) => Queued::Request(request),
            Err(refusal) => Queued::Refuse(refusal),
        };
        session.queued.push_back(item);
        self.serve_queue(session, conn);
    }

    fn on_transfer(&self, session: &mut Session, conn: &mut Conn, event: TransferEvent) {
        self.transfer_event(&mut session.state, conn, event);
        self.serve_queue(session, conn);
    }

    fn on_job_done(&self, session: &mut Session, conn: &mut Conn, done: JobDone) {
        let Ok(result) = done.downcast::<JobResult>() else {
            tracing::warn!(conn = %conn.id(), "a job returned something else; closing");
            conn.abort();
            return;
        };
        self.job_done(&mut session.state, conn, result);
        self.serve_queue(session, conn);
    }

    fn on_close(&self, session: Session, conn: &Conn, reason: CloseReason) {
        tracing::debug!(conn = %conn.id(), %reason, "closed");
        // An unfinished upload's TempUpload goes with the session: its file is removed.
        drop(session);
    }
}

impl FileHandler {
    fn transfer_event(&self, session: &mut State, conn: &mut Conn, event: TransferEvent) {
        match event {
            TransferEvent::Sent { .. } => {
                if let State::Sending {
                    sent,
                    digest_pending,
                } = session
                {
                    *sent = true;
                    if !*digest_pending {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        *session = State::Idle;
                    }
                }
            }
            TransferEvent::Received { bytes, file, .. } => {
                match std::mem::replace(session, State::Idle) {
                    State::Receiving { upload } => self.store(session, conn, upload, file, bytes),
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
                *session = State::Idle;
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

    fn job_done(&self, session: &mut State, conn: &mut Conn, result: JobResult) {
        match result {
            JobResult::Digest(Ok(digest)) => {
                conn.send(format!("{digest}\n").as_bytes());
                if let State::Sending {
                    sent,
                    digest_pending,
                } = session
                {
                    *digest_pending = false;
                    if *sent {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        *session = State::Idle;
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
                *session = State::Idle;
            }
            JobResult::Stored(Err(refusal)) => {
                self.refuse(conn, &refusal);
                *session = State::Idle;
            }
        }
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
