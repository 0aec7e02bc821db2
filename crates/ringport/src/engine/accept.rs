//! Accepting: the multishot accept's completions, admission control, and pausing a
//! listener when accepting fails (out of descriptors or memory).

use super::callbacks::guard;
use super::lifecycle::errno_of;
use super::worker::Worker;
use crate::admission::RefuseReason;
use crate::core::op_name::encode;
use crate::core::{Lifecycle, OpKind};
use crate::handler::{Accept, Handler, Incoming};
use crate::stats::bump;
use crate::sys::{socket, Completion, Driver};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Accept failures (EMFILE, ENFILE, ENOMEM) are logged at most this often per worker.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(1);

impl<H: Handler, D: Driver> Worker<H, D> {
    pub(super) fn on_accept(&mut self, i: usize, c: Completion) {
        if !c.more() {
            self.listeners[i].ledger.complete(OpKind::Accept);
        }
        if c.result >= 0 {
            let fd = socket::adopt_accepted(c.result);
            if !self.stop.asked {
                self.admit(fd, i);
            }
        } else {
            match errno_of(c.result) {
                libc::ECANCELED => {}
                e => self.pause_accepting(i, e),
            }
        }
        if self.stop.asked && self.listeners[i].ledger.is_empty() {
            self.listeners[i].fd = None;
        } else {
            self.arm_accept(i);
        }
    }

    /// Out of descriptors (EMFILE, ENFILE), memory, or another accept error: stop
    /// accepting on this listener briefly instead of spinning on the error; the timer
    /// re-arms it. Counted every time, logged at most once a second.
    fn pause_accepting(&mut self, i: usize, errno: i32) {
        bump(&self.stats.accept_errors, 1);
        let now = Instant::now();
        if self
            .accept_error_logged
            .map_or(true, |t| now.duration_since(t) >= ACCEPT_ERROR_LOG_EVERY)
        {
            let suppressed = std::mem::take(&mut self.accept_errors_unlogged);
            tracing::warn!(
                worker = self.index,
                error = %std::io::Error::from_raw_os_error(errno),
                suppressed,
                "accept failed; pausing this listener"
            );
            self.accept_error_logged = Some(now);
        } else {
            self.accept_errors_unlogged += 1;
        }
        self.listeners[i].paused_until = Some(now + super::worker::worker_retry());
    }

    /// Admission control (the listener's, then the server's), then the handler's veto,
    /// then open; or refuse at once.
    fn admit(&mut self, fd: OwnedFd, listener: usize) {
        let Some(peer) = socket::peer_addr(&fd) else {
            return; // the peer already left; dropping the fd closes it
        };
        let now = Instant::now();
        let (ip, shared) = (peer.ip(), &*self.shared);
        let own = &shared.listener_gates[listener];
        if let Err(why) = own.admit(ip, now) {
            return self.refuse(fd, listener, why);
        }
        if let Err(why) = shared.gate.admit(ip, now) {
            own.release(ip, now);
            return self.refuse(fd, listener, why);
        }
        let handler = &self.handler;
        let incoming = Incoming { peer, listener };
        let verdict = guard(&self.stats, || handler.on_accept(&incoming)).unwrap_or(Accept::Reject);
        if verdict == Accept::Reject {
            self.shared.release(listener, ip, now);
            bump(&self.stats.rejected, 1);
            return self.refuse(fd, listener, RefuseReason::HandlerVeto);
        }
        bump(&self.stats.accepted, 1);
        bump(&self.stats.listeners[listener].accepted, 1);
        let key = self.insert(fd, peer, 0, Some(listener), Lifecycle::accepted());
        if let Some(st) = self.conns.get_mut(key) {
            st.admitted = true;
        }
        self.opened(key);
    }

    /// Close a refused connection at once and count why.
    fn refuse(&mut self, fd: OwnedFd, listener: usize, why: RefuseReason) {
        bump(&self.stats.refused[why.index()], 1);
        bump(&self.stats.listeners[listener].refused[why.index()], 1);
        self.io
            .start(crate::sys::op::Close { fd }, encode(OpKind::Ignore, 0, 0));
    }
}
