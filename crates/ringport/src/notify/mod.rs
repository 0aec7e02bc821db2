//! Socket-state notifications: watch any descriptor (a socket ringport does not own, a
//! pipe, an eventfd, a timerfd, a database driver's socket) for readiness through the
//! same queue as completed I/O — the `ProcessSocketNotifications` of this design.
//!
//! - On an engine's workers: `Workers::watch` (from [`crate::Server::workers`] or
//!   [`crate::Client::workers`]); notifications reach [`crate::Handler::on_ready`] on the
//!   watch's worker, and [`crate::Handler::on_watch_removed`] ends every watch.
//! - Standalone: a [`Port`] and your own loop around [`Port::wait`].
//!
//! A watch waits for an [`Interest`] (readable, writable, hang-up; errors always
//! reported), level- or edge-triggered, one-shot or persistent; see [`Trigger`] and
//! [`Persistence`] for what each means. Every watch ends with exactly one removal notice
//! ([`WatchRemoved`]: removed by its owner, a backend error, shutdown), after which
//! nothing of it is held anywhere and no notification of it follows.
//!
//! # Descriptors are handed over
//! A watch takes the descriptor as an [`OwnedFd`](std::os::fd::OwnedFd): it stays open
//! while a poll may name it, so a descriptor can never be closed (and its number reused)
//! under a watch. The callback and [`Port::fd`] lend it for reads and writes; the removal
//! notice hands it back (dropping the notice closes it). To keep using a descriptor
//! elsewhere, watch a dup of it (`try_clone`), not both: a file watched twice on one
//! engine or port — through a dup, or the other handle of one socket — is refused
//! with [`WatchError::AlreadyWatched`]. Regular files, directories and devices without
//! readiness (`/dev/null`), which cannot be polled (io_uring would call them always
//! ready, epoll refuses them), are refused too ([`WatchError::NotPollable`]), so both
//! backends answer alike.
//!
//! # How the backends do it
//! io_uring: a persistent edge watch is one multishot `IORING_OP_POLL_ADD`; every other
//! watch is a one-shot poll, armed again after each notification (persistent level) or
//! when re-armed or modified (one-shot). A one-shot poll looks at the descriptor when it
//! is armed, which is what makes level triggering on every kernel. The kernel's own
//! `IORING_POLL_ADD_LEVEL` is not used: `IORING_OP_POLL_ADD` refuses it with `EINVAL`
//! (Linux 6.18, one-shot and multishot alike; tried with a hand-made entry, since the
//! io-uring crate builds none), so re-arming is the only level triggering io_uring
//! offers here.
//! Modify and remove cancel the poll in flight and act on its final completion. The
//! readiness backend emulates the same polls on epoll (edge-triggered, plus a `poll(2)`
//! look when a poll is armed on a descriptor already registered), with the same results.

mod interest;
mod port;
pub(crate) mod table;
mod watch;

pub use interest::{Interest, Persistence, Ready, Trigger};
pub(crate) use port::{check_watchable, refused};
pub use port::{Notification, Port};
pub use watch::{RemoveReason, WatchError, WatchId, WatchRefused, WatchRemoved};
