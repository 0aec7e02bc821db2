//! A fake backend for tests: no kernel, no sockets. It records every operation started
//! and completes them only when the test says so (scripted completions), except those
//! the kernel finishes at once by itself (a cancel, a close), which it completes at once.
//! A worker driven with it steps through a connection's life in microseconds, in any
//! order of events the test wants: a cancel racing a completion, a partial send, EOF in
//! the middle of a send.
//!
//! It keeps the contract of `sys/mod.rs`: every operation ends with exactly one final
//! completion; a cancel completes its target with -ECANCELED (or itself with -ENOENT when
//! the target had already completed); a send's chunks stay here until it is reclaimed (`ReclaimSend`).

use super::driver::{Driver, DriverConfig};
use super::op::{Call, Op};
use super::outbound::{Chunk, Outbound};
use super::Completion;
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// What an operation started on the fake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FakeOp {
    Accept,
    Recv,
    /// A send covering this many bytes.
    Send(usize),
    Connect,
    ConnectTimeout,
    Shutdown,
    Close,
    /// A cancel of the operation with this name.
    Cancel(u64),
    Doorbell,
    Poll,
    RecvFrom,
    SendTo,
    /// A step of a file send (the test completes it with what reached the socket).
    SendFile,
    /// A write to a file (a receive into a file).
    WriteFile,
}

/// The fake backend.
#[derive(Default)]
pub(crate) struct FakeDriver {
    /// Every operation started, in order, with its name.
    pub started: Vec<(FakeOp, u64)>,
    /// Operations started and not finally completed, by name.
    pending: HashMap<u64, FakeOp>,
    /// Completions the next drain hands over.
    ready: Vec<Completion>,
    /// Received bytes lent by the receive completions of this batch.
    recv_data: Vec<Vec<u8>>,
    /// The chunks of each send in flight, by key.
    sends: HashMap<u32, Vec<Chunk>>,
    /// The bytes the sends' completions said went out, in order.
    pub wire: Vec<u8>,
    /// The doorbell read's name while it is in flight.
    doorbell: Option<u64>,
    /// The buffers of file writes in flight, by key.
    pub writes: HashMap<u32, Vec<u8>>,
}

impl FakeDriver {
    /// Record an operation started (the ops' `start_fake` call this).
    pub(crate) fn start(&mut self, op: FakeOp, user_data: u64) {
        self.started.push((op, user_data));
        let earlier = self.pending.insert(user_data, op);
        assert!(earlier.is_none(), "{op:?} started twice under one name");
    }

    /// The operation named `user_data` is in flight.
    pub(crate) fn is_pending(&self, user_data: u64) -> bool {
        self.pending.contains_key(&user_data)
    }

    /// How many operations are in flight.
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Post a completion of the operation named `user_data` (its last unless `more`).
    pub(crate) fn complete(&mut self, user_data: u64, result: i32, more: bool) {
        assert!(
            self.pending.contains_key(&user_data),
            "completing {user_data:#x}, which is not in flight"
        );
        if let (Some(FakeOp::Send(_)), Ok(sent)) =
            (self.pending.get(&user_data), usize::try_from(result))
        {
            let chunks = &self.sends[&(user_data as u32)];
            let bytes = chunks.iter().flat_map(|c| c.as_slice().iter().copied());
            self.wire.extend(bytes.take(sent));
        }
        if !more {
            self.pending.remove(&user_data);
        }
        self.ready.push(Completion::new(user_data, result, more, 0));
    }

    /// Post a receive completion carrying `data` (the multishot receive goes on).
    pub(crate) fn receive(&mut self, user_data: u64, data: &[u8]) {
        assert!(self.pending.get(&user_data) == Some(&FakeOp::Recv));
        let idx = self.recv_data.len() as u32;
        self.recv_data.push(data.to_vec());
        self.ready.push(Completion::new(
            user_data,
            data.len() as i32,
            true,
            idx << 16,
        ));
    }

    /// Post a completion that names no operation in flight (a stale or a forged one).
    pub(crate) fn inject(&mut self, c: Completion) {
        self.ready.push(c);
    }

    /// A send: its chunks move here until `reclaim`; returns the bytes it covers.
    pub(crate) fn send(&mut self, key: u32, out: &mut Outbound, user_data: u64) -> usize {
        let mut chunks = Vec::new();
        let total = out.take_front(1024, &mut chunks);
        assert!(self.sends.insert(key, chunks).is_none(), "one send per key");
        self.start(FakeOp::Send(total), user_data);
        total
    }

    /// Give a completed send's unsent chunks back.
    pub(crate) fn reclaim(&mut self, key: u32, sent: usize, out: &mut Outbound) {
        let mut chunks = self.sends.remove(&key).expect("a send in flight");
        out.give_back(&mut chunks, sent);
    }

    /// A file write: its buffer stays here until `reclaim_write`.
    pub(crate) fn write_file(&mut self, key: u32, buf: Vec<u8>, user_data: u64) {
        assert!(self.writes.insert(key, buf).is_none(), "one write per key");
        self.start(FakeOp::WriteFile, user_data);
    }

    /// Give a completed file write's buffer back.
    pub(crate) fn reclaim_write(&mut self, key: u32) -> Option<Vec<u8>> {
        self.writes.remove(&key)
    }

    /// Sends whose chunks the fake holds.
    pub(crate) fn sends_held(&self) -> usize {
        self.sends.len()
    }

    /// A cancel: the target completes with -ECANCELED at once (with a connect, its
    /// linked timeout too), the cancel with 0; or the cancel with -ENOENT if the target
    /// had already completed.
    pub(crate) fn cancel(&mut self, target: u64, user_data: u64) {
        self.started.push((FakeOp::Cancel(target), user_data));
        let found = match self.pending.remove(&target) {
            Some(op) => {
                self.ready
                    .push(Completion::new(target, -libc::ECANCELED, false, 0));
                if op == FakeOp::Connect {
                    // io_uring: the linked timeout ends with its connect.
                    let timeout = self
                        .pending
                        .iter()
                        .find(|(ud, op)| {
                            **op == FakeOp::ConnectTimeout && **ud as u32 == target as u32
                        })
                        .map(|(ud, _)| *ud);
                    if let Some(t) = timeout {
                        self.complete(t, -libc::ECANCELED, false);
                    }
                }
                true
            }
            None => false,
        };
        let result = if found { 0 } else { -libc::ENOENT };
        self.ready
            .push(Completion::new(user_data, result, false, 0));
    }

    /// A close: done at once.
    pub(crate) fn close(&mut self, fd: OwnedFd, user_data: u64) {
        drop(fd);
        self.started.push((FakeOp::Close, user_data));
        self.ready.push(Completion::new(user_data, 0, false, 0));
    }

    /// The doorbell read (one at a time).
    pub(crate) fn doorbell(&mut self, user_data: u64) {
        if self.doorbell.is_none() {
            self.doorbell = Some(user_data);
            self.start(FakeOp::Doorbell, user_data);
        }
    }

    /// The doorbell read is in flight (its completion not yet drained).
    pub(crate) fn doorbell_armed(&self) -> bool {
        self.doorbell.is_some()
    }
}

impl Driver for FakeDriver {
    type RecvBuf = usize;

    fn new(_config: DriverConfig) -> io::Result<Self> {
        Ok(FakeDriver::default())
    }

    fn setup_name(&self) -> &'static str {
        "fake (scripted completions)"
    }

    fn start<O: Op>(&mut self, op: O, user_data: u64) -> O::Started {
        op.start_fake(self, user_data)
    }

    fn call<C: Call>(&mut self, call: C) -> C::Answer {
        call.call_fake(self)
    }

    fn claim_recv(&mut self, c: &Completion) -> Option<usize> {
        let idx = (c.flags >> 16) as usize;
        let data = self.recv_data.get(idx)?;
        (c.result >= 0 && c.result as usize == data.len()).then_some(idx)
    }

    fn recv_bytes(&self, buf: &usize) -> &[u8] {
        &self.recv_data[*buf]
    }

    fn recycle(&mut self, _buf: usize) {}

    type DatagramBuf = ();

    fn claim_datagram(&mut self, _c: &Completion) -> Option<()> {
        None // the engine's scenarios script no datagrams
    }

    fn datagram<'a>(&'a self, _buf: &'a ()) -> super::Datagram<'a> {
        super::Datagram {
            from: None,
            data: &[],
            truncated: false,
        }
    }

    fn recycle_datagram(&mut self, _buf: ()) {}

    fn submit_and_wait(
        &mut self,
        _want: u32,
        _min_wait: Duration,
        _timeout: Option<Duration>,
    ) -> io::Result<()> {
        // Received bytes are kept for the test's whole (short) life: indices stay valid.
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Completion>) -> bool {
        if let Some(bell) = self.doorbell {
            if self.ready.iter().any(|c| c.user_data == bell) {
                self.doorbell = None;
            }
        }
        out.append(&mut self.ready);
        false
    }

    fn shutdown(&mut self) {}
}
