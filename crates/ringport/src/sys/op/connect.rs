//! Connect with a timeout. Two completions follow: the connect's (its name: 0, a negative
//! errno, or -ECANCELED once the timeout passed or it was cancelled) and the timeout's
//! (`timeout_user_data`: -ETIME if it fired, else -ECANCELED). The driver releases what
//! the connect lent (address, timespec) by itself once it has reaped both.

use super::Op;
#[cfg(test)]
use crate::sys::fake::{FakeDriver, FakeOp};
use crate::sys::poll::{
    edge, set_nonblocking, with_sock, OpBit, Outcome, PollCore, PollIo, PollOpState,
};
use crate::sys::uring::{UringCore, UringOpState};
use crate::sys::Completion;
use io_uring::{opcode, squeue, types};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Connect `fd` to `addr`, failing with ECANCELED after `timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connect {
    /// The low 32 bits of both names (one connect per key at a time).
    pub key: u32,
    /// The socket (kept open by the caller until both completions).
    pub fd: RawFd,
    /// Where to.
    pub addr: SocketAddr,
    /// How long before it fails with ECANCELED.
    pub timeout: Duration,
    /// The name of the timeout's completion.
    pub timeout_user_data: u64,
}

impl Op for Connect {
    type Started = ();
    const NAME: &'static str = "connect";
    const URING_OPCODES: &'static [(u8, &'static str)] = &[
        (opcode::Connect::CODE, "connect"),
        (opcode::LinkTimeout::CODE, "link_timeout"),
    ];

    fn start_uring(self, core: &mut UringCore, user_data: u64) {
        debug_assert_eq!(
            self.key, user_data as u32,
            "a connect's key: its name's low bits"
        );
        debug_assert_eq!(self.key, self.timeout_user_data as u32);
        let mem = core.state::<Connects>().start(
            self.key,
            ConnectMem {
                addr: self.addr.into(),
                timeout: types::Timespec::from(self.timeout),
                user_data: [user_data, self.timeout_user_data],
                reaped: 0,
            },
        );
        let c = opcode::Connect::new(types::Fd(self.fd), mem.addr.as_ptr().cast(), mem.addr.len())
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(user_data);
        let t = opcode::LinkTimeout::new(&mem.timeout)
            .build()
            .user_data(self.timeout_user_data);
        // SAFETY: the address and timespec live in the box under `key` in the `Connects`
        // state until `reaped` saw both completions (or are leaked with the ring).
        unsafe { core.push_linked(&[c, t]) }
    }

    fn start_poll(self, core: &mut PollCore, user_data: u64) {
        let (fd, tud) = (self.fd, self.timeout_user_data);
        let (io, connects, bit) = core.op_state::<Connecting>();
        let started = match set_nonblocking(fd) {
            Ok(()) => start_connect(fd, self.addr),
            Err(e) => Outcome::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        let result = match started {
            Outcome::Done(_) => 0,
            Outcome::Failed(e) => -e,
            // Not writable until connected: no optimistic write readiness here.
            Outcome::WouldBlock => match io.register(fd, edge::READ | edge::WRITE, false) {
                Ok(()) => {
                    connects.pending.push(Pending {
                        fd,
                        user_data,
                        timeout_user_data: tud,
                        deadline: Instant::now() + self.timeout,
                    });
                    io.arm(fd, bit);
                    io.queue(fd);
                    return;
                }
                Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            },
        };
        io.post(user_data, result, false);
        io.post(tud, -libc::ECANCELED, false);
    }

    #[cfg(test)]
    fn start_fake(self, fake: &mut FakeDriver, user_data: u64) {
        fake.start(FakeOp::Connect, user_data);
        fake.start(FakeOp::ConnectTimeout, self.timeout_user_data)
    }
}

/// What an io_uring connect lends: the address and the linked timeout's timespec.
struct ConnectMem {
    addr: socket2::SockAddr,
    timeout: types::Timespec,
    /// The names of the connect and of its linked timeout, and how many of those two
    /// completions have been reaped (the memory is the kernel's until both are).
    user_data: [u64; 2],
    reaped: u8,
}

/// The io_uring connects in flight, by key.
#[derive(Default)]
struct Connects {
    by_key: Vec<Option<Box<ConnectMem>>>,
    held: usize,
}

impl Connects {
    fn start(&mut self, key: u32, mem: ConnectMem) -> &ConnectMem {
        let key = key as usize;
        if self.by_key.len() <= key {
            self.by_key.resize_with(key + 1, || None);
        }
        assert!(self.by_key[key].is_none(), "one connect in flight per key");
        self.held += 1;
        self.by_key[key].insert(Box::new(mem))
    }
}

impl UringOpState for Connects {
    fn reaped(&mut self, batch: &[Completion]) {
        if self.held == 0 {
            return;
        }
        for c in batch {
            let Some(slot) = self.by_key.get_mut(c.user_data as u32 as usize) else {
                continue;
            };
            if let Some(mem) = slot.as_mut().filter(|m| m.user_data.contains(&c.user_data)) {
                mem.reaped += 1;
                if mem.reaped == 2 {
                    // Both completions reaped: the kernel is done with the address and
                    // timespec.
                    *slot = None;
                    self.held -= 1;
                }
            }
        }
    }

    fn held(&self) -> usize {
        self.held
    }

    fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.by_key));
        self.held = 0;
    }
}

/// A readiness-backend connect waiting for its socket to become writable.
#[derive(Debug)]
struct Pending {
    fd: RawFd,
    user_data: u64,
    timeout_user_data: u64,
    deadline: Instant,
}

/// The readiness backend's pending connects (and their deadlines, as io_uring's linked
/// timeouts).
#[derive(Debug, Default)]
struct Connecting {
    pending: Vec<Pending>,
}

/// Pending lists shrink back to this capacity after a burst.
const KEEP_CAPACITY: usize = 1024;

impl Connecting {
    /// End the pending connect at `i`: its completion with `result`, its timeout's with
    /// `timeout_result`.
    fn end(&mut self, io: &mut PollIo, i: usize, bit: OpBit, result: i32, timeout_result: i32) {
        let p = self.pending.swap_remove(i);
        io.disarm(p.fd, bit);
        io.post(p.user_data, result, false);
        io.post(p.timeout_user_data, timeout_result, false);
        if self.pending.capacity() > KEEP_CAPACITY && self.pending.len() < KEEP_CAPACITY {
            self.pending.shrink_to(KEEP_CAPACITY);
        }
    }
}

impl PollOpState for Connecting {
    fn serve(&mut self, io: &mut PollIo, fd: RawFd, bit: OpBit) -> bool {
        if !io.fd(fd).writable {
            return false;
        }
        if let Some(i) = self.pending.iter().position(|p| p.fd == fd) {
            let err = take_error(fd);
            self.end(io, i, bit, -err, -libc::ECANCELED);
        }
        false
    }

    fn cancel(&mut self, io: &mut PollIo, fd: RawFd, target: u64, bit: OpBit) -> bool {
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.fd == fd && p.user_data == target)
        else {
            return false;
        };
        self.end(io, i, bit, -libc::ECANCELED, -libc::ECANCELED);
        true
    }

    fn forget(&mut self, fd: RawFd) {
        self.pending.retain(|p| p.fd != fd);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    fn expire(&mut self, io: &mut PollIo, now: Instant, bit: OpBit) {
        while let Some(i) = self.pending.iter().position(|p| p.deadline <= now) {
            self.end(io, i, bit, -libc::ECANCELED, -libc::ETIME);
        }
    }
}

/// Start a non-blocking connect: Done(0) if it completed at once, WouldBlock if it is
/// in progress.
fn start_connect(fd: RawFd, addr: SocketAddr) -> Outcome {
    match with_sock(fd, |s| s.connect(&addr.into())) {
        Ok(()) => Outcome::Done(0),
        Err(e) => match e.raw_os_error() {
            Some(libc::EINPROGRESS) | Some(libc::EAGAIN) => Outcome::WouldBlock,
            Some(code) => Outcome::Failed(code),
            None => Outcome::Failed(libc::EIO),
        },
    }
}

/// The pending error of a socket (SO_ERROR): 0 when a connect succeeded.
fn take_error(fd: RawFd) -> i32 {
    match with_sock(fd, |s| s.take_error()) {
        Ok(None) => 0,
        Ok(Some(e)) => e.raw_os_error().unwrap_or(libc::EIO),
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::driver::Driver;
    use crate::sys::op::testing::{driver, settle, wait_until};
    use crate::sys::op::Call;
    use crate::sys::poll::PollDriver;
    use crate::sys::uring::UringDriver;
    use std::net::TcpListener;
    use std::os::fd::{AsRawFd, OwnedFd};

    /// Connects whose memory or wait the driver still holds.
    struct ConnectsHeld;

    impl Call for ConnectsHeld {
        type Answer = usize;

        fn call_uring(self, core: &mut UringCore) -> usize {
            core.state::<Connects>().held
        }

        fn call_poll(self, core: &mut PollCore) -> usize {
            core.op_state::<Connecting>().1.pending.len()
        }

        fn call_fake(self, fake: &mut FakeDriver) -> usize {
            fake.pending_count()
        }
    }

    fn a_connect_releases_its_memory_after_both_completions<D: Driver>() {
        let Some(mut d) = driver::<D>() else { return };
        let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
        let addr = listener.local_addr().unwrap();
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let fd = OwnedFd::from(sock);
        let key = 5u32;
        let (name, timeout_name) = ((4u64 << 56) | 5, (5u64 << 56) | 5);
        let op = Connect {
            key,
            fd: fd.as_raw_fd(),
            addr,
            timeout: Duration::from_secs(10),
            timeout_user_data: timeout_name,
        };
        d.start(op, name);
        let mut got = Vec::new();
        wait_until(&mut d, &mut got, |g| g.len() >= 2);
        settle(&mut d, &mut got, Duration::from_millis(20));
        got.sort_by_key(|c| c.user_data >> 56);
        let results: Vec<(u64, i32)> = got.iter().map(|c| (c.user_data, c.result)).collect();
        assert_eq!(results, [(name, 0), (timeout_name, -libc::ECANCELED)]);
        assert!(got.iter().all(|c| !c.more()));
        // Nothing to finish: both completions reaped, the memory is released.
        assert_eq!(d.call(ConnectsHeld), 0);
        // The key is free for the next connect.
        let again = Connect {
            key,
            fd: fd.as_raw_fd(),
            addr,
            timeout: Duration::from_secs(10),
            timeout_user_data: timeout_name,
        };
        d.start(again, name);
        got.clear();
        wait_until(&mut d, &mut got, |g| g.len() >= 2);
        assert_eq!(d.call(ConnectsHeld), 0);
    }

    #[test]
    fn uring_a_connect_releases_its_memory_after_both_completions() {
        a_connect_releases_its_memory_after_both_completions::<UringDriver>();
    }

    #[test]
    fn poll_a_connect_releases_its_memory_after_both_completions() {
        a_connect_releases_its_memory_after_both_completions::<PollDriver>();
    }
}
