//! Per-descriptor state of the readiness backend: what the engine has asked of the fd
//! and what epoll last said about it (edge-triggered, so readiness is remembered until
//! a call returns EAGAIN).

use std::os::fd::RawFd;

/// What a listener, the doorbell or a connecting socket waits for (an fd is only ever
/// one of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitKind {
    Accept,
    Doorbell,
    Connect,
}

/// One descriptor's state, 24 bytes (there is one per connection). Default: unknown to
/// the backend.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct FdState {
    /// Added to the epoll set.
    pub registered: bool,
    /// Readable (or closed/errored) since the last EAGAIN on read.
    pub readable: bool,
    /// The peer's FIN has been seen (EPOLLRDHUP): read until EOF, a short read does not
    /// mean the socket is drained.
    pub read_closed: bool,
    /// Writable (or errored) since the last EAGAIN on write.
    pub writable: bool,
    /// In the backend's list of descriptors to serve.
    pub queued: bool,
    has_recv: bool,
    has_send: bool,
    /// An armed accept, doorbell wait or connect (`None`: nothing).
    wait_kind: Option<WaitKind>,
    /// The name of the armed receive or of the wait: a descriptor never has both (a
    /// listener or the doorbell never receives; a connecting socket's receive is armed
    /// only after its connect completed and its wait was cleared).
    ud: u64,
    send_key: u32,
}

impl FdState {
    fn waiting(&self, kind: WaitKind) -> Option<u64> {
        (self.wait_kind == Some(kind)).then_some(self.ud)
    }

    pub fn accept(&self) -> Option<u64> {
        self.waiting(WaitKind::Accept)
    }

    pub fn doorbell(&self) -> Option<u64> {
        self.waiting(WaitKind::Doorbell)
    }

    pub fn connect(&self) -> Option<u64> {
        self.waiting(WaitKind::Connect)
    }

    pub fn wait_for(&mut self, kind: WaitKind, user_data: u64) {
        debug_assert!(
            !self.has_recv,
            "a wait on a descriptor with a receive armed"
        );
        self.wait_kind = Some(kind);
        self.ud = user_data;
    }

    pub fn clear_wait(&mut self) {
        self.wait_kind = None;
    }

    /// The armed multishot receive's name.
    pub fn recv(&self) -> Option<u64> {
        self.has_recv.then_some(self.ud)
    }

    pub fn set_recv(&mut self, user_data: Option<u64>) {
        debug_assert!(
            user_data.is_none() || self.wait_kind.is_none(),
            "a receive armed on a descriptor that waits"
        );
        self.has_recv = user_data.is_some();
        if let Some(ud) = user_data {
            self.ud = ud;
        }
    }

    /// The key of a send waiting for writability.
    pub fn send(&self) -> Option<u32> {
        self.has_send.then_some(self.send_key)
    }

    pub fn set_send(&mut self, key: Option<u32>) {
        self.has_send = key.is_some();
        self.send_key = key.unwrap_or(0);
    }

    /// Something asked of this fd can make progress now.
    pub fn has_work(&self) -> bool {
        let wants_read =
            self.has_recv || matches!(self.wait_kind, Some(WaitKind::Accept | WaitKind::Doorbell));
        let wants_write = self.has_send || self.wait_kind == Some(WaitKind::Connect);
        (self.readable && wants_read) || (self.writable && wants_write)
    }
}

/// The table keeps room for this many descriptors however few are open.
const KEEP_FDS: usize = 1024;

/// Descriptor states indexed by fd number (small, dense integers: the kernel hands out
/// the lowest free number). After a burst of connections has closed, the states above
/// the highest descriptor still known are dropped and the capacity follows, so the
/// table is sized by the descriptors open, not by the burst.
#[derive(Debug, Default)]
pub(super) struct FdTable {
    states: Vec<FdState>,
}

impl FdTable {
    pub fn get_mut(&mut self, fd: RawFd) -> &mut FdState {
        let i = fd as usize;
        if self.states.len() <= i {
            self.states.resize_with(i + 1, FdState::default);
        }
        &mut self.states[i]
    }

    pub fn get(&self, fd: RawFd) -> Option<&FdState> {
        self.states.get(fd as usize)
    }

    /// Forget everything about `fd` (it is being closed; its number will be reused).
    ///
    /// Clearing the highest descriptor also drops the unknown states below it down to
    /// the next known one: each state is dropped at most once per time it was added, so
    /// this costs O(1) a clear, amortized (and nothing per message: clears come with
    /// closes).
    pub fn clear(&mut self, fd: RawFd) {
        let i = fd as usize;
        let Some(s) = self.states.get_mut(i) else {
            return;
        };
        *s = FdState::default();
        if i + 1 == self.states.len() {
            self.trim();
        }
    }

    fn trim(&mut self) {
        while self.states.last().is_some_and(|s| *s == FdState::default()) {
            self.states.pop();
        }
        // Shrink only well above what is needed, so open/close at the top never
        // reallocates back and forth.
        let keep = self.states.len().max(KEEP_FDS);
        if self.states.capacity() > 4 * keep {
            self.states.shrink_to(2 * keep);
        }
    }

    /// (states, capacity), for tests.
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize) {
        (self.states.len(), self.states.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_state_stays_small() {
        assert!(std::mem::size_of::<FdState>() <= 24);
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
            t.get_mut(fd).set_recv(Some(fd as u64));
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
        assert!(t.get(5).is_some_and(|s| s.recv().is_none() && s.registered));
        // Open/close at the top costs no reallocation.
        let cap = t.footprint().1;
        for _ in 0..1000 {
            t.get_mut(6).registered = true;
            t.clear(6);
        }
        assert_eq!(t.footprint(), (6, cap));
    }
}
