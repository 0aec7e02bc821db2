//! A connection's transfers as its worker keeps them (sans-IO): the numbering, the
//! files queued for sending, the receive into a file under way, and the events waiting
//! for the handler.

use super::{Direction, TransferError, TransferEvent, TransferId, PROGRESS_STEP, RECEIVE_WINDOW};
use std::fs::File;
use std::sync::Arc;

/// A connection's transfers (in its extras box while any is under way).
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    next_id: u64,
    /// Files queued or being sent.
    pub sending: u32,
    /// The receive into a file under way.
    pub sink: Option<Sink>,
    /// Events for the handler, delivered after the current callback, in order.
    pub events: Vec<TransferEvent>,
    /// A file send ended: `on_drained` is owed once nothing is left unsent (told after
    /// the transfer's events).
    pub drained_owed: bool,
}

impl Transfers {
    pub(crate) fn next_id(&mut self) -> TransferId {
        let id = TransferId(self.next_id);
        self.next_id += 1;
        id
    }
}

/// The next `total` bytes of the stream, going to a file from `base` on.
#[derive(Debug)]
pub(crate) struct Sink {
    pub id: TransferId,
    pub file: Arc<File>,
    /// The file offset of the first byte.
    pub base: u64,
    pub total: u64,
    /// Bytes taken from the stream.
    pub taken: u64,
    /// Bytes the file has.
    pub written: u64,
    /// Taken, not yet given to a write.
    pub pending: Vec<u8>,
    /// Bytes in the write in flight (0: none).
    pub writing: usize,
    /// A write failed: the rest of the bytes are read and dropped.
    pub failed: bool,
    reported: u64,
}

impl Sink {
    pub(crate) fn new(id: TransferId, file: File, base: u64, total: u64) -> Sink {
        Sink {
            id,
            file: Arc::new(file),
            base,
            total,
            taken: 0,
            written: 0,
            pending: Vec::new(),
            writing: 0,
            failed: false,
            reported: 0,
        }
    }

    /// Heap bytes it holds: waiting for the disk, and in the write in flight.
    pub(crate) fn held_bytes(&self) -> usize {
        self.pending.capacity() + self.writing
    }

    /// Bytes still to come from the stream.
    pub(crate) fn wanted(&self) -> u64 {
        self.total - self.taken
    }

    /// Take the stream's next bytes (at most [`Sink::wanted`]); returns how many it took.
    pub(crate) fn take(&mut self, data: &[u8]) -> usize {
        let n = (data.len() as u64).min(self.wanted()) as usize;
        self.taken += n as u64;
        if !self.failed {
            self.pending.extend_from_slice(&data[..n]);
        }
        n
    }

    /// Reading should pause: the disk is a window behind, or every byte is in and the
    /// bytes behind them must wait for the end of the transfer.
    pub(crate) fn backlogged(&self) -> bool {
        self.wanted() == 0 || self.pending.len() + self.writing >= RECEIVE_WINDOW
    }

    /// A write may start now: bytes wait and none is in flight.
    pub(crate) fn ready_to_write(&self) -> bool {
        !self.failed && self.writing == 0 && !self.pending.is_empty()
    }

    /// The bytes for the next write, and its file offset.
    pub(crate) fn next_write(&mut self) -> (Vec<u8>, u64) {
        let buf = std::mem::take(&mut self.pending);
        self.writing = buf.len();
        (buf, self.base + self.written)
    }

    /// A write of `buf` finished with `result` (bytes, or a negative errno). Returns the
    /// event it ends the transfer with, if it does, or a progress report.
    pub(crate) fn wrote(&mut self, mut buf: Vec<u8>, result: i32) -> Option<SinkEnd> {
        self.writing = 0;
        let n = match usize::try_from(result) {
            Ok(0) if !buf.is_empty() => {
                return Some(self.fail(TransferError::Io { errno: libc::EIO }))
            }
            Ok(n) => n.min(buf.len()),
            Err(_) if self.failed => return None,
            Err(_) => return Some(self.fail(TransferError::from_errno(-result))),
        };
        if self.failed {
            return None; // already reported (the peer went away meanwhile)
        }
        self.written += n as u64;
        if n < buf.len() {
            // A short write: the rest goes first in the next one.
            buf.drain(..n);
            buf.extend_from_slice(&self.pending);
            self.pending = buf;
        } else if self.pending.is_empty() {
            buf.clear();
            self.pending = buf; // its room serves the next bytes
        }
        if self.written == self.total {
            return Some(SinkEnd::Done);
        }
        if self.written - self.reported >= PROGRESS_STEP {
            self.reported = self.written;
            return Some(SinkEnd::Progress(TransferEvent::Progress {
                id: self.id,
                direction: Direction::Receive,
                done: self.written,
                total: self.total,
            }));
        }
        None
    }

    /// End the transfer with `error`: what was taken and not written is dropped, and so
    /// is what still comes of its bytes.
    pub(crate) fn fail(&mut self, error: TransferError) -> SinkEnd {
        self.failed = true;
        self.pending = Vec::new();
        SinkEnd::Failed(TransferEvent::Failed {
            id: self.id,
            direction: Direction::Receive,
            done: self.written,
            error,
        })
    }

    /// The transfer can leave the connection: it is done, or it failed and its bytes have
    /// all been read past, and no write is in flight.
    pub(crate) fn over(&self) -> bool {
        self.writing == 0 && (self.written == self.total || (self.failed && self.wanted() == 0))
    }

    /// The file back, for `Received` (the writes' states have let their handles go).
    pub(crate) fn into_file(self) -> Option<File> {
        match Arc::try_unwrap(self.file) {
            Ok(f) => Some(f),
            Err(shared) => shared.try_clone().ok(),
        }
    }
}

/// What a finished write means for the transfer.
#[derive(Debug)]
pub(crate) enum SinkEnd {
    /// Every byte is written: report `Received`.
    Done,
    /// Report this (progress or the failure).
    Progress(TransferEvent),
    Failed(TransferEvent),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(total: u64) -> Sink {
        Sink::new(TransferId(0), tempfile(), 0, total)
    }

    fn tempfile() -> File {
        File::open("/dev/null").unwrap()
    }

    #[test]
    fn takes_only_its_bytes_and_short_writes_go_first_next_time() {
        let mut s = sink(10);
        assert_eq!(s.take(b"0123456"), 7);
        assert!(s.ready_to_write());
        let (buf, off) = s.next_write();
        assert_eq!((buf.as_slice(), off), (&b"0123456"[..], 0));
        assert_eq!(
            s.take(b"789tail"),
            3,
            "the bytes after the transfer stay in the stream"
        );
        assert!(s.backlogged(), "all bytes in: reading waits for the end");
        assert!(s.wrote(buf, 4).is_none());
        let (buf, off) = s.next_write();
        assert_eq!((buf.as_slice(), off), (&b"456789"[..], 4));
        assert!(matches!(s.wrote(buf, 6), Some(SinkEnd::Done)));
        assert!(s.over());
    }

    #[test]
    fn a_failed_write_drops_the_rest_and_reads_past_it() {
        let mut s = sink(8);
        s.take(b"abcd");
        let (buf, _) = s.next_write();
        s.take(b"ef");
        match s.wrote(buf, -libc::ENOSPC) {
            Some(SinkEnd::Failed(TransferEvent::Failed { error, done, .. })) => {
                assert_eq!((error, done), (TransferError::DiskFull, 0));
            }
            other => panic!("{other:?}"),
        }
        assert!(!s.over(), "two bytes of it are still to come");
        assert_eq!(s.take(b"ghXY"), 2);
        assert!(s.pending.is_empty() && !s.ready_to_write());
        assert!(s.over());
    }

    #[test]
    fn the_window_bounds_what_waits_for_the_disk() {
        let mut s = sink(10 * RECEIVE_WINDOW as u64);
        s.take(&vec![0; RECEIVE_WINDOW - 1]);
        assert!(!s.backlogged());
        s.take(&[0]);
        assert!(s.backlogged());
    }
}
