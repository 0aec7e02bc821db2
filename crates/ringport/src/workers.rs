//! A handle on an engine's workers from any thread: watch descriptors on them and post
//! values to them (the `PostQueuedCompletionStatus` of this design); and what a watch's
//! callback gets ([`WatchCtl`]).

use crate::engine::mailbox::{Mailbox, Message, WatchAsk};
use crate::error::SendError;
use crate::notify::{check_watchable, refused, Interest, WatchError, WatchId, WatchRefused};
use crate::sys::fd_info::FileIdentity;
use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A value posted to a worker or a connection: anything `Send`, taken back by type.
pub struct Posted(Box<dyn Any + Send>);

impl Posted {
    /// Wrap a value.
    pub fn new<T: Any + Send>(value: T) -> Posted {
        Posted(Box::new(value))
    }

    /// The value, if it is a `T`; else the `Posted` back.
    pub fn downcast<T: Any>(self) -> Result<T, Posted> {
        match self.0.downcast::<T>() {
            Ok(v) => Ok(*v),
            Err(other) => Err(Posted(other)),
        }
    }

    /// A reference to the value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }

    /// What the value counts against a mailbox's bound.
    pub(crate) fn size(&self) -> usize {
        std::mem::size_of_val(&*self.0)
    }
}

impl fmt::Debug for Posted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Posted(..)")
    }
}

/// What an engine's workers share for watches: every mailbox, the files watched (one
/// watch per file, engine-wide), the next round-robin worker and watch serial.
pub(crate) struct WorkersShared {
    mailboxes: Vec<Arc<Mailbox>>,
    files: Mutex<HashSet<FileIdentity>>,
    next_worker: AtomicUsize,
    next_serial: AtomicU64,
}

/// A handle on an engine's workers, for any thread: watch descriptors on them
/// ([`crate::Handler::on_ready`] gets the notifications) and post values to them
/// ([`crate::Handler::on_worker_posted`]). Cheap to clone; from [`crate::Server::workers`],
/// [`crate::Client::workers`], or [`WatchCtl::workers`] inside a callback.
///
/// Everything here is a message to the worker's mailbox, bounded like the rest of it
/// (`EngineConfig::mailbox_bytes`): a full mailbox refuses with `Busy` / `Full`.
#[derive(Clone)]
pub struct Workers {
    shared: Arc<WorkersShared>,
}

impl Workers {
    pub(crate) fn new(mailboxes: Vec<Arc<Mailbox>>) -> Workers {
        Workers {
            shared: Arc::new(WorkersShared {
                mailboxes,
                files: Mutex::new(HashSet::new()),
                next_worker: AtomicUsize::new(0),
                next_serial: AtomicU64::new(1),
            }),
        }
    }

    /// How many workers there are.
    pub fn count(&self) -> usize {
        self.shared.mailboxes.len()
    }

    /// Watch `fd` on the next worker (round robin); see [`Workers::watch_on`].
    pub fn watch(
        &self,
        fd: OwnedFd,
        interest: Interest,
        token: u64,
    ) -> Result<WatchId, WatchRefused> {
        let n = self.count();
        let worker = self.shared.next_worker.fetch_add(1, Relaxed) % n.max(1);
        self.watch_on(worker, fd, interest, token)
    }

    /// Watch `fd` for `interest` on worker `worker`: its notifications reach
    /// [`crate::Handler::on_ready`] there with `token`, and exactly one
    /// [`crate::Handler::on_watch_removed`] ends it, handing `fd` back. The engine owns
    /// `fd` meanwhile (see [`crate::notify`]). Refused, with `fd` handed back, if the
    /// file is watched already on this engine, cannot be polled, or the worker cannot
    /// take it now.
    pub fn watch_on(
        &self,
        worker: usize,
        fd: OwnedFd,
        interest: Interest,
        token: u64,
    ) -> Result<WatchId, WatchRefused> {
        let Some(mailbox) = self.shared.mailboxes.get(worker) else {
            return Err(refused(WatchError::NoWorker(worker), fd));
        };
        let file = match check_watchable(fd.as_fd()) {
            Ok(file) => file,
            Err(e) => return Err(refused(e, fd)),
        };
        if !self.files().insert(file) {
            return Err(refused(WatchError::AlreadyWatched, fd));
        }
        let serial = self.shared.next_serial.fetch_add(1, Relaxed);
        let id = WatchId::new(worker as u8, serial);
        let msg = Message::Watch {
            id,
            fd,
            file,
            interest,
            token,
        };
        match mailbox.post_or_return(msg) {
            Ok(()) => Ok(id),
            Err((why, Message::Watch { fd, .. })) => {
                self.forget(file);
                let error = match why {
                    SendError::Full => WatchError::Busy,
                    _ => WatchError::Stopped,
                };
                Err(refused(error, fd))
            }
            Err(_) => unreachable!("the mailbox hands back the message it was given"),
        }
    }

    /// Change what watch `id` waits for (it is armed with the new interest). Nothing
    /// happens if the watch has ended meanwhile (its removal notice comes, or came).
    pub fn modify(&self, id: WatchId, interest: Interest) -> Result<(), WatchError> {
        self.ask(id, WatchAsk::Modify(interest))
    }

    /// Arm one-shot watch `id` again.
    pub fn rearm(&self, id: WatchId) -> Result<(), WatchError> {
        self.ask(id, WatchAsk::Rearm)
    }

    /// Remove watch `id`; its [`crate::Handler::on_watch_removed`] follows (once).
    pub fn unwatch(&self, id: WatchId) -> Result<(), WatchError> {
        self.ask(id, WatchAsk::Remove)
    }

    /// Post `value` to worker `worker`: [`crate::Handler::on_worker_posted`] runs there
    /// with it, after whatever was posted to that worker before.
    pub fn post(&self, worker: usize, value: impl Any + Send) -> Result<(), SendError> {
        let mailbox = self
            .shared
            .mailboxes
            .get(worker)
            .ok_or(SendError::WorkerStopped)?;
        mailbox.post(Message::PostWorker(Posted::new(value)))
    }

    fn ask(&self, id: WatchId, ask: WatchAsk) -> Result<(), WatchError> {
        let mailbox = self
            .shared
            .mailboxes
            .get(id.worker())
            .ok_or(WatchError::Unknown)?;
        mailbox
            .post(Message::WatchAsk { id, ask })
            .map_err(|e| match e {
                SendError::Full => WatchError::Busy,
                _ => WatchError::Stopped,
            })
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashSet<FileIdentity>> {
        self.shared.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A watch of `file` ended: the file may be watched again.
    pub(crate) fn forget(&self, file: FileIdentity) {
        self.files().remove(&file);
    }
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.count())
            .finish()
    }
}

/// What [`crate::Handler::on_ready`] may do with the watch that fired: read or write its
/// descriptor, re-arm it (one-shot), change its interest, remove it. The last of
/// `rearm`/`modify` asked wins; `remove` wins over both.
pub struct WatchCtl<'a> {
    id: WatchId,
    token: u64,
    fd: BorrowedFd<'a>,
    interest: Interest,
    workers: &'a Workers,
    pub(crate) ask: Option<WatchAsk>,
}

impl<'a> WatchCtl<'a> {
    pub(crate) fn new(
        id: WatchId,
        token: u64,
        fd: BorrowedFd<'a>,
        interest: Interest,
        workers: &'a Workers,
    ) -> WatchCtl<'a> {
        WatchCtl {
            id,
            token,
            fd,
            interest,
            workers,
            ask: None,
        }
    }

    /// The watch.
    pub fn id(&self) -> WatchId {
        self.id
    }

    /// Its token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Its descriptor, to read or write (non-blocking descriptors, or the worker waits).
    pub fn fd(&self) -> BorrowedFd<'a> {
        self.fd
    }

    /// What it waits for now.
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// Arm this one-shot watch again once the callback returns (it then reports
    /// readiness that is there already).
    pub fn rearm(&mut self) {
        if self.ask != Some(WatchAsk::Remove) {
            self.ask = Some(WatchAsk::Rearm);
        }
    }

    /// Wait for `interest` instead, from when the callback returns.
    pub fn modify(&mut self, interest: Interest) {
        if self.ask != Some(WatchAsk::Remove) {
            self.ask = Some(WatchAsk::Modify(interest));
        }
    }

    /// Remove the watch: `on_watch_removed` follows, and no other notification of it.
    pub fn remove(&mut self) {
        self.ask = Some(WatchAsk::Remove);
    }

    /// The engine's workers: watch more descriptors, post values.
    pub fn workers(&self) -> &'a Workers {
        self.workers
    }
}

impl fmt::Debug for WatchCtl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchCtl")
            .field("id", &self.id)
            .field("token", &self.token)
            .field("interest", &self.interest)
            .finish()
    }
}
