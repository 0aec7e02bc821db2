//! What every implementation runs and how it is measured: the token ring of socket pairs
//! ([`Ring`]) and the meter of the loop thread ([`Meter`]).

use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `pairs` non-blocking socket pairs `(a_i, b_i)`: every `b_i` is watched for readable,
/// every `a_i` is written into. `inflight` one-byte tokens circulate: the byte read from
/// `b_i` is written into `a_{(i + inflight) % pairs}`.
///
/// The step is `inflight`, not 1: the tokens start in `b_0..b_inflight`, so with a step
/// of 1 the token leaving `b_0` would land in `b_1` before `b_1` is read, the two would
/// travel together from then on, and after one batch the whole ring would be a single
/// clump of `inflight` bytes behind one notification at a time. With a step of
/// `inflight`, one batch of tokens lands on the next block of sockets, which nobody is
/// reading, and the tokens stay apart (`bytes per notification` in the report stays at 1).
pub struct Ring {
    a: Vec<UnixStream>,
    b: Vec<UnixStream>,
    step: usize,
    inflight: usize,
}

/// Bytes written back per write call (tokens that arrived together leave together).
const ONES: [u8; 256] = [1; 256];

impl Ring {
    pub fn new(pairs: usize, inflight: usize) -> io::Result<Ring> {
        let mut a = Vec::with_capacity(pairs);
        let mut b = Vec::with_capacity(pairs);
        for _ in 0..pairs {
            let (x, y) = UnixStream::pair()?;
            x.set_nonblocking(true)?;
            y.set_nonblocking(true)?;
            a.push(x);
            b.push(y);
        }
        Ok(Ring {
            a,
            b,
            step: inflight % pairs,
            inflight,
        })
    }

    pub fn len(&self) -> usize {
        self.b.len()
    }

    /// The watched end of pair `i` (the implementations watch a duplicate of it and read
    /// through this one, so that reading needs no unsafe code and no `dup` per read).
    pub fn watched(&self, i: usize) -> &UnixStream {
        &self.b[i]
    }

    /// Put the tokens in: one byte into each of `a_0..a_inflight`.
    pub fn seed(&self) -> io::Result<()> {
        for a in &self.a[..self.inflight] {
            (&*a).write_all(&ONES[..1])?;
        }
        Ok(())
    }

    /// The notification for `b_i`: read it until `WouldBlock` and pass every byte read on
    /// to the next pair. Returns the bytes moved.
    #[inline]
    pub fn pass(&self, i: usize) -> u64 {
        let mut buf = [0u8; 256];
        let mut got = 0usize;
        loop {
            match (&self.b[i]).read(&mut buf) {
                Ok(0) => panic!("pair {i}: unexpected end of file"),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("pair {i}: read: {e}"),
            }
        }
        let next = &self.a[(i + self.step) % self.a.len()];
        let mut left = got;
        while left > 0 {
            let n = left.min(ONES.len());
            // A few bytes into an empty socket buffer: never `WouldBlock` in practice.
            if let Err(e) = (&*next).write_all(&ONES[..n]) {
                panic!("pair {i}: write to the next pair: {e}");
            }
            left -= n;
        }
        got as u64
    }
}

/// CPU time and context switches from `getrusage`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub user_us: f64,
    pub sys_us: f64,
    /// Voluntary context switches (the thread blocked, e.g. in a wait with nothing ready).
    pub nvcsw: i64,
    /// Involuntary ones (preempted by another runnable task on the same CPU).
    pub nivcsw: i64,
}

impl Usage {
    /// The calling thread's usage.
    pub fn thread() -> Usage {
        Usage::of(libc::RUSAGE_THREAD)
    }

    /// The whole process's usage (every thread, live or ended).
    pub fn process() -> Usage {
        Usage::of(libc::RUSAGE_SELF)
    }

    fn of(who: libc::c_int) -> Usage {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `ru` is a live, writable `rusage` of our own for the whole call, and
        // `who` is RUSAGE_THREAD or RUSAGE_SELF, both valid on Linux. getrusage only writes
        // into it. `rusage` is plain integers, so the zeroed value is a valid one already
        // and stays valid whatever the call wrote, which makes `assume_init` sound.
        let (rc, ru) = unsafe {
            let rc = libc::getrusage(who, ru.as_mut_ptr());
            (rc, ru.assume_init())
        };
        assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
        let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
        Usage {
            user_us: us(ru.ru_utime),
            sys_us: us(ru.ru_stime),
            nvcsw: ru.ru_nvcsw,
            nivcsw: ru.ru_nivcsw,
        }
    }

    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            user_us: self.user_us - earlier.user_us,
            sys_us: self.sys_us - earlier.sys_us,
            nvcsw: self.nvcsw - earlier.nvcsw,
            nivcsw: self.nivcsw - earlier.nivcsw,
        }
    }

    pub fn cpu_us(self) -> f64 {
        self.user_us + self.sys_us
    }
}

/// The state of the run at one instant, taken on the loop thread.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub at: Instant,
    pub notifications: u64,
    pub bytes: u64,
    pub wakeups: u64,
    pub thread: Usage,
    pub process: Usage,
}

/// The loop thread's counters and the measured window.
///
/// Only the loop thread counts (relaxed load + store, no read-modify-write: a plain
/// increment on one thread, yet `Sync`, so one meter serves the engine's handler and the
/// hand-written loops with the same code). Every [`CHECK_EVERY`] notifications it looks
/// at the clock: the first look past the window's start marks it (counters, this
/// thread's and the process's `getrusage`), the first look past its end marks it again
/// and the run is over. The clock and `getrusage` are read on the loop thread itself,
/// which is what makes `RUSAGE_THREAD` mean the thread doing the work, engine included.
pub struct Meter {
    notifications: AtomicU64,
    bytes: AtomicU64,
    wakeups: AtomicU64,
    anomalies: AtomicU64,
    window: OnceLock<(Instant, Instant)>,
    phase: AtomicU8,
    marks: Mutex<Vec<Mark>>,
    done: Condvar,
}

/// Notifications between two looks at the clock.
pub const CHECK_EVERY: u64 = 64;

impl Meter {
    pub fn new() -> Meter {
        Meter {
            notifications: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            anomalies: AtomicU64::new(0),
            window: OnceLock::new(),
            phase: AtomicU8::new(0),
            marks: Mutex::new(Vec::with_capacity(2)),
            done: Condvar::new(),
        }
    }

    /// Start the clock: the window opens after `warmup` and lasts `duration`.
    pub fn start(&self, warmup: Duration, duration: Duration) {
        let start = Instant::now() + warmup;
        let _ = self.window.set((start, start + duration));
    }

    /// One notification, which moved `bytes`.
    #[inline]
    pub fn notified(&self, bytes: u64) {
        let n = self.notifications.load(Ordering::Relaxed) + 1;
        self.notifications.store(n, Ordering::Relaxed);
        let b = self.bytes.load(Ordering::Relaxed) + bytes;
        self.bytes.store(b, Ordering::Relaxed);
        if n.is_multiple_of(CHECK_EVERY) {
            self.check();
        }
    }

    /// One wait that returned notifications (the hand-written loops only).
    #[inline]
    pub fn woke(&self) {
        let w = self.wakeups.load(Ordering::Relaxed) + 1;
        self.wakeups.store(w, Ordering::Relaxed);
    }

    /// Something that should not happen in this workload (an error or hang-up bit, a watch
    /// removed early); counted and reported.
    pub fn anomaly(&self) {
        self.anomalies.fetch_add(1, Ordering::Relaxed);
    }

    pub fn anomalies(&self) -> u64 {
        self.anomalies.load(Ordering::Relaxed)
    }

    pub fn notifications(&self) -> u64 {
        self.notifications.load(Ordering::Relaxed)
    }

    /// The window has closed.
    pub fn finished(&self) -> bool {
        self.phase.load(Ordering::Acquire) >= 2
    }

    #[cold]
    #[inline(never)]
    fn check(&self) {
        let Some(&(start, end)) = self.window.get() else {
            return; // not started yet
        };
        let phase = self.phase.load(Ordering::Relaxed);
        if phase >= 2 {
            return;
        }
        let due = if phase == 0 { start } else { end };
        if Instant::now() < due {
            return;
        }
        let mark = Mark {
            at: Instant::now(),
            notifications: self.notifications.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            wakeups: self.wakeups.load(Ordering::Relaxed),
            thread: Usage::thread(),
            process: Usage::process(),
        };
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.push(mark);
        self.phase.store(phase + 1, Ordering::Release);
        if phase == 1 {
            self.done.notify_all();
        }
    }

    /// The window's two marks, once it has closed (waiting up to `timeout` for that).
    pub fn window_marks(&self, timeout: Duration) -> Option<(Mark, Mark)> {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let (marks, _) = self
            .done
            .wait_timeout_while(marks, timeout, |m| m.len() < 2)
            .unwrap_or_else(|e| e.into_inner());
        match marks.as_slice() {
            [a, b, ..] => Some((*a, *b)),
            _ => None,
        }
    }
}
