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
#[derive(Debug, Default)]
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

/// Descriptor states indexed by fd number (small, dense integers).
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
    pub fn clear(&mut self, fd: RawFd) {
        if let Some(s) = self.states.get_mut(fd as usize) {
            *s = FdState::default();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptor_state_stays_small() {
        assert!(std::mem::size_of::<super::FdState>() <= 24);
    }
}
