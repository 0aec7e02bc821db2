//! `UringCore`: one worker's ring with a safe submission API, knowing no operation.
//!
//! Operations (`sys/op/`) build their entries and push them with [`UringCore::push`],
//! whose obligation (every pointer valid until the final completion) they meet by keeping
//! what they lend in an op state held here ([`UringCore::state`]). Every completion the
//! core hands on is shown to every op state first ([`UringOpState::reaped`]), so an op
//! releases its memory exactly when the kernel is done with it.

use super::probe;
use crate::sys::op::{AsAny, OpStates};
use crate::sys::Completion;
use io_uring::{squeue, types, EnterFlags, IoUring};
use std::io;
use std::time::Duration;

/// The io_uring side of an op's driver-held state (what its operations lend the kernel).
pub(crate) trait UringOpState: AsAny {
    /// The core reaped `batch` and hands it on: for each final completion of an
    /// operation this state lends memory for, the kernel is done with that memory. (One
    /// call per state per drain, not per completion: the loop is the state's own.)
    fn reaped(&mut self, batch: &[Completion]);

    /// Operations whose memory this state still holds.
    fn held(&self) -> usize;

    /// The ring is dropped with operations in flight: forget their memory without freeing
    /// it (the kernel may still use it).
    fn leak(&mut self);
}

/// Submissions that may fail in a row (other than EBUSY and EINTR, which are part of
/// normal operation) before the ring is given up on. Each failure waits a millisecond, so
/// a transient shortage (ENOMEM, EAGAIN) has this many milliseconds to pass.
const SUBMIT_FAILURES_MAX: u32 = 100;

/// Consecutive submit failures, and the verdict once there were too many.
#[derive(Debug, Default)]
struct SubmitFailures {
    in_a_row: u32,
    /// The errno that broke the ring: it takes no more entries, and the next wait
    /// returns this error (the worker stops and is reported lost).
    broken: Option<i32>,
}

impl SubmitFailures {
    /// A submit failed with `errno`; true if it may be tried again.
    fn failed(&mut self, errno: i32) -> bool {
        self.in_a_row += 1;
        if self.in_a_row >= SUBMIT_FAILURES_MAX {
            self.broken = Some(errno);
        }
        self.broken.is_none()
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }

    /// `what` failed with `e`: count it; if it may be tried again, log the first of a
    /// run and wait a millisecond (true), else log that the ring is given up (false).
    fn retry_after(&mut self, e: &io::Error, what: &str) -> bool {
        if self.failed(e.raw_os_error().unwrap_or(libc::EIO)) {
            if self.in_a_row == 1 {
                tracing::warn!(error = %e, "{what} failed; retrying");
            }
            std::thread::sleep(Duration::from_millis(1));
            true
        } else {
            tracing::error!(error = %e, tries = SUBMIT_FAILURES_MAX, "{what} keeps failing; giving the ring up");
            false
        }
    }
}

/// The kernel's `struct io_uring_getevents_arg` (the io-uring crate has no setter for
/// `min_wait_usec`, added in Linux 6.12).
#[repr(C)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// A worker's io_uring.
pub(crate) struct UringCore {
    /// The kernel honours a min-wait when waiting for several completions.
    min_wait_supported: bool,
    ring: IoUring,
    setup: &'static str,
    /// The provided-buffer group receives name.
    recv_group: u16,
    /// The group datagram receives take theirs from (`recv_group` if it has none).
    datagram_group: Option<u16>,
    /// Completions reaped while making room in a full submission queue.
    backlog: Vec<Completion>,
    /// What operations lend the kernel, by op state type.
    states: OpStates<dyn UringOpState>,
    lost_seen: u32,
    submit_failures: SubmitFailures,
}

impl UringCore {
    /// Set up a ring with `sq` submission and `cq` completion entries, whose receives
    /// take buffers of group `recv_group` (registered by the driver's buffer ring).
    pub(crate) fn new(sq: u32, cq: u32, recv_group: u16) -> io::Result<UringCore> {
        let (ring, setup) = probe::build_ring(sq, cq)?;
        let mut core = UringCore {
            min_wait_supported: false,
            ring,
            setup,
            recv_group,
            datagram_group: None,
            backlog: Vec::new(),
            states: OpStates::default(),
            lost_seen: 0,
            submit_failures: SubmitFailures::default(),
        };
        core.min_wait_supported = core.probe_min_wait();
        Ok(core)
    }

    /// The kernel honours a min-wait (batched waits are available).
    pub(crate) fn min_wait_supported(&self) -> bool {
        self.min_wait_supported
    }

    /// The setup flags the kernel accepted.
    pub(crate) fn setup_name(&self) -> &'static str {
        self.setup
    }

    /// The ring itself (to register buffers with it).
    pub(crate) fn ring(&self) -> &IoUring {
        &self.ring
    }

    /// The provided-buffer group receives take their buffers from.
    pub(crate) fn recv_group(&self) -> u16 {
        self.recv_group
    }

    /// The provided-buffer group datagram receives take their buffers from.
    pub(crate) fn datagram_group(&self) -> u16 {
        self.datagram_group.unwrap_or(self.recv_group)
    }

    /// Datagram receives take buffers of group `group` (registered by the driver).
    pub(crate) fn set_datagram_group(&mut self, group: u16) {
        self.datagram_group = Some(group);
    }

    /// The op state of type `S`, made on first use.
    pub(crate) fn state<S: UringOpState + Default>(&mut self) -> &mut S {
        self.states.get_or_make::<S>(|| Box::new(S::default())).1
    }

    /// Queue an entry, flushing the submission queue to the kernel if it is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until the operation's final completion
    /// has been reaped (hold the memory in an op state that releases it in
    /// [`UringOpState::reaped`]), and a descriptor in it must stay open until then or
    /// be owned by the operation.
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: the caller guarantees the entry's memory outlives the operation.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            if self.submit_failures.broken.is_some() {
                // The ring is given up on: the entry is dropped (its memory stays lent
                // and is leaked with the ring) and the next wait reports the error.
                return;
            }
            self.make_room();
        }
    }

    /// Queue entries back to back (a linked chain: the kernel sees them in one
    /// submission, never the first alone with its IO_LINK flag dangling).
    ///
    /// # Safety
    /// As for [`UringCore::push`], for every entry.
    pub(crate) unsafe fn push_linked(&mut self, entries: &[squeue::Entry]) {
        self.reserve(entries.len());
        for e in entries {
            // SAFETY: the caller meets `push`'s obligation for every entry.
            unsafe { self.push(e) }
        }
    }

    /// Make room for `n` entries pushed back to back (for linked pairs).
    fn reserve(&mut self, n: usize) {
        while {
            let sq = self.ring.submission();
            sq.capacity() - sq.len() < n
        } {
            if self.submit_failures.broken.is_some() {
                return; // the pushes that follow drop their entries (see `push`)
            }
            self.make_room();
        }
    }

    fn make_room(&mut self) {
        match self.ring.submit() {
            Ok(_) => self.submit_failures.succeeded(),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap_into_backlog(),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                self.submit_failures
                    .retry_after(&e, "io_uring submit with the queue full");
                self.reap_into_backlog();
            }
        }
    }

    fn reap_into_backlog(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for c in cq {
            // Shown to the op states when handed on (`drain`): memory is released later,
            // never earlier, than the kernel is done with it.
            self.backlog.push(Completion {
                user_data: c.user_data(),
                result: c.result(),
                flags: c.flags(),
            });
        }
    }

    /// Submit what is queued and wait for completions: at least one, or `timeout`. With
    /// `want > 1` and a kernel that has min-wait (6.12+), wait for up to `want`
    /// completions but return once `min_wait` has passed if any have arrived: under load
    /// one enter then reaps a batch; under light load the first completion returns at once
    /// after at most `min_wait`. Does not wait when completions are already waiting.
    pub(crate) fn submit_and_wait(
        &mut self,
        want: u32,
        min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if let Some(errno) = self.submit_failures.broken {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let ready = !self.backlog.is_empty() || !self.ring.completion().is_empty();
        let res = if ready {
            self.ring.submit()
        } else {
            let ts = timeout.map(types::Timespec::from);
            let batching = self.min_wait_supported && want > 1 && !min_wait.is_zero();
            let arg = GetEventsArg {
                sigmask: 0,
                sigmask_sz: 0,
                min_wait_usec: if batching {
                    min_wait.as_micros().min(u32::MAX as u128) as u32
                } else {
                    0
                },
                ts: ts
                    .as_ref()
                    .map_or(0, |t| t as *const types::Timespec as u64),
            };
            let want = if batching { want } else { 1 };
            self.enter(want, &arg)
        };
        match res {
            Ok(_) => {
                self.submit_failures.succeeded();
                Ok(())
            }
            Err(e) => match e.raw_os_error() {
                // ETIME: the wait timed out; EBUSY: overflowed completions must be reaped
                // first; EINTR: a signal. None loses anything: the caller drains next.
                Some(libc::ETIME) | Some(libc::EBUSY) | Some(libc::EINTR) => Ok(()),
                // Anything else (ENOMEM, EAGAIN under memory pressure) may pass: try again
                // on the next call, up to the limit in a row.
                _ if self.submit_failures.retry_after(&e, "io_uring_enter") => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// io_uring_enter with GETEVENTS and an extended argument.
    fn enter(&mut self, want: u32, arg: &GetEventsArg) -> io::Result<usize> {
        let to_submit = self.ring.submission().len() as u32;
        let flags = (EnterFlags::GETEVENTS | EnterFlags::EXT_ARG).bits();
        // SAFETY: `arg` has the kernel's io_uring_getevents_arg layout; it and the
        // timespec it may point to live on the caller's stack for the whole call.
        unsafe {
            self.ring
                .submitter()
                .enter(to_submit, want, flags, Some(arg))
        }
    }

    /// Does the kernel take a min-wait? Older kernels reject a non-zero field with EINVAL.
    fn probe_min_wait(&mut self) -> bool {
        let zero = types::Timespec::new();
        let arg = GetEventsArg {
            sigmask: 0,
            sigmask_sz: 0,
            min_wait_usec: 1,
            ts: &zero as *const types::Timespec as u64,
        };
        !matches!(self.enter(0, &arg), Err(e) if e.raw_os_error() == Some(libc::EINVAL))
    }

    /// Move every available completion into `out`. Returns true when the completion
    /// queue had overflowed into the kernel's backlog (nothing is lost: the kernel keeps
    /// the overflowed completions and hands them over on the next enter).
    pub(crate) fn drain(&mut self, out: &mut Vec<Completion>) -> bool {
        let overflowed = self.ring.submission().cq_overflow();
        let first = out.len();
        out.append(&mut self.backlog);
        let mut cq = self.ring.completion();
        cq.sync();
        let lost = cq.overflow();
        for c in &mut cq {
            out.push(Completion {
                user_data: c.user_data(),
                result: c.result(),
                flags: c.flags(),
            });
        }
        drop(cq);
        if out.len() > first {
            for s in self.states.iter_mut() {
                s.reaped(&out[first..]);
            }
        }
        if lost != self.lost_seen {
            // Only possible if the kernel could not allocate its overflow backlog.
            tracing::error!(lost, "the kernel dropped completions");
            self.lost_seen = lost;
        }
        overflowed
    }
}

impl Drop for UringCore {
    fn drop(&mut self) {
        // Memory still lent to the kernel must not be freed: leak it. A clean worker exit
        // leaves nothing in flight, so this only happens after an abnormal stop.
        for s in self.states.iter_mut() {
            let held = s.held();
            if held > 0 {
                tracing::warn!(
                    held,
                    state = (*s).type_name(),
                    "ring dropped with operations in flight; leaking their memory"
                );
                s.leak();
            }
        }
    }
}

#[cfg(test)]
mod tests;
