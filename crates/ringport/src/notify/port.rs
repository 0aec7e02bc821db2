//! The standalone notification port: the seed's own loop (register sockets, then wait
//! for a batch of notifications) without an engine or a handler.

use super::interest::{Interest, Ready};
use super::table::{Event, Removal, Watches};
use super::watch::{RemoveReason, WatchError, WatchId, WatchRefused, WatchRemoved};
use crate::core::op_name::decode;
use crate::core::{ConnKey, OpKind};
use crate::sys::fd_info::{identify, FileIdentity, FileKind};
use crate::sys::poll::PollDriver;
use crate::sys::uring::UringDriver;
use crate::sys::{Backend, Chosen, Completion, Driver, DriverConfig};
use std::collections::HashSet;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// A port's ring: small, and no receive buffers to speak of (a port only polls).
const PORT_DRIVER: DriverConfig = DriverConfig {
    ring_entries: 256,
    cq_entries: 4096,
    recv_buffers: 1,
    recv_buffer_size: 64,
    datagram_buffers: 0,
    datagram_buffer_size: 0,
};

/// One notification from [`Port::wait`].
#[derive(Debug)]
pub enum Notification {
    /// The descriptor of watch `id` is ready.
    Ready {
        /// The watch.
        id: WatchId,
        /// Its token.
        token: u64,
        /// What is ready.
        ready: Ready,
    },
    /// The watch is gone (the last notification about it): its descriptor comes back.
    Removed(WatchRemoved),
}

enum Io {
    Uring(Box<UringDriver>),
    Poll(Box<PollDriver>),
}

/// Run `$body` with `$io` bound to the port's driver, whichever it is.
macro_rules! with_io {
    ($self:ident, $io:ident => $body:expr) => {
        match &mut $self.io {
            Io::Uring($io) => {
                let $io = &mut **$io;
                $body
            }
            Io::Poll($io) => {
                let $io = &mut **$io;
                $body
            }
        }
    };
}

/// A completion port for descriptor readiness, for a program that runs its own loop:
/// register descriptors with an [`Interest`] and a token, then [`wait`](Port::wait) for
/// notifications (the shape of `GetQueuedCompletionStatusEx`). Each watch ends with
/// exactly one [`Notification::Removed`], after which the port holds nothing of it.
///
/// The port owns each registered descriptor (it cannot be closed under a poll in
/// flight) and lends it with [`Port::fd`]; the removal notice hands it back.
///
/// # One port per thread
/// A port is neither `Send` nor `Sync`. Its io_uring is set up single-issuer (only the
/// thread that made it may submit, which lets the kernel skip locking and run
/// completions when that thread waits), and its readiness backend keeps its state
/// unlocked for the same reason. The seed's multithreaded one-shot server maps onto one
/// port per thread with descriptors spread over them, each registered one-shot and
/// re-armed once its message is handled; or onto an engine's workers, which are exactly
/// that (see `Workers::watch` and the `oneshot_workers` example).
pub struct Port {
    io: Io,
    watches: Watches,
    files: HashSet<FileIdentity>,
    next_serial: u64,
    /// Persistent watches reported by the last wait: armed again by the next one (a level
    /// watch reports again if the readiness is still there).
    delivered: Vec<ConnKey>,
    /// Removal notices not yet handed out.
    removed: Vec<WatchRemoved>,
    completions: Vec<Completion>,
    backend: Chosen,
    _one_thread: PhantomData<*const ()>,
}

impl Port {
    /// A port on io_uring if this kernel and process allow it, else on the readiness
    /// backend (`RINGPORT_BACKEND=uring|poll` decides, if set).
    pub fn new() -> io::Result<Port> {
        Port::with_backend(Backend::Auto)
    }

    /// A port on the given backend.
    pub fn with_backend(backend: Backend) -> io::Result<Port> {
        let chosen = crate::sys::select(backend, PORT_DRIVER, false).map_err(io::Error::other)?;
        let io = match chosen {
            Chosen::Uring => Io::Uring(Box::new(UringDriver::new(PORT_DRIVER)?)),
            Chosen::Poll => Io::Poll(Box::new(PollDriver::new(PORT_DRIVER)?)),
        };
        Ok(Port {
            io,
            watches: Watches::default(),
            files: HashSet::new(),
            next_serial: 1,
            delivered: Vec::new(),
            removed: Vec::new(),
            completions: Vec::new(),
            backend: chosen,
            _one_thread: PhantomData,
        })
    }

    /// `"uring"` or `"poll"`.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Watches registered (their removal notices not yet handed out by `wait`).
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// No watch is registered.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// Watch `fd` for `interest`; notifications carry `token`. Refused (the descriptor
    /// handed back) for a file watched here already or one that cannot be polled.
    pub fn register(
        &mut self,
        fd: OwnedFd,
        interest: Interest,
        token: u64,
    ) -> Result<WatchId, WatchRefused> {
        let file = match check_watchable(fd.as_fd()) {
            Ok(file) if self.files.insert(file) => file,
            Ok(_) => return Err(refused(WatchError::AlreadyWatched, fd)),
            Err(error) => return Err(refused(error, fd)),
        };
        let id = WatchId::new(0, self.next_serial);
        self.next_serial += 1;
        let watches = &mut self.watches;
        with_io!(self, io => watches.insert(io, id, fd, file, interest, token));
        Ok(id)
    }

    /// Change what watch `id` waits for; it is armed with the new interest at once
    /// (readiness already there is reported, as with `EPOLL_CTL_MOD`).
    pub fn modify(&mut self, id: WatchId, interest: Interest) -> Result<(), WatchError> {
        let key = self.key(id)?;
        let watches = &mut self.watches;
        with_io!(self, io => watches.modify(io, key, interest));
        Ok(())
    }

    /// Arm a one-shot watch again after its notification (nothing if it is armed).
    pub fn rearm(&mut self, id: WatchId) -> Result<(), WatchError> {
        let key = self.key(id)?;
        let watches = &mut self.watches;
        with_io!(self, io => watches.rearm(io, key));
        Ok(())
    }

    /// Remove watch `id`: its [`Notification::Removed`] comes from a later `wait` (no
    /// other notification of it does).
    pub fn remove(&mut self, id: WatchId) -> Result<(), WatchError> {
        let key = self.key(id)?;
        let watches = &mut self.watches;
        let removed = with_io!(self, io => watches.remove(io, key, RemoveReason::Removed));
        if let Ok(Some(r)) = removed {
            self.forget(r);
        }
        Ok(())
    }

    /// The descriptor of watch `id`, to read or write it.
    pub fn fd(&mut self, id: WatchId) -> Option<BorrowedFd<'_>> {
        let key = self.watches.key(id)?;
        self.watches.view(key).map(|v| v.fd)
    }

    /// Wait up to `timeout` (`None`: until one comes) for notifications and append them
    /// to `events`; returns how many were appended (0 if the time ran out). A level
    /// watch reported by the previous call is looked at again first, so readiness left
    /// unhandled is reported again.
    pub fn wait(
        &mut self,
        events: &mut Vec<Notification>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let before = events.len();
        let watches = &mut self.watches;
        for key in self.delivered.drain(..) {
            with_io!(self, io => watches.after_ready(io, key));
        }
        // Notices waiting to be handed out: do not block.
        let timeout = if self.removed.is_empty() {
            timeout.map(crate::deadline::clamp)
        } else {
            Some(Duration::ZERO)
        };
        let mut batch = std::mem::take(&mut self.completions);
        with_io!(self, io => {
            io.submit_and_wait(1, Duration::ZERO, timeout)?;
            io.drain(&mut batch);
        });
        for c in batch.drain(..) {
            let Some((OpKind::Watch, key)) = decode(c.user_data) else {
                continue; // a cancel's own completion
            };
            let watches = &mut self.watches;
            match with_io!(self, io => watches.complete(io, key, &c)) {
                Some(Event::Ready {
                    key,
                    id,
                    token,
                    ready,
                }) => {
                    self.delivered.push(key);
                    events.push(Notification::Ready { id, token, ready });
                }
                Some(Event::Removed(r)) => self.forget(r),
                None => {}
            }
        }
        self.completions = batch;
        events.extend(self.removed.drain(..).map(Notification::Removed));
        Ok(events.len() - before)
    }

    fn key(&self, id: WatchId) -> Result<ConnKey, WatchError> {
        self.watches.key(id).ok_or(WatchError::Unknown)
    }

    /// A watch is gone: its file may be watched again; its notice waits for `wait`.
    fn forget(&mut self, r: Removal) {
        self.files.remove(&r.file);
        self.removed.push(r.notice);
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // No poll lends the kernel memory: the descriptors close with the notices.
        drop(self.watches.abandon(RemoveReason::Shutdown));
        with_io!(self, io => io.shutdown());
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("backend", &self.backend())
            .field("watches", &self.len())
            .finish()
    }
}

/// The identity of the file `fd` refers to, if it is one a watch can poll.
pub(crate) fn check_watchable(fd: BorrowedFd<'_>) -> Result<FileIdentity, WatchError> {
    match identify(fd)? {
        (_, FileKind::Regular) => Err(WatchError::NotPollable("a regular file")),
        (_, FileKind::Directory) => Err(WatchError::NotPollable("a directory")),
        (_, FileKind::UnpollableDevice) => {
            Err(WatchError::NotPollable("a device without readiness"))
        }
        (file, FileKind::Pollable) => Ok(file),
    }
}

pub(crate) fn refused(error: WatchError, fd: OwnedFd) -> WatchRefused {
    WatchRefused { error, fd }
}
