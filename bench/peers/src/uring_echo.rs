//! Bare io_uring echo server written directly on the `io-uring` crate: the
//! "limit" reference, with no framework between the loop and the ring.
//!
//! - One ring on one thread (SINGLE_ISSUER | DEFER_TASKRUN when the kernel
//!   accepts them, otherwise a plain ring).
//! - One multishot accept on the listener.
//! - One multishot recv per connection, drawing 4 KiB buffers from a
//!   provided-buffer ring (1024 buffers).
//! - Echo: if the connection has no send in flight, the received bytes are
//!   sent straight out of the ring buffer (zero copy) and that buffer goes
//!   back to the ring only when the send completes. If a send IS in flight,
//!   the bytes are copied into the connection's `pending` Vec and the buffer
//!   is returned at once; `pending` is sent when the in-flight send is done.
//!   So each connection has at most one send in flight and holds at most one
//!   ring buffer, and the byte order is preserved.
//! - EOF: stop reading, flush what is queued, close. A recv or send error
//!   drops what is queued and closes. The fd is closed (IORING_OP_CLOSE) only
//!   once no operation on it is in flight, so no completion can arrive for a
//!   freed connection slot.
//!
//! Deliberately not handled (it is a reference, not a framework): `pending`
//! is unbounded (multishot recv has no backpressure, so a client that sends
//! without reading grows it), and if every ring buffer is held by an
//! in-flight send (more than 1024 connections, all with stalled readers)
//! recv re-arms in a loop until a send completes.

use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::BUF_SIZE;

/// Submission queue size; the completion queue is 8 times larger.
const RING_ENTRIES: u32 = 1024;
/// Number of provided buffers (a power of two, at most 32768).
const NBUFS: u16 = 1024;
/// Buffer group id of the provided-buffer ring.
const BGID: u16 = 0;

// user_data: the operation in the top byte, the connection slot in the low
// 32 bits.
const OP_ACCEPT: u64 = 1 << 56;
const OP_RECV: u64 = 2 << 56;
const OP_SEND: u64 = 3 << 56;
const OP_CLOSE: u64 = 4 << 56;
const OP_MASK: u64 = 0xff << 56;

pub fn run(listener: TcpListener) -> io::Result<()> {
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(RING_ENTRIES * 8)
        .build(RING_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(RING_ENTRIES * 8)
                .build(RING_ENTRIES)
        })?;
    let mut bufs = BufRing::new(&ring)?;
    let mut conns = Slab::default();
    let lfd = listener.as_raw_fd();
    push(&mut ring, &accept_sqe(lfd))?;

    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(RING_ENTRIES as usize * 8);
    loop {
        // Hand the buffers recycled by the previous batch back to the kernel.
        bufs.publish();
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            // Interrupted, or the CQ is backed up: drain it below either way.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        cqes.clear();
        cqes.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(user_data, res, flags) in &cqes {
            let slot = (user_data & !OP_MASK) as usize;
            match user_data & OP_MASK {
                OP_ACCEPT => {
                    if res >= 0 {
                        let slot = conns.insert(Conn::new(res));
                        push(&mut ring, &recv_sqe(res, slot))?;
                    } else {
                        eprintln!("uring: accept: {}", io::Error::from_raw_os_error(-res));
                    }
                    if !cqueue::more(flags) {
                        push(&mut ring, &accept_sqe(lfd))?;
                    }
                }
                OP_RECV => on_recv(&mut ring, &mut bufs, &mut conns, slot, res, flags)?,
                OP_SEND => on_send(&mut ring, &mut bufs, &mut conns, slot, res)?,
                OP_CLOSE => {}
                _ => unreachable!("unknown user_data {user_data:#x}"),
            }
        }
    }
}

fn on_recv(
    ring: &mut IoUring,
    bufs: &mut BufRing,
    conns: &mut Slab,
    slot: usize,
    res: i32,
    flags: u32,
) -> io::Result<()> {
    let conn = conns.get(slot);
    let more = cqueue::more(flags);
    if !more {
        conn.recv_armed = false;
    }
    if res > 0 {
        let bid = cqueue::buffer_select(flags).expect("recv completion without a buffer");
        let len = res as usize;
        if conn.closing {
            // A send failed: discard.
            bufs.recycle(bid);
        } else if conn.sending.is_none() {
            // Zero copy: send from the ring buffer, recycle it when done.
            conn.sending = Some(Sending::Ring { bid, off: 0, len });
            push(ring, &send_sqe(conn, bufs, slot))?;
        } else {
            conn.pending.extend_from_slice(bufs.get(bid, len));
            bufs.recycle(bid);
        }
        if !more && !conn.closing {
            // The kernel may end a multishot recv at any time: re-arm.
            conn.recv_armed = true;
            push(ring, &recv_sqe(conn.fd, slot))?;
        }
    } else if res == -libc::ENOBUFS {
        // The buffer ring was empty, which ends the multishot: re-arm.
        if !more && !conn.closing {
            conn.recv_armed = true;
            push(ring, &recv_sqe(conn.fd, slot))?;
        }
    } else {
        // 0 is EOF: flush what is queued, then close. < 0 is an error.
        conn.closing = true;
        if res < 0 {
            conn.pending.clear();
        }
    }
    maybe_close(ring, conns, slot)
}

fn on_send(
    ring: &mut IoUring,
    bufs: &mut BufRing,
    conns: &mut Slab,
    slot: usize,
    res: i32,
) -> io::Result<()> {
    let conn = conns.get(slot);
    let mut sending = conn.sending.take().expect("send completion without a send");
    if res <= 0 {
        // The peer is gone: drop everything, and shut the socket down so the
        // multishot recv (if still armed) completes and the fd can close.
        if let Sending::Ring { bid, .. } = sending {
            bufs.recycle(bid);
        }
        conn.pending.clear();
        conn.closing = true;
        // SAFETY: `conn.fd` is an open socket owned by this connection; it is
        // closed only in `maybe_close`, after this.
        unsafe { libc::shutdown(conn.fd, libc::SHUT_RDWR) };
        return maybe_close(ring, conns, slot);
    }
    let done = match &mut sending {
        Sending::Ring { off, len, .. } => {
            *off += res as usize;
            *off == *len
        }
        Sending::Owned { buf, off } => {
            *off += res as usize;
            *off == buf.len()
        }
    };
    if !done {
        // Short send: send the rest from where it stopped.
        conn.sending = Some(sending);
        push(ring, &send_sqe(conn, bufs, slot))?;
        return Ok(());
    }
    // The send is complete: release its buffer, then send what queued up.
    let spare = match sending {
        Sending::Ring { bid, .. } => {
            bufs.recycle(bid);
            Vec::new()
        }
        Sending::Owned { mut buf, .. } => {
            buf.clear();
            buf
        }
    };
    if !conn.pending.is_empty() {
        // The drained Vec becomes the next pending one, keeping its capacity.
        let buf = std::mem::replace(&mut conn.pending, spare);
        conn.sending = Some(Sending::Owned { buf, off: 0 });
        push(ring, &send_sqe(conn, bufs, slot))?;
    } else if spare.capacity() > conn.pending.capacity() {
        conn.pending = spare;
    }
    maybe_close(ring, conns, slot)
}

/// Closes the connection once it is closing and nothing is in flight on it.
fn maybe_close(ring: &mut IoUring, conns: &mut Slab, slot: usize) -> io::Result<()> {
    let conn = conns.get(slot);
    if conn.closing && !conn.recv_armed && conn.sending.is_none() {
        let fd = conn.fd;
        conns.remove(slot);
        // The fd stays open until the close runs, so it cannot be reused by
        // an accept before then; the slot can be reused at once.
        push(
            ring,
            &opcode::Close::new(types::Fd(fd))
                .build()
                .user_data(OP_CLOSE),
        )?;
    }
    Ok(())
}

fn accept_sqe(lfd: RawFd) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(lfd))
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(OP_ACCEPT)
}

fn recv_sqe(fd: RawFd, slot: usize) -> squeue::Entry {
    // len 0: each completion fills at most one whole provided buffer.
    opcode::RecvMulti::new(types::Fd(fd), BGID)
        .build()
        .user_data(OP_RECV | slot as u64)
}

/// The send of the unsent part of `conn.sending`.
fn send_sqe(conn: &Conn, bufs: &BufRing, slot: usize) -> squeue::Entry {
    let data = match conn.sending.as_ref().expect("no send to submit") {
        Sending::Ring { bid, off, len } => &bufs.get(*bid, *len)[*off..],
        Sending::Owned { buf, off } => &buf[*off..],
    };
    opcode::Send::new(types::Fd(conn.fd), data.as_ptr(), data.len() as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(OP_SEND | slot as u64)
}

/// Pushes an SQE, submitting first if the submission queue is full.
fn push(ring: &mut IoUring, sqe: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every buffer an SQE points at outlives its operation:
        // a send's data is either a ring buffer, recycled only after the
        // send's completion, or the heap storage of the Vec held in
        // `Conn::sending` until that completion (moving the Vec or the Conn
        // does not move its heap storage). The recv buffers belong to the
        // leaked buffer ring. Accept and close point at no memory.
        if unsafe { ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// What a connection's single in-flight send is sending from.
enum Sending {
    /// Straight from provided buffer `bid`, bytes `off..len` not yet sent.
    Ring { bid: u16, off: usize, len: usize },
    /// From an owned copy, bytes `off..` not yet sent.
    Owned { buf: Vec<u8>, off: usize },
}

struct Conn {
    fd: RawFd,
    /// The multishot recv is still active (a completion with MORE is due).
    recv_armed: bool,
    /// Reading is over (EOF or error): close once nothing is in flight.
    closing: bool,
    sending: Option<Sending>,
    /// Bytes received while a send was in flight, sent next.
    pending: Vec<u8>,
}

impl Conn {
    fn new(fd: RawFd) -> Conn {
        let one: libc::c_int = 1;
        // SAFETY: `fd` is the socket just accepted, and `one` is a valid c_int
        // whose size is the length passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        Conn {
            fd,
            recv_armed: true,
            closing: false,
            sending: None,
            pending: Vec::new(),
        }
    }
}

/// Connection slots, indexed by the slot number in user_data.
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert(&mut self, conn: Conn) -> usize {
        if let Some(slot) = self.free.pop() {
            self.slots[slot] = Some(conn);
            slot
        } else {
            self.slots.push(Some(conn));
            self.slots.len() - 1
        }
    }

    fn get(&mut self, slot: usize) -> &mut Conn {
        self.slots[slot]
            .as_mut()
            .expect("completion for a free slot")
    }

    fn remove(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.free.push(slot);
    }
}

/// The provided-buffer ring: NBUFS entries shared with the kernel, plus the
/// NBUFS * BUF_SIZE bytes of buffers they point at. Both allocations are
/// leaked: they must outlive the registration, which lasts as long as the
/// ring, which lasts until the process exits.
struct BufRing {
    entries: *mut types::BufRingEntry,
    bufs: *mut u8,
    /// Local tail: entries before it are written, published by `publish`.
    tail: u16,
}

impl BufRing {
    fn new(ring: &IoUring) -> io::Result<BufRing> {
        let size = NBUFS as usize * std::mem::size_of::<types::BufRingEntry>();
        let layout = Layout::from_size_align(size, 4096).expect("buffer ring layout");
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            handle_alloc_error(layout);
        }
        let bufs = Box::leak(vec![0u8; NBUFS as usize * BUF_SIZE].into_boxed_slice()).as_mut_ptr();
        // SAFETY: `entries` is page-aligned, holds NBUFS entries and is never
        // freed, so it is valid for as long as the registration.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, NBUFS, BGID, 0)?
        };
        let mut br = BufRing {
            entries,
            bufs,
            tail: 0,
        };
        for bid in 0..NBUFS {
            br.recycle(bid);
        }
        br.publish();
        Ok(br)
    }

    /// The first `len` bytes of buffer `bid`, which the kernel has filled and
    /// handed to us (it is not in the ring until recycled).
    fn get(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < NBUFS && len <= BUF_SIZE);
        // SAFETY: in bounds of the leaked buffer area (checked above); the
        // kernel does not write buffer `bid` while we own it, i.e. between
        // its recv completion and its `recycle`.
        unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * BUF_SIZE), len) }
    }

    /// Queues buffer `bid` for the kernel (visible after `publish`).
    fn recycle(&mut self, bid: u16) {
        let idx = (self.tail & (NBUFS - 1)) as usize;
        // SAFETY: `idx < NBUFS`. At most NBUFS buffers exist and each is in
        // the ring at most once, so the kernel is not using the entry at the
        // unpublished tail; the kernel only reads the entries, never writes.
        let entry = unsafe { &mut *self.entries.add(idx) };
        // SAFETY: `bid < NBUFS` (it came from the kernel or from 0..NBUFS),
        // so the offset is inside the buffer area.
        entry.set_addr(unsafe { self.bufs.add(bid as usize * BUF_SIZE) } as u64);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the recycled buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail is a 2-byte-aligned u16 inside entry 0 (the
        // kernel's layout); the kernel only reads it, so an atomic store is
        // the way to update it, and Release orders the entry writes first.
        let tail = unsafe { &*types::BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}
