//! Per-descriptor state of the readiness backend: what the engine has asked of the fd
//! and what epoll last said about it (edge-triggered, so readiness is remembered until
//! a call returns EAGAIN).

use std::os::fd::RawFd;

/// A connect waiting for the socket to become writable.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingConnect {
    pub user_data: u64,
    pub timeout_user_data: u64,
}

/// One descriptor's state. Default: unknown to the backend.
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
    /// An armed multishot accept.
    pub accept: Option<u64>,
    /// An armed multishot receive.
    pub recv: Option<u64>,
    /// The key of a send waiting for writability.
    pub send: Option<u32>,
    pub connect: Option<PendingConnect>,
    /// The doorbell wait's name, while armed.
    pub doorbell: Option<u64>,
}

impl FdState {
    /// Something asked of this fd can make progress now.
    pub fn has_work(&self) -> bool {
        (self.readable && (self.accept.is_some() || self.recv.is_some() || self.doorbell.is_some()))
            || (self.writable && (self.send.is_some() || self.connect.is_some()))
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
