//! A connection's send level as its handles see it: the bytes its worker last counted in
//! its queue plus those handles posted that the worker has not taken yet. It lets
//! `ConnRef::try_send` refuse (`SendError::Full`) above the high-water mark instead of
//! queueing without limit, and lets a thread or a task wait for room.
//!
//! Made with a connection's first handle: connections nobody holds a handle to pay
//! nothing, and the worker updates the level only where one exists.

use crate::error::SendError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct SendRoom {
    high_water: usize,
    /// Bytes in the connection's queue as its worker last counted them.
    queued: AtomicUsize,
    /// Bytes handles posted that the worker has not taken yet.
    posted: AtomicUsize,
    /// The connection is closing: nothing more is taken.
    closed: AtomicBool,
    /// Threads and tasks waiting for room: the worker looks only when there are some.
    waiters: AtomicUsize,
    wakers: Mutex<Vec<Waker>>,
    room: Condvar,
}

impl SendRoom {
    pub(crate) fn new(high_water: usize) -> SendRoom {
        SendRoom {
            high_water,
            queued: AtomicUsize::new(0),
            posted: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            wakers: Mutex::new(Vec::new()),
            room: Condvar::new(),
        }
    }

    fn level(&self) -> usize {
        self.queued
            .load(SeqCst)
            .saturating_add(self.posted.load(SeqCst))
    }

    /// Whether `len` more bytes may go now: they keep the level at or under the
    /// high-water mark, or nothing is queued (a message larger than the mark still goes,
    /// alone).
    fn fits(&self, len: usize) -> bool {
        let level = self.level();
        level == 0 || level.saturating_add(len) <= self.high_water
    }

    /// Count `len` bytes a handle is about to post, if they fit. Threads racing here may
    /// each pass before the others' bytes count: the level overshoots by at most one
    /// message per sender.
    pub(crate) fn reserve(&self, len: usize) -> Result<(), SendError> {
        if self.closed.load(SeqCst) {
            return Err(SendError::Closing);
        }
        if !self.fits(len) {
            return Err(SendError::Full);
        }
        self.posted.fetch_add(len, SeqCst);
        Ok(())
    }

    /// Count bytes posted without the check (`ConnRef::send`).
    pub(crate) fn count_posted(&self, len: usize) {
        self.posted.fetch_add(len, SeqCst);
    }

    /// Bytes counted as posted that will not reach the worker (the post failed), or that
    /// the worker has now taken.
    pub(crate) fn posted_gone(&self, len: usize) {
        let _ = self
            .posted
            .fetch_update(SeqCst, SeqCst, |p| Some(p.saturating_sub(len)));
        self.wake_if_room();
    }

    /// The worker counted its queue (after callbacks and send completions).
    pub(crate) fn set_queued(&self, queued: usize) {
        if self.queued.swap(queued, SeqCst) != queued {
            self.wake_if_room();
        }
    }

    /// The connection is closing: waiters wake (to `Closing`), sends are refused.
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
        self.wake_all();
    }

    fn wake_if_room(&self) {
        if self.waiters.load(SeqCst) > 0 && self.level() < self.high_water.max(1) {
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.lock());
        self.room.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Block until `len` bytes fit, the connection closes, or `deadline` passes; true if
    /// they fit (then [`SendRoom::reserve`] is likely, not certain, to pass).
    pub(crate) fn wait_for(&self, len: usize, deadline: Instant) -> bool {
        self.waiters.fetch_add(1, SeqCst);
        let mut guard = self.lock();
        let fits = loop {
            if self.closed.load(SeqCst) || self.fits(len) {
                break self.fits(len);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            guard = match self.room.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        };
        drop(guard);
        self.waiters.fetch_sub(1, SeqCst);
        fits
    }

    /// Register `waker` to be woken when there may be room for `len` bytes; false if
    /// there is room already (or the connection closed): poll again at once.
    fn park(&self, len: usize, waker: &Waker) -> bool {
        let mut wakers = self.lock();
        if self.closed.load(SeqCst) || self.fits(len) {
            return false;
        }
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        true
    }
}

/// [`crate::ConnRef::send_async`]'s future: reserve room for `len` bytes (waiting for
/// it), then `post` them.
pub(crate) struct RoomFor<'a, F> {
    pub room: &'a SendRoom,
    pub len: usize,
    pub post: F,
    pub parked: bool,
}

impl<F: FnMut() -> Result<(), SendError> + Unpin> Future for RoomFor<'_, F> {
    type Output = Result<(), SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let done = match this.room.reserve(this.len) {
                Err(SendError::Full) => None,
                Ok(()) => Some((this.post)()),
                Err(e) => Some(Err(e)),
            };
            if let Some(done) = done {
                if this.parked {
                    this.room.waiters.fetch_sub(1, SeqCst);
                    this.parked = false;
                }
                return Poll::Ready(done);
            }
            if !this.parked {
                this.room.waiters.fetch_add(1, SeqCst);
                this.parked = true;
            }
            if this.room.park(this.len, cx.waker()) {
                return Poll::Pending;
            }
        }
    }
}

impl<F> Drop for RoomFor<'_, F> {
    fn drop(&mut self) {
        if self.parked {
            self.room.waiters.fetch_sub(1, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    #[test]
    fn the_level_holds_sends_under_the_mark_but_lets_one_large_message_through_alone() {
        let room = SendRoom::new(100);
        assert_eq!(
            room.reserve(500),
            Ok(()),
            "nothing queued: a large message goes"
        );
        assert_eq!(room.reserve(1), Err(SendError::Full));
        room.posted_gone(500); // the worker took it...
        room.set_queued(500); // ...into the queue
        assert_eq!(room.reserve(1), Err(SendError::Full));
        room.set_queued(60);
        assert_eq!(room.reserve(40), Ok(()), "60 + 40 is at the mark");
        assert_eq!(room.reserve(1), Err(SendError::Full));
        room.close();
        assert_eq!(room.reserve(0), Err(SendError::Closing));
    }

    #[test]
    fn a_blocked_sender_wakes_when_the_queue_drains_or_the_deadline_passes() {
        let room = Arc::new(SendRoom::new(100));
        room.set_queued(100);
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!room.wait_for(10, soon), "no room by the deadline");
        assert!(Instant::now() >= soon);
        let waiter = {
            let room = room.clone();
            std::thread::spawn(move || room.wait_for(10, Instant::now() + Duration::from_secs(30)))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while room.waiters.load(SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the waiter never waited");
            std::thread::yield_now();
        }
        room.set_queued(50);
        assert!(waiter.join().unwrap(), "woken with room");
    }

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    #[test]
    fn the_async_send_parks_until_room_then_posts_once() {
        let room = SendRoom::new(100);
        room.set_queued(100);
        let mut posts = 0;
        let mut fut = RoomFor {
            room: &room,
            len: 10,
            post: || {
                posts += 1;
                Ok(())
            },
            parked: false,
        };
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert!(
            Pin::new(&mut fut).poll(&mut cx).is_pending(),
            "polled again: one waker kept"
        );
        assert_eq!(room.lock().len(), 1);
        room.set_queued(20);
        assert!(flag.0.load(SeqCst), "woken by the drain");
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(())));
        drop(fut);
        assert_eq!(posts, 1);
        assert_eq!(room.waiters.load(SeqCst), 0);
        assert_eq!(room.level(), 30, "20 queued + the 10 it reserved");
    }
}
