//! The doorbell read: wait for a worker's eventfd to be rung (an 8-byte read of its
//! counter), one at a time. One completion: 8 (the bytes read), or an errno (-ECANCELED
//! after a cancel). The driver notes the completion itself when it reaps it
//! ([`DoorbellArmed`] turns false), and owns the read's 8-byte target until then.

use super::{Call, Op};
#[cfg(test)]
use crate::sys::fake::FakeDriver;
use crate::sys::poll::{
    edge, retry, set_nonblocking, OpBit, Outcome, PollCore, PollIo, PollOpState,
};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::Completion;
use io_uring::{opcode, types};
use std::os::fd::RawFd;

/// Read the doorbell eventfd `efd` (io_uring: a blocking eventfd, so the read waits; the
/// readiness backend makes it non-blocking and reads when epoll says it is readable).
/// Started while one is in flight, it does nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DoorbellRead {
    /// The eventfd (kept open by the caller until the completion).
    pub efd: RawFd,
}

impl Op for DoorbellRead {
    type Started = ();
    const NAME: &'static str = "doorbell";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[(opcode::Read::CODE, "read")];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        let bell = core.state::<DoorbellTarget>();
        if bell.in_flight.is_some() {
            return;
        }
        bell.in_flight = Some(user_data);
        let ptr: *mut u64 = &mut *bell.value;
        let e = opcode::Read::new(types::Fd(self.efd), ptr.cast(), 8)
            .build()
            .user_data(user_data);
        // SAFETY: the 8-byte target is boxed in the `DoorbellTarget` state, which keeps
        // it while `in_flight` (until `reaped` saw the read's completion), and leaks it
        // if the ring is dropped first.
        unsafe { core.push(&e) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let (io, bell, bit) = core.op_state::<DoorbellWait>();
        if bell.in_flight.is_some() {
            return;
        }
        let armed =
            set_nonblocking(self.efd).and_then(|()| io.register(self.efd, edge::READ, false));
        if let Err(e) = armed {
            return io.fail(user_data, e);
        }
        bell.in_flight = Some(user_data);
        bell.waiting = Some((self.efd, user_data));
        io.arm(self.efd, bit);
        io.queue(self.efd);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.doorbell(user_data)
    }
}

/// Is a doorbell read in flight (its completion not yet drained)?
#[derive(Debug, Clone, Copy)]
pub(crate) struct DoorbellArmed;

impl Call for DoorbellArmed {
    type Answer = bool;

    fn call_uring(self, core: &mut UringCore) -> bool {
        core.state::<DoorbellTarget>().in_flight.is_some()
    }

    fn call_poll(self, core: &mut PollCore) -> bool {
        core.op_state::<DoorbellWait>().1.in_flight.is_some()
    }

    #[cfg(test)]
    fn call_fake(self, fake: &mut FakeDriver) -> bool {
        fake.doorbell_armed()
    }
}

/// The io_uring doorbell read's target, and its name while it is in flight.
#[derive(Debug, Default)]
struct DoorbellTarget {
    value: Box<u64>,
    in_flight: Option<u64>,
}

impl UringOpState for DoorbellTarget {
    fn reaped(&mut self, batch: &[Completion]) {
        note_read(&mut self.in_flight, batch)
    }

    fn held(&self) -> usize {
        self.in_flight.is_some() as usize
    }

    fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.value));
        self.in_flight = None;
    }
}

/// The readiness backend's doorbell: the armed wait, and the read's name until its
/// completion is drained.
#[derive(Debug, Default)]
struct DoorbellWait {
    waiting: Option<(RawFd, u64)>,
    in_flight: Option<u64>,
}

impl PollOpState for DoorbellWait {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        let Some((_, ud)) = self.waiting.filter(|(efd, _)| *efd == fd) else {
            return false;
        };
        if !io.fd(fd).readable {
            return false;
        }
        let result = match read_counter(fd) {
            Outcome::Done(n) => n as i32,
            Outcome::WouldBlock => {
                io.fd(fd).readable = false;
                return false;
            }
            Outcome::Failed(e) => -e,
        };
        self.waiting = None;
        io.disarm(fd, bit);
        io.post(ud, result, false);
        false
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        if self.waiting != Some((fd, target)) {
            return false;
        }
        self.waiting = None;
        io.disarm(fd, bit);
        io.post(target, -libc::ECANCELED, false);
        true
    }

    fn forget(&mut self, fd: RawFd) {
        if self.waiting.is_some_and(|(efd, _)| efd == fd) {
            self.waiting = None;
            self.in_flight = None;
        }
    }

    fn reaped(&mut self, batch: &[Completion]) {
        note_read(&mut self.in_flight, batch)
    }
}

/// Read an eventfd counter without blocking.
fn read_counter(fd: RawFd) -> Outcome {
    let mut value: u64 = 0;
    retry(|| {
        // SAFETY: reads 8 bytes into a live local u64.
        unsafe {
            libc::read(
                fd,
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        }
    })
}

/// The doorbell read named in `in_flight` is over if `batch` holds its completion.
fn note_read(in_flight: &mut Option<u64>, batch: &[Completion]) {
    if let Some(ud) = *in_flight {
        if batch.iter().any(|c| c.user_data == ud && !c.more()) {
            *in_flight = None;
        }
    }
}
