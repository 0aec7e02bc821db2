//! `Conn::send_file` and `Conn::receive_to_file`: what a handler asks; the worker carries
//! it out (`engine/transfers.rs`).

use super::state::{Sink, Transfers};
use super::{ReceiveFileError, TransferEvent, TransferId};
use crate::conn::Conn;
use crate::error::SendError;
use crate::sys::file_send::FileSend;
use std::fs::File;
use std::io::Seek;
use std::sync::Arc;

impl Conn {
    /// Send `len` bytes of `file` from `offset`, queued in order with the connection's
    /// other sends, without copying them through user space (io_uring: splice through a
    /// pipe; readiness backend: `sendfile(2)`). Progress, the end and failures come to
    /// [`crate::Handler::on_transfer`]; the file stays open until then. A file shorter
    /// than `offset + len` when its turn comes ends with
    /// [`crate::TransferError::Truncated`] and closes the connection
    /// ([`crate::CloseReason::FileTruncated`]). A send of 0 bytes is reported `Sent` at
    /// once. Refused as [`Conn::try_send`] is, and with [`SendError::FileRange`] if
    /// `offset + len` is past the largest file offset.
    pub fn send_file(
        &mut self,
        file: Arc<File>,
        offset: u64,
        len: u64,
    ) -> Result<TransferId, SendError> {
        self.sendable(0)?;
        if offset
            .checked_add(len)
            .map_or(true, |end| end > i64::MAX as u64)
        {
            return Err(SendError::FileRange);
        }
        let t = self.transfers_or_make();
        let id = t.next_id();
        if len == 0 {
            t.events.push(TransferEvent::Sent { id, bytes: 0 });
            return Ok(id);
        }
        t.sending += 1;
        self.out.push_file(FileSend::new(id.0, file, offset, len));
        Ok(id)
    }

    /// Write the next `len` bytes the peer sends to `file`, from its current position on,
    /// instead of handing them to `on_data` (with a framing codec or an exact read, call
    /// it from the `on_data` of the frame that announced them: bytes already received
    /// behind that frame are the first ones; with the raw codec, the next receive's).
    /// At most [`crate::transfer::RECEIVE_WINDOW`] bytes wait in memory for the disk:
    /// reading pauses while writes are behind. Bytes after the `len` wait until
    /// [`TransferEvent::Received`] (which hands the file back) or `Failed` has been
    /// delivered. A write error ends the transfer (`Failed`, e.g.
    /// [`crate::TransferError::DiskFull`]) and the rest of its bytes are read and dropped,
    /// so the stream stays in step.
    pub fn receive_to_file(
        &mut self,
        mut file: File,
        len: u64,
    ) -> Result<TransferId, ReceiveFileError> {
        if self.closing_now() || !self.life.is_open() {
            return Err(ReceiveFileError::Closing);
        }
        if self.life.read_is_eof() {
            return Err(ReceiveFileError::PeerClosed);
        }
        if self.exact_pending() || self.sink().is_some() {
            return Err(ReceiveFileError::Busy);
        }
        let base = file.stream_position().map_err(ReceiveFileError::Position)?;
        if base
            .checked_add(len)
            .map_or(true, |end| end > i64::MAX as u64)
        {
            return Err(ReceiveFileError::FileRange);
        }
        let t = self.transfers_or_make();
        let id = t.next_id();
        if len == 0 {
            t.events
                .push(TransferEvent::Received { id, bytes: 0, file });
        } else {
            t.sink = Some(Sink::new(id, file, base, len));
        }
        Ok(id)
    }

    /// Transfers of this connection under way: files queued or being sent, and a receive
    /// into a file.
    pub fn transfers_pending(&self) -> usize {
        self.transfers()
            .map_or(0, |t| t.sending as usize + usize::from(t.sink.is_some()))
    }

    pub(crate) fn transfers(&self) -> Option<&Transfers> {
        self.extras.get()?.transfers.as_deref()
    }

    pub(crate) fn transfers_mut(&mut self) -> Option<&mut Transfers> {
        self.extras.get_mut()?.transfers.as_deref_mut()
    }

    fn transfers_or_make(&mut self) -> &mut Transfers {
        self.extras_mut()
            .transfers
            .get_or_insert_with(Default::default)
    }

    /// The receive into a file under way, if any.
    pub(crate) fn sink(&self) -> Option<&Sink> {
        self.transfers()?.sink.as_ref()
    }

    /// The same, to change.
    pub(crate) fn sink_mut(&mut self) -> Option<&mut Sink> {
        self.transfers_mut()?.sink.as_mut()
    }

    /// Received bytes may not go to the handler now: the connection is at its job cap,
    /// or a receive into a file is under way (its bytes go to the file; those behind it
    /// wait for its end).
    pub(crate) fn delivery_blocked(&self) -> bool {
        self.jobs_full() || self.sink().is_some()
    }

    /// A receive into a file has all its bytes and its last writes are under way: a
    /// graceful close waits for them (one still waiting for bytes does not: reading
    /// stops at a close, so they would never come).
    pub(crate) fn sink_finishing(&self) -> bool {
        self.sink().is_some_and(|s| s.wanted() == 0 && !s.failed)
    }

    /// Files queued or being sent.
    pub(crate) fn files_sending(&self) -> bool {
        self.transfers().is_some_and(|t| t.sending > 0)
    }
}
