//! A worker's mailbox: the only way other threads hand it work (the
//! PostQueuedCompletionStatus of this design). Posting takes a short lock and writes the
//! worker's eventfd only when the worker is not already due to look. The queue is bounded
//! in bytes (payloads plus a fixed cost per message): a post beyond the bound fails with
//! `SendError::Full`, except a shutdown and a job's result, which are always taken.

use crate::conn::ConnId;
use crate::error::SendError;
use crate::notify::{Interest, WatchId};
use crate::sys::fd_info::FileIdentity;
use crate::sys::EventFd;
use crate::workers::Posted;
use bytes::Bytes;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Work posted to a worker from another thread.
#[derive(Debug)]
pub(crate) enum Message {
    /// Queue bytes on a connection; `true`: they count in its send level (`SendRoom`).
    Send(ConnId, Bytes, bool),
    /// Close a connection gracefully.
    Close(ConnId),
    /// Open an outbound connection.
    Connect {
        addr: SocketAddr,
        token: u64,
        /// Local address to bind before connecting (source IP; port 0 = any).
        bind: Option<SocketAddr>,
    },
    /// Stop accepting, flush until the instant (or, with none, until flushed), close all,
    /// exit.
    Shutdown(Option<Instant>),
    /// Answer a question about the worker's connections.
    Query(super::registry::Query),
    /// Queue the bytes on every open connection (of one listener if given).
    Broadcast { listener: Option<u16>, data: Bytes },
    /// Watch a descriptor on this worker.
    Watch {
        id: WatchId,
        fd: OwnedFd,
        file: FileIdentity,
        interest: Interest,
        token: u64,
    },
    /// Change, re-arm or remove a watch of this worker.
    WatchAsk { id: WatchId, ask: WatchAsk },
    /// A value for a connection's `on_posted`.
    Post(ConnId, Posted),
    /// A value for the worker's `on_worker_posted`.
    PostWorker(Posted),
    /// A job (or async task) of one of this worker's connections ended. Always taken:
    /// what comes back is bounded by what the pool and the per-connection caps took.
    JobDone(Box<dyn crate::jobs::JobCell>),
    /// A datagram to send from the worker's datagram socket of this index.
    SendTo(u16, crate::udp::Outgoing),
    /// Tests only: panic on the worker outside any guard (the lost-worker backstop).
    #[cfg(feature = "test-hooks")]
    InjectPanic,
}

/// What a watch's owner asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchAsk {
    Modify(Interest),
    Rearm,
    Remove,
}

impl Message {
    /// What the message counts against the mailbox's bound: its payload and its own size
    /// (so a flood of empty messages is bounded too).
    fn cost(&self) -> usize {
        let payload = match self {
            Message::Send(_, data, _) | Message::Broadcast { data, .. } => data.len(),
            Message::Post(_, value) | Message::PostWorker(value) => value.size(),
            Message::SendTo(_, out) => out.data.len(),
            _ => 0,
        };
        payload + std::mem::size_of::<Message>()
    }
}

/// The queue and what it holds, in [`Message::cost`] units.
#[derive(Debug, Default)]
struct Queue {
    messages: Vec<Message>,
    bytes: usize,
}

/// A multi-producer queue with an eventfd doorbell.
#[derive(Debug)]
pub(crate) struct Mailbox {
    /// `None` once the worker has closed it.
    queue: Mutex<Option<Queue>>,
    /// The most bytes the queue may hold.
    limit: usize,
    /// True from the first post after a drain until the worker drains again: later posts
    /// need not ring the doorbell.
    rung: AtomicBool,
    doorbell: EventFd,
}

impl Mailbox {
    /// A mailbox holding at most `limit` bytes of messages not yet drained.
    pub(crate) fn new(limit: usize) -> std::io::Result<Mailbox> {
        Ok(Mailbox {
            queue: Mutex::new(Some(Queue::default())),
            limit,
            rung: AtomicBool::new(false),
            doorbell: EventFd::new()?,
        })
    }

    pub(crate) fn doorbell(&self) -> &EventFd {
        &self.doorbell
    }

    /// Post a message; fails once the worker has closed the mailbox, or if it would hold
    /// more than its bound (a shutdown is always taken).
    pub(crate) fn post(&self, msg: Message) -> Result<(), SendError> {
        self.post_or_return(msg).map_err(|(e, _)| e)
    }

    /// [`Mailbox::post`], handing a refused message back (it may own a descriptor).
    pub(crate) fn post_or_return(&self, msg: Message) -> Result<(), (SendError, Message)> {
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let Some(q) = q.as_mut() else {
                return Err((SendError::WorkerStopped, msg));
            };
            let cost = msg.cost();
            let exempt = matches!(msg, Message::Shutdown(_) | Message::JobDone(_));
            if !exempt && q.bytes.saturating_add(cost) > self.limit {
                return Err((SendError::Full, msg));
            }
            q.bytes = q.bytes.saturating_add(cost);
            q.messages.push(msg);
        }
        if !self.rung.swap(true, Ordering::AcqRel) {
            self.doorbell.notify();
        }
        Ok(())
    }

    /// Take everything posted so far (worker side).
    pub(crate) fn drain(&self, into: &mut std::collections::VecDeque<Message>) {
        self.rung.store(false, Ordering::Release);
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = q.as_mut() {
            into.extend(q.messages.drain(..));
            q.bytes = 0;
            if q.messages.capacity() > super::worker::KEEP_BATCH_CAPACITY {
                q.messages.shrink_to(super::worker::KEEP_BATCH_CAPACITY);
            }
        }
    }

    /// Refuse further posts (worker exit); returns what was still queued.
    pub(crate) fn close(&self) -> Vec<Message> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.take().map(|q| q.messages).unwrap_or_default()
    }

    /// The worker has stopped taking messages (exited or lost).
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnId;

    fn send(n: usize) -> Message {
        Message::Send(ConnId::new(0, 0, 1), Bytes::from(vec![0u8; n]), false)
    }

    #[test]
    fn posts_beyond_the_bound_are_refused_until_the_worker_drains() {
        let per = std::mem::size_of::<Message>();
        let mb = Mailbox::new(2 * (1000 + per)).unwrap();
        assert_eq!(mb.post(send(1000)), Ok(()));
        assert_eq!(mb.post(send(1000)), Ok(()));
        assert_eq!(mb.post(send(1)), Err(SendError::Full));
        assert_eq!(
            mb.post(Message::Close(ConnId::new(0, 0, 1))),
            Err(SendError::Full)
        );
        assert_eq!(
            mb.post(Message::Shutdown(None)),
            Ok(()),
            "a shutdown is always taken"
        );
        let mut got = std::collections::VecDeque::new();
        mb.drain(&mut got);
        assert_eq!(got.len(), 3);
        assert_eq!(mb.post(send(1000)), Ok(()), "room again once drained");
    }

    #[test]
    fn a_closed_mailbox_refuses_everything() {
        let mb = Mailbox::new(usize::MAX).unwrap();
        mb.post(send(3)).unwrap();
        assert_eq!(mb.close().len(), 1);
        assert!(mb.is_closed());
        assert_eq!(mb.post(send(3)), Err(SendError::WorkerStopped));
        assert_eq!(
            mb.post(Message::Shutdown(None)),
            Err(SendError::WorkerStopped)
        );
    }
}
