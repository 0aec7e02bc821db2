//! A worker's mailbox: the only way other threads hand it work (the
//! PostQueuedCompletionStatus of this design). Posting takes a short lock and writes the
//! worker's eventfd only when the worker is not already due to look.

use crate::conn::ConnId;
use crate::error::SendError;
use crate::sys::EventFd;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Work posted to a worker from another thread.
#[derive(Debug)]
pub(crate) enum Message {
    /// Queue bytes on a connection.
    Send(ConnId, Bytes),
    /// Close a connection gracefully.
    Close(ConnId),
    /// Open an outbound connection.
    Connect {
        addr: SocketAddr,
        token: u64,
        /// Local address to bind before connecting (source IP; port 0 = any).
        bind: Option<SocketAddr>,
    },
    /// Stop accepting, flush until the instant, close all, exit.
    Shutdown(Instant),
    /// Answer a question about the worker's connections.
    Query(super::registry::Query),
    /// Queue the bytes on every open connection (of one listener if given).
    Broadcast { listener: Option<u16>, data: Bytes },
}

/// A multi-producer queue with an eventfd doorbell.
#[derive(Debug)]
pub(crate) struct Mailbox {
    queue: Mutex<Option<Vec<Message>>>,
    /// True from the first post after a drain until the worker drains again: later posts
    /// need not ring the doorbell.
    rung: AtomicBool,
    doorbell: EventFd,
}

impl Mailbox {
    pub(crate) fn new() -> std::io::Result<Mailbox> {
        Ok(Mailbox {
            queue: Mutex::new(Some(Vec::new())),
            rung: AtomicBool::new(false),
            doorbell: EventFd::new()?,
        })
    }

    pub(crate) fn doorbell(&self) -> &EventFd {
        &self.doorbell
    }

    /// Post a message; fails once the worker has closed the mailbox.
    pub(crate) fn post(&self, msg: Message) -> Result<(), SendError> {
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            match q.as_mut() {
                Some(q) => q.push(msg),
                None => return Err(SendError::WorkerStopped),
            }
        }
        if !self.rung.swap(true, Ordering::AcqRel) {
            self.doorbell.notify();
        }
        Ok(())
    }

    /// Take everything posted so far (worker side).
    pub(crate) fn drain(&self, into: &mut Vec<Message>) {
        self.rung.store(false, Ordering::Release);
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = q.as_mut() {
            into.append(q);
        }
    }

    /// Refuse further posts (worker exit); returns what was still queued.
    pub(crate) fn close(&self) -> Vec<Message> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.take().unwrap_or_default()
    }
}
