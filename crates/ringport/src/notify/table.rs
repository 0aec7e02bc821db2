//! The watches of one driver (a worker's, or a port's): each watch's descriptor, interest
//! and token, and the one poll it may have in flight, as a small machine.
//!
//! A watch has at most one poll operation in flight (`Poll::Armed`), named by the watch's
//! key, so every completion finds its watch by key and generation. What it does next
//! when its poll ends is `Then`:
//! - a persistent edge watch is one multishot poll; every other watch is a one-shot poll,
//!   armed again by the table after each notification (persistent level) or when asked
//!   (one-shot: `rearm`, `modify`). Re-arming is how level triggering is had on both
//!   backends: a one-shot poll looks at the descriptor when armed, so readiness still
//!   there is reported at once.
//! - `modify` with a poll in flight cancels it and arms the new interest when the cancel's
//!   final completion arrives (`Then::Arm`); notifications of the old interest that race
//!   the cancel are dropped (the new poll looks at the descriptor afresh).
//! - `remove` with a poll in flight cancels it and removes once the final completion
//!   arrives (`Then::Remove`); without one, at once. Removal takes the entry out, hands
//!   the descriptor back in a [`WatchRemoved`], and frees the slot: a completion can no
//!   longer reach the watch, so no notification follows its notice.
//! - a poll that ends with an error (not asked to) removes the watch with
//!   `RemoveReason::Failed`.

use super::interest::{Interest, Persistence, Ready};
use super::watch::{RemoveReason, WatchId, WatchRemoved};
use crate::core::op_name::encode;
use crate::core::{ConnKey, OpKind, Slab};
use crate::sys::fd_info::FileIdentity;
use crate::sys::op::{Cancel, PollAdd, ReleaseFd};
use crate::sys::{Completion, Driver};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The watch's poll operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poll {
    /// None in flight (a one-shot that fired, a persistent one between re-arms).
    Idle,
    Armed,
    /// Cancelled; its final completion has not come yet.
    Cancelling,
}

/// What to do once the poll in flight has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Nothing,
    /// Arm again (with the interest as modified).
    Arm,
    Remove(RemoveReason),
}

struct Entry {
    id: WatchId,
    fd: OwnedFd,
    file: FileIdentity,
    token: u64,
    interest: Interest,
    poll: Poll,
    then: Then,
}

/// What a completion meant.
#[derive(Debug)]
pub(crate) enum Event {
    /// Readiness to report to the watch's owner.
    Ready {
        key: ConnKey,
        id: WatchId,
        token: u64,
        ready: Ready,
    },
    /// The watch is gone; its notice.
    Removed(Removal),
}

/// A removed watch: its notice, and the file to forget in the set of watched files.
#[derive(Debug)]
pub(crate) struct Removal {
    pub notice: WatchRemoved,
    pub file: FileIdentity,
}

/// What a watch is, for its callback.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub id: WatchId,
    pub fd: BorrowedFd<'a>,
    pub interest: Interest,
}

/// The watches of one driver.
pub(crate) struct Watches {
    slab: Slab<Entry>,
    /// By serial number (handles name watches by id).
    by_serial: HashMap<u64, ConnKey>,
}

impl Default for Watches {
    fn default() -> Watches {
        Watches {
            slab: Slab::with_generation_step(1),
            by_serial: HashMap::new(),
        }
    }
}

impl Watches {
    /// Watches registered (until their removal).
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// The key of watch `id`, if it is registered here.
    pub(crate) fn key(&self, id: WatchId) -> Option<ConnKey> {
        self.by_serial.get(&id.serial()).copied()
    }

    /// The watch under `key`.
    pub(crate) fn view(&mut self, key: ConnKey) -> Option<View<'_>> {
        self.slab.get_mut(key).map(|e| View {
            id: e.id,
            fd: e.fd.as_fd(),
            interest: e.interest,
        })
    }

    /// Register a watch and arm its first poll.
    pub(crate) fn insert<D: Driver>(
        &mut self,
        io: &mut D,
        id: WatchId,
        fd: OwnedFd,
        file: FileIdentity,
        interest: Interest,
        token: u64,
    ) -> ConnKey {
        let key = self.slab.insert_with(|_| Entry {
            id,
            fd,
            file,
            token,
            interest,
            poll: Poll::Idle,
            then: Then::Nothing,
        });
        self.by_serial.insert(id.serial(), key);
        self.arm(io, key);
        key
    }

    fn arm<D: Driver>(&mut self, io: &mut D, key: ConnKey) {
        let Some(e) = self.slab.get_mut(key) else {
            return;
        };
        debug_assert_eq!(e.poll, Poll::Idle);
        let op = PollAdd {
            fd: e.fd.as_raw_fd(),
            events: e.interest.poll_events(),
            multishot: e.interest.multishot(),
            // Polled again and again: the readiness backend keeps it registered until
            // `take` releases it.
            linger: true,
        };
        // The descriptor stays open until the poll's final completion: the entry owns
        // it and is removed only with no poll in flight.
        io.start(op, key.name(OpKind::Watch));
        e.poll = Poll::Armed;
    }

    fn cancel<D: Driver>(io: &mut D, key: ConnKey, e: &mut Entry) {
        let cancel = Cancel {
            target: key.name(OpKind::Watch),
            fd: e.fd.as_raw_fd(),
        };
        io.start(cancel, encode(OpKind::Ignore, 0, 0));
        e.poll = Poll::Cancelling;
    }

    /// A completion of the poll of watch `key`: readiness to report, a removal, or
    /// nothing (a stale completion, one racing a cancel, a re-arm). `None` too for a
    /// completion no watch expects (the caller may count it stale: see `expects`).
    pub(crate) fn complete<D: Driver>(
        &mut self,
        io: &mut D,
        key: ConnKey,
        c: &Completion,
    ) -> Option<Event> {
        let e = self.slab.get_mut(key)?;
        if e.poll == Poll::Idle {
            return None; // no poll of this watch is in flight: not its completion
        }
        let changing = e.poll == Poll::Cancelling || e.then != Then::Nothing;
        if !c.more() {
            e.poll = Poll::Idle;
        }
        if !changing {
            if c.result >= 0 {
                return Some(Event::Ready {
                    key,
                    id: e.id,
                    token: e.token,
                    ready: Ready::from_poll(c.result as u32),
                });
            }
            // An error the table did not cause ended the poll (errors are final).
            e.poll = Poll::Idle;
            let why = RemoveReason::Failed { errno: -c.result };
            return self.release(io, key, why).map(Event::Removed);
        }
        if e.poll != Poll::Idle {
            return None; // more of a poll being cancelled
        }
        match std::mem::replace(&mut e.then, Then::Nothing) {
            Then::Nothing => None,
            Then::Arm => {
                self.arm(io, key);
                None
            }
            Then::Remove(why) => self.release(io, key, why).map(Event::Removed),
        }
    }

    /// Watch `key` was completed with readiness and its owner has seen it: a persistent
    /// watch whose poll ended (a level one, after every notification; an edge one the
    /// backend stopped) is armed again.
    pub(crate) fn after_ready<D: Driver>(&mut self, io: &mut D, key: ConnKey) {
        if let Some(e) = self.slab.get_mut(key) {
            if e.poll == Poll::Idle
                && e.then == Then::Nothing
                && e.interest.persistence() == Persistence::Persistent
            {
                self.arm(io, key);
            }
        }
    }

    /// Arm a one-shot watch again (nothing if its poll is in flight). False if there is
    /// no such watch.
    pub(crate) fn rearm<D: Driver>(&mut self, io: &mut D, key: ConnKey) -> bool {
        let Some(e) = self.slab.get_mut(key) else {
            return false;
        };
        if e.poll == Poll::Idle && e.then == Then::Nothing {
            self.arm(io, key);
        }
        true
    }

    /// Change what watch `key` waits for, and arm it with the new interest. False if
    /// there is no such watch.
    pub(crate) fn modify<D: Driver>(&mut self, io: &mut D, key: ConnKey, to: Interest) -> bool {
        let Some(e) = self.slab.get_mut(key) else {
            return false;
        };
        e.interest = to;
        match (e.poll, e.then) {
            (_, Then::Remove(_)) => {}
            (Poll::Idle, _) => self.arm(io, key),
            (Poll::Armed, _) => {
                Self::cancel(io, key, e);
                e.then = Then::Arm;
            }
            (Poll::Cancelling, _) => e.then = Then::Arm,
        }
        true
    }

    /// Remove watch `key`: at once if it has no poll in flight (the removal is returned),
    /// else once the poll's cancel completes. The first reason given stands. `Err` if
    /// there is no such watch.
    pub(crate) fn remove<D: Driver>(
        &mut self,
        io: &mut D,
        key: ConnKey,
        why: RemoveReason,
    ) -> Result<Option<Removal>, ()> {
        let e = self.slab.get_mut(key).ok_or(())?;
        match (e.poll, e.then) {
            (_, Then::Remove(_)) => Ok(None),
            (Poll::Idle, _) => Ok(self.release(io, key, why)),
            (Poll::Armed, _) => {
                Self::cancel(io, key, e);
                e.then = Then::Remove(why);
                Ok(None)
            }
            (Poll::Cancelling, _) => {
                e.then = Then::Remove(why);
                Ok(None)
            }
        }
    }

    /// Remove every watch (shutdown); the removals that happen at once go to `out`.
    pub(crate) fn remove_all<D: Driver>(
        &mut self,
        io: &mut D,
        why: RemoveReason,
        out: &mut Vec<Removal>,
    ) {
        for key in self.slab.keys() {
            if let Ok(Some(r)) = self.remove(io, key, why) {
                out.push(r);
            }
        }
    }

    /// Take every watch out without waiting for its poll (the driver is being dropped
    /// with them: a lost worker, a port dropped).
    pub(crate) fn abandon(&mut self, why: RemoveReason) -> Vec<Removal> {
        let keys = self.slab.keys();
        keys.into_iter().filter_map(|k| self.take(k, why)).collect()
    }

    /// Remove a watch with no poll in flight: the driver lets go of its descriptor first
    /// (the readiness backend's set), then the entry goes.
    fn release<D: Driver>(
        &mut self,
        io: &mut D,
        key: ConnKey,
        why: RemoveReason,
    ) -> Option<Removal> {
        let fd = self.slab.get_mut(key)?.fd.as_raw_fd();
        io.call(ReleaseFd { fd });
        self.take(key, why)
    }

    fn take(&mut self, key: ConnKey, why: RemoveReason) -> Option<Removal> {
        let e = self.slab.remove(key)?;
        self.by_serial.remove(&e.id.serial());
        Some(Removal {
            notice: WatchRemoved::new(e.id, e.token, why, e.fd),
            file: e.file,
        })
    }
}

#[cfg(test)]
mod tests;
