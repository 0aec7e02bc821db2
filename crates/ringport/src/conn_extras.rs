//! What few connections use — handler timers, jobs, the send level handles watch —
//! boxed together behind one pointer, so a connection that uses none of it pays 8 bytes.

use crate::conn::{Conn, UserTimers};
use crate::jobs::order::ConnJobs;
use crate::send_room::SendRoom;
use std::cell::OnceCell;
use std::sync::Arc;

/// A connection's extras (made by the first use of any of them).
#[derive(Debug, Default)]
pub(crate) struct ConnExtras {
    pub timers: UserTimers,
    pub jobs: Option<ConnJobs>,
    /// The send level its handles read (`ConnRef::try_send`), made by the first
    /// `Conn::handle`.
    pub room: OnceCell<Arc<SendRoom>>,
    /// File transfers under way (`Conn::send_file`, `Conn::receive_to_file`).
    pub transfers: Option<Box<crate::transfer::state::Transfers>>,
}

impl ConnExtras {
    fn unused(&self) -> bool {
        self.timers.asked.is_empty()
            && self.timers.armed.is_empty()
            && self.jobs.is_none()
            && self.room.get().is_none()
            && self.transfers.is_none()
    }
}

impl Conn {
    /// The extras, made if the connection has none.
    pub(crate) fn extras_mut(&mut self) -> &mut ConnExtras {
        let _ = self.extras.get_or_init(Default::default);
        self.extras.get_mut().expect("made above")
    }

    pub(crate) fn timers(&self) -> Option<&UserTimers> {
        self.extras.get().map(|e| &e.timers)
    }

    pub(crate) fn timers_mut(&mut self) -> Option<&mut UserTimers> {
        self.extras.get_mut().map(|e| &mut e.timers)
    }

    pub(crate) fn jobs(&self) -> Option<&ConnJobs> {
        self.extras.get()?.jobs.as_ref()
    }

    pub(crate) fn jobs_mut(&mut self) -> Option<&mut ConnJobs> {
        self.extras.get_mut()?.jobs.as_mut()
    }

    /// The send level handles read, if a handle was ever taken.
    pub(crate) fn room(&self) -> Option<&Arc<SendRoom>> {
        self.extras.get()?.room.get()
    }

    /// The send level, made with the first handle (`&self`: `Conn::handle` borrows).
    pub(crate) fn room_or_make(&self) -> Arc<SendRoom> {
        let extras = self.extras.get_or_init(Default::default);
        extras
            .room
            .get_or_init(|| Arc::new(SendRoom::new(self.ctx.high_water)))
            .clone()
    }

    /// Free the extras once nothing in them is in use.
    pub(crate) fn trim_extras(&mut self) {
        if self.extras.get().is_some_and(|e| e.unused()) {
            self.extras.take();
        }
    }
}
