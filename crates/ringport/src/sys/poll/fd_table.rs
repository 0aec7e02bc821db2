//! Per-descriptor state of the readiness backend: what epoll last said about each fd
//! (edge-triggered, so readiness is remembered until a call returns EAGAIN), which op
//! states have something armed on it, and [`FdMap`], the descriptor-indexed table that
//! holds these and the op states' own per-fd entries.

use std::os::fd::RawFd;

/// Bits of [`FdState::edges`] and [`FdState::interest`].
pub(crate) mod edge {
    /// Readable (or the read side closed, or an error).
    pub const READ: u8 = 1;
    /// Writable (or the write side closed, or an error).
    pub const WRITE: u8 = 2;
    /// An error or a hang-up (reported to every interest).
    pub const ERROR: u8 = 4;
    /// Of those, what exactly epoll said (for ops that report readiness itself): an
    /// error (`EPOLLERR`) ...
    pub const ERR: u8 = 8;
    /// ... the read side closed (`EPOLLRDHUP`, or a full hang-up) ...
    pub const RDHUP: u8 = 16;
    /// ... both sides closed (`EPOLLHUP`).
    pub const HUP: u8 = 32;
}

/// One descriptor's state, 12 bytes (there is one per connection). Default: unknown to
/// the backend.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub(crate) struct FdState {
    /// Added to the epoll set.
    pub registered: bool,
    /// The interest it is registered with ([`edge::READ`], [`edge::WRITE`]).
    pub interest: u8,
    /// Readable (or closed/errored) since the last EAGAIN on read.
    pub readable: bool,
    /// The peer's FIN has been seen (EPOLLRDHUP): read until EOF, a short read does not
    /// mean the socket is drained.
    pub read_closed: bool,
    /// Writable (or errored) since the last EAGAIN on write.
    pub writable: bool,
    /// In the backend's list of descriptors to serve.
    pub queued: bool,
    /// What the last epoll pass reported for it (bits of [`edge`]); cleared once the fd
    /// has been served, so an op that reports readiness itself sees each edge once.
    pub edges: u8,
    /// The op states (by index) with something armed on this fd.
    pub armed: u32,
}

/// The table keeps room for this many descriptors however few are open.
const KEEP_FDS: usize = 1024;

/// Entries indexed by fd number (small, dense integers: the kernel hands out the lowest
/// free number). After a burst of connections has closed, the entries above the highest
/// descriptor still known are dropped and the capacity follows, so the table is sized by
/// the descriptors open, not by the burst. `T::default()` means "nothing known": such an
/// entry at the top may be trimmed, so read entries whose default is a real value (a
/// key 0) with [`FdMap::value`].
#[derive(Debug)]
pub(crate) struct FdMap<T> {
    entries: Vec<T>,
}

impl<T> Default for FdMap<T> {
    fn default() -> Self {
        FdMap {
            entries: Vec::new(),
        }
    }
}

/// The readiness backend's descriptor states.
pub(crate) type FdTable = FdMap<FdState>;

impl<T: Default + PartialEq> FdMap<T> {
    /// The entry of `fd`, made (default) if the table does not reach it yet.
    pub fn get_mut(&mut self, fd: RawFd) -> &mut T {
        let i = fd as usize;
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, T::default);
        }
        &mut self.entries[i]
    }

    /// The entry of `fd`, if the table reaches it.
    pub fn get(&self, fd: RawFd) -> Option<&T> {
        self.entries.get(fd as usize)
    }

    /// The entry of `fd`, the default if the table does not reach it (an entry equal to
    /// the default may have been trimmed away: read it with this).
    pub fn value(&self, fd: RawFd) -> T
    where
        T: Copy,
    {
        self.get(fd).copied().unwrap_or_default()
    }

    /// Set the entry of `fd`.
    pub fn set(&mut self, fd: RawFd, value: T) {
        *self.get_mut(fd) = value;
    }

    /// Forget everything about `fd` (its op ended, or it is being closed; its number
    /// will be reused).
    ///
    /// Clearing the highest descriptor also drops the unknown entries below it down to
    /// the next known one: each entry is dropped at most once per time it was added, so
    /// this costs O(1) a clear, amortized (and nothing per message: clears come with
    /// closes).
    pub fn clear(&mut self, fd: RawFd) {
        let i = fd as usize;
        let Some(s) = self.entries.get_mut(i) else {
            return;
        };
        *s = T::default();
        if i + 1 == self.entries.len() {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let unknown = T::default();
        while self.entries.last().is_some_and(|s| *s == unknown) {
            self.entries.pop();
        }
        // Shrink only well above what is needed, so open/close at the top never
        // reallocates back and forth.
        let keep = self.entries.len().max(KEEP_FDS);
        if self.entries.capacity() > 4 * keep {
            self.entries.shrink_to(2 * keep);
        }
    }

    /// (entries, capacity), for tests.
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize) {
        (self.entries.len(), self.entries.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_state_stays_small() {
        assert!(std::mem::size_of::<FdState>() <= 12);
    }

    #[test]
    fn the_table_shrinks_back_after_a_burst_of_descriptors() {
        let mut t = FdTable::default();
        // Three descriptors that stay (a listener, the doorbell, a long-lived client).
        for fd in [3, 4, 5] {
            t.get_mut(fd).registered = true;
        }
        // A burst of 10,000 connections, closed in an order other than opened.
        let burst: Vec<RawFd> = (6..10_006).collect();
        for &fd in &burst {
            t.get_mut(fd).registered = true;
            t.get_mut(fd).armed = 1;
        }
        assert!(t.footprint().1 >= 10_006);
        for &fd in burst.iter().filter(|fd| *fd % 2 == 0) {
            t.clear(fd);
        }
        for &fd in burst.iter().filter(|fd| *fd % 2 == 1).rev() {
            t.clear(fd);
        }
        let (len, cap) = t.footprint();
        assert_eq!(len, 6, "states up to the highest descriptor still open");
        assert!(cap <= 4 * KEEP_FDS, "capacity {cap} after the burst");
        assert!(t.get(5).is_some_and(|s| s.armed == 0 && s.registered));
        // Open/close at the top costs no reallocation.
        let cap = t.footprint().1;
        for _ in 0..1000 {
            t.get_mut(6).registered = true;
            t.clear(6);
        }
        assert_eq!(t.footprint(), (6, cap));
    }
}
