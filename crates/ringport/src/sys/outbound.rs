//! Outbound bytes of a connection: a queue of chunks, either shared `Bytes` handed over
//! without a copy or plain vectors that gather small copied sends. The in-flight send owns
//! (moves) the chunks at the front, so sending costs no reference counting, and hands the
//! unsent remainder back on completion. A file queued for sending is a chunk of its own
//! ([`FileSend`]): sends of bytes stop in front of it, and file steps move it along.

use super::file_send::FileSend;
use bytes::{Buf, Bytes};
use std::cell::RefCell;
use std::collections::VecDeque;

/// Most spare capacity a worker thread keeps for copy buffers.
const SPARE_BYTES_MAX: usize = 1024 * 1024;

thread_local! {
    /// Copy buffers whose bytes were sent, kept for reuse by the same worker thread, so a
    /// busy worker does not pay an allocation and a free per send. Bounded by
    /// `SPARE_BYTES_MAX`; connections themselves keep no spare, so an idle connection
    /// holds no send memory.
    static SPARE: RefCell<(Vec<Vec<u8>>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// An empty copy buffer with room for at least `min` bytes.
fn spare_buf(min: usize) -> Vec<u8> {
    let reused = SPARE.with_borrow_mut(|(bufs, bytes)| {
        let b = bufs.pop()?;
        *bytes -= b.capacity();
        Some(b)
    });
    match reused {
        Some(mut b) => {
            b.reserve(min);
            b
        }
        None => Vec::with_capacity(min.max(GATHER_MIN)),
    }
}

/// Keep a sent copy buffer for reuse if there is room.
fn recycle(mut buf: Vec<u8>) {
    SPARE.with_borrow_mut(|(bufs, bytes)| {
        if buf.capacity() <= GATHER_MAX && *bytes + buf.capacity() <= SPARE_BYTES_MAX {
            buf.clear();
            *bytes += buf.capacity();
            bufs.push(buf);
        }
    });
}

/// Copied sends are gathered into one vector up to this size.
const GATHER_MAX: usize = 64 * 1024;
/// Smallest capacity of a new gathering vector (room for several small messages).
const GATHER_MIN: usize = 512;

/// One piece of outbound data.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Caller-provided bytes, sent without a copy.
    Shared(Bytes),
    /// Copied sends; `start` bytes of the front are already sent.
    Copied { buf: Vec<u8>, start: usize },
    /// A file (its bytes are not in memory: `as_slice` is empty).
    File(Box<FileSend>),
}

impl Chunk {
    /// The unsent bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Shared(b) => b,
            Chunk::Copied { buf, start } => &buf[*start..],
            Chunk::File(_) => &[],
        }
    }

    /// Mark `n` more bytes as sent (n < unsent length).
    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Shared(b) => b.advance(n),
            Chunk::Copied { start, .. } => *start += n,
            Chunk::File(_) => debug_assert!(false, "a byte send never holds a file"),
        }
    }
}

/// The unsent bytes of a connection, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    chunks: VecDeque<Chunk>,
}

impl Outbound {
    /// Queue a copy of `data`, gathering it with the copies before it when it fits.
    pub(crate) fn push_copy(&mut self, data: &[u8]) {
        if let Some(Chunk::Copied { buf, .. }) = self.chunks.back_mut() {
            if buf.len() + data.len() <= GATHER_MAX.max(buf.capacity()) {
                buf.extend_from_slice(data);
                return;
            }
        }
        let mut buf = spare_buf(data.len());
        buf.extend_from_slice(data);
        self.chunks.push_back(Chunk::Copied { buf, start: 0 });
    }

    /// Queue shared bytes without a copy.
    pub(crate) fn push_shared(&mut self, data: Bytes) {
        self.chunks.push_back(Chunk::Shared(data));
    }

    /// Queue a file (of at least one byte) behind the bytes queued so far.
    pub(crate) fn push_file(&mut self, file: FileSend) {
        debug_assert!(file.total > 0, "empty file sends are not queued");
        self.chunks.push_back(Chunk::File(Box::new(file)));
    }

    /// The file at the front, if the next thing to send is a file.
    pub(crate) fn front_file(&mut self) -> Option<&mut FileSend> {
        match self.chunks.front_mut() {
            Some(Chunk::File(f)) => Some(f),
            _ => None,
        }
    }

    /// Take the file at the front off the queue (it finished or failed).
    pub(crate) fn pop_front_file(&mut self) -> Option<Box<FileSend>> {
        match self.chunks.front() {
            Some(Chunk::File(_)) => match self.chunks.pop_front() {
                Some(Chunk::File(f)) => Some(f),
                _ => None,
            },
            _ => None,
        }
    }

    /// Take every queued file off the queue (the connection closed), in order.
    #[allow(clippy::vec_box)] // the boxes are the queue's own, moved out whole
    pub(crate) fn take_files(&mut self) -> Vec<Box<FileSend>> {
        let mut files = Vec::new();
        for c in std::mem::take(&mut self.chunks) {
            match c {
                Chunk::File(f) => files.push(f),
                bytes => self.chunks.push_back(bytes),
            }
        }
        files
    }

    /// Unsent bytes waiting here.
    /// (Sums the chunks: for checks and tests, not the hot path.)
    pub(crate) fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.as_slice().len()).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        // Chunks are never empty: sends of no bytes are not queued.
        self.chunks.is_empty()
    }

    /// Move up to `max` chunks from the front into `into` (for a send).
    pub(crate) fn take_front(&mut self, max: usize, into: &mut Vec<Chunk>) -> usize {
        // One allocation at most, not one per doubling (a spare send op may come with
        // little room).
        into.reserve(max.saturating_sub(into.len()).min(self.chunks.len()));
        let mut bytes = 0;
        while into.len() < max {
            if matches!(self.chunks.front(), Some(Chunk::File(_))) {
                break; // a file goes by file steps, and bytes behind it wait for it
            }
            let Some(c) = self.chunks.pop_front() else {
                break;
            };
            bytes += c.as_slice().len();
            into.push(c);
        }
        bytes
    }

    /// A send of `chunks` finished having sent `sent` bytes: drop what went out and put
    /// the rest back at the front, in order.
    pub(crate) fn give_back(&mut self, chunks: &mut Vec<Chunk>, mut sent: usize) {
        let mut first_unsent = chunks.len();
        for (i, c) in chunks.iter_mut().enumerate() {
            let n = c.as_slice().len();
            if sent >= n {
                sent -= n;
                continue;
            }
            if sent > 0 {
                c.advance(sent);
            }
            first_unsent = i;
            break;
        }
        for c in chunks.drain(first_unsent..).rev() {
            self.chunks.push_front(c);
        }
        for c in chunks.drain(..) {
            if let Chunk::Copied { buf, .. } = c {
                recycle(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain_all(out: &mut Outbound) -> Vec<u8> {
        let mut v = Vec::new();
        let mut taken = Vec::new();
        out.take_front(usize::MAX, &mut taken);
        for c in &taken {
            v.extend_from_slice(c.as_slice());
        }
        v
    }

    #[test]
    fn copies_gather_and_order_is_kept_across_kinds() {
        let mut out = Outbound::default();
        out.push_copy(b"ab");
        out.push_copy(b"cd");
        out.push_shared(Bytes::from_static(b"EF"));
        out.push_copy(b"gh");
        assert_eq!(out.chunks.len(), 3, "the two first copies share one chunk");
        assert_eq!(out.len(), 8);
        assert_eq!(drain_all(&mut out), b"abcdEFgh");
        assert!(out.is_empty());
    }

    #[test]
    fn partial_send_gives_back_the_unsent_rest_in_order() {
        let mut out = Outbound::default();
        out.push_copy(b"0123");
        out.push_shared(Bytes::from_static(b"4567"));
        out.push_copy(b"89");
        let mut inflight = Vec::new();
        assert_eq!(out.take_front(2, &mut inflight), 8);
        out.push_copy(b"AB"); // arrives while the send is in flight
        out.give_back(&mut inflight, 5);
        assert_eq!(out.len(), 7);
        assert_eq!(drain_all(&mut out), b"56789AB");
    }

    #[test]
    fn byte_sends_stop_in_front_of_a_file_and_go_on_after_it() {
        use std::sync::Arc;
        let file = Arc::new(std::fs::File::open("/dev/null").unwrap());
        let mut out = Outbound::default();
        out.push_copy(b"head");
        out.push_file(FileSend::new(7, file.clone(), 0, 10));
        out.push_copy(b"tail");
        let mut inflight = Vec::new();
        assert_eq!(out.take_front(8, &mut inflight), 4);
        assert_eq!(inflight.len(), 1, "the file is not taken by a byte send");
        out.give_back(&mut inflight, 4);
        assert_eq!(out.front_file().map(|f| f.id), Some(7));
        assert_eq!(out.take_front(8, &mut inflight), 0);
        assert_eq!(out.pop_front_file().map(|f| f.total), Some(10));
        assert_eq!(drain_all(&mut out), b"tail");
        out.push_file(FileSend::new(8, file, 0, 1));
        out.push_copy(b"x");
        assert_eq!(out.take_files().len(), 1);
        assert_eq!(drain_all(&mut out), b"x");
    }

    #[test]
    fn a_failed_send_gives_everything_back() {
        let mut out = Outbound::default();
        out.push_copy(b"xyz");
        let mut inflight = Vec::new();
        out.take_front(8, &mut inflight);
        assert!(out.is_empty());
        out.give_back(&mut inflight, 0);
        assert_eq!(out.len(), 3);
        assert_eq!(drain_all(&mut out), b"xyz");
    }
}
