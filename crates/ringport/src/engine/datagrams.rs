//! The worker's datagram sockets: one per `Udp` of the engine, bound on every worker
//! with SO_REUSEPORT. Each has one multishot receive (re-armed whenever it ends: an
//! error, a zero-length datagram on io_uring, ENOBUFS) and any number of sends in flight,
//! one operation per datagram, named by the socket's index and a 24-bit sequence number.
//! What is queued or in flight is bounded in bytes per socket; a datagram beyond the
//! bound is dropped and counted.

use super::callbacks::guard;
use super::worker::Worker;
use crate::admission::{DatagramGate, RefuseReason};
use crate::config::EngineConfig;
use crate::core::op_name::{encode, GEN_MASK};
use crate::core::{Ledger, OpKind};
use crate::error::Error;
use crate::handler::Handler;
use crate::stats::{bump, WorkerStats};
use crate::sys;
use crate::sys::int_map::IntMap;
use crate::sys::op::{Cancel, RecvFromMulti, SendTo};
use crate::sys::{Completion, Driver};
use crate::udp::{DatagramHandler, Outgoing, SendQueue, Udp, UdpCtx, UdpError};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// One datagram socket of this worker.
pub(crate) struct DatagramSocket {
    pub fd: OwnedFd,
    pub local: SocketAddr,
    /// The peer of a connected socket.
    pub peer: Option<SocketAddr>,
    pub handler: Arc<dyn DatagramHandler>,
    /// Its receive, when armed.
    pub ledger: Ledger,
    /// Datagrams queued by callbacks and handles in this batch, not yet started.
    queue: SendQueue,
    /// Bytes in flight; with the queue's, against `limit`.
    held: usize,
    limit: usize,
    /// Sends in flight by sequence number: where to, how many bytes, how many datagrams.
    in_flight: IntMap<u32, (SocketAddr, usize, u32)>,
    next_seq: u32,
    /// Allow/deny lists and per-source rates, this worker's share.
    gate: DatagramGate,
    /// Runs of equal-size datagrams to one peer go out as one GSO send.
    gso: bool,
}

impl DatagramSocket {
    pub(crate) fn new(
        fd: OwnedFd,
        (local, peer): (SocketAddr, Option<SocketAddr>),
        handler: Arc<dyn DatagramHandler>,
        limit: usize,
        gate: DatagramGate,
        gso: bool,
    ) -> DatagramSocket {
        DatagramSocket {
            gate,
            gso,
            fd,
            local,
            peer,
            handler,
            ledger: Ledger::default(),
            queue: SendQueue {
                room: limit,
                ..SendQueue::default()
            },
            held: 0,
            limit,
            in_flight: IntMap::default(),
            next_seq: 0,
        }
    }

    /// Its handler, and what a callback of it (socket `index` of the engine) may do.
    fn callback<'a>(
        &'a mut self,
        index: usize,
        mailbox: &'a Arc<crate::engine::mailbox::Mailbox>,
    ) -> (&'a dyn DatagramHandler, UdpCtx<'a>) {
        let ctx = UdpCtx {
            local: self.local,
            peer: self.peer,
            index: index as u16,
            mailbox,
            out: &mut self.queue,
        };
        (&*self.handler, ctx)
    }

    /// Nothing is armed, queued or in flight: the socket may close.
    pub(crate) fn idle(&self) -> bool {
        self.ledger.is_empty() && self.queue.items.is_empty() && self.in_flight.is_empty()
    }
}

/// The most datagrams one GSO send carries, and the largest segment coalesced: what a
/// 1,500-byte IPv4 frame carries (GSO needs each segment to fit the path's MTU; larger
/// datagrams go one by one and the kernel fragments them as usual).
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_SEGMENT: usize = 1472;
const GSO_MAX_BYTES: usize = 65_000;

/// How many of `queue[from..]`'s datagrams one send can carry: a run of equal-size ones
/// to one peer (GSO), or one.
fn run_len(queue: &[Outgoing], from: usize, gso: bool) -> usize {
    let (to, len) = (queue[from].to, queue[from].data.len());
    if !gso || len == 0 || len > GSO_MAX_SEGMENT {
        return 1;
    }
    let most = (GSO_MAX_BYTES / len).min(GSO_MAX_SEGMENTS);
    queue[from..]
        .iter()
        .take(most)
        .take_while(|o| o.to == to && o.data.len() == len)
        .count()
}

/// Start the queued sends of `sock` (index `i`), runs of equal-size datagrams to one
/// peer as one GSO send; count what the queue refused.
fn flush<D: Driver>(io: &mut D, stats: &WorkerStats, i: usize, sock: &mut DatagramSocket) {
    if sock.queue.dropped > 0 {
        bump(
            &stats.datagrams_dropped,
            std::mem::take(&mut sock.queue.dropped),
        );
    }
    let mut queue = std::mem::take(&mut sock.queue.items);
    sock.queue.bytes = 0;
    let mut at = 0;
    while at < queue.len() {
        let count = run_len(&queue, at, sock.gso);
        let run = &queue[at..at + count];
        at += count;
        let total: usize = run.iter().map(|o| o.data.len()).sum();
        if sock.in_flight.len() > GEN_MASK as usize {
            bump(&stats.datagrams_dropped, count as u64); // 16 million sends in flight
            continue;
        }
        let (data, segment) = match run {
            [one] => (one.data.clone(), 0),
            _ => {
                let mut joined = bytes::BytesMut::with_capacity(total);
                run.iter().for_each(|o| joined.extend_from_slice(&o.data));
                (joined.freeze(), run[0].data.len() as u16)
            }
        };
        let seq = sock.next_seq;
        sock.next_seq = (seq + 1) & GEN_MASK;
        sock.held += total;
        sock.in_flight.insert(seq, (run[0].to, total, count as u32));
        let op = SendTo {
            fd: sock.fd.as_raw_fd(),
            to: run[0].to.into(),
            data,
            segment,
        };
        io.start(op, encode(OpKind::SendTo, i as u32, seq));
    }
    // Keep the queue's memory for the next batch.
    queue.clear();
    sock.queue.items = queue;
    sock.queue.room = sock.limit.saturating_sub(sock.held);
}

/// The engine's datagram sockets, bound: each worker's list (by the engine's index;
/// `None` where a socket lives on another worker), each socket's address and home.
pub(super) struct Bound {
    pub per_worker: Vec<Vec<Option<DatagramSocket>>>,
    pub addrs: Vec<SocketAddr>,
    pub homes: Vec<Option<usize>>,
}

/// Bind every datagram socket: once per worker with SO_REUSEPORT (the kernel spreads
/// datagrams over the workers by their addresses, one peer always to the same worker;
/// port 0 is resolved by the first bind), or on its one worker (a connected socket, or
/// `Udp::on_worker`).
pub(super) fn bind_all(config: &EngineConfig, udp: &[Udp]) -> Result<Bound, Error> {
    let n = config.workers;
    let mut b = Bound {
        per_worker: (0..n).map(|_| Vec::new()).collect(),
        addrs: Vec::new(),
        homes: Vec::new(),
    };
    for u in udp {
        let one_worker = u.connect.is_some() || !u.groups_v4.is_empty() || !u.groups_v6.is_empty();
        let home = u.worker.or(one_worker.then_some(0)).map(|w| w % n);
        let mut actual = u.addr;
        for (w, list) in b.per_worker.iter_mut().enumerate() {
            if home.is_some_and(|h| h != w) {
                list.push(None);
                continue;
            }
            let sock = sys::socket::datagram(actual, u.recv_buffer, u.send_buffer)?;
            if let Some(peer) = u.connect {
                sock.connect(&peer.into())?;
            }
            for (group, interface) in &u.groups_v4 {
                sock.join_multicast_v4(group, interface)?;
            }
            for (group, interface) in &u.groups_v6 {
                sock.join_multicast_v6(group, *interface)?;
            }
            if b.addrs.len() == b.homes.len() {
                actual = sock
                    .local_addr()?
                    .as_socket()
                    .ok_or_else(|| Error::NoAddress(format!("{}", u.addr)))?;
                b.addrs.push(actual);
            }
            let gate = DatagramGate::new(&u.admission)
                .map_err(|e| Error::Config(format!("datagram admission of {}: {e}", u.addr)))?;
            let handler = u.handler.clone();
            let (names, limit) = ((actual, u.connect), u.send_queue_bytes);
            let gso = sys::socket::udp_gso(&sock);
            let s = DatagramSocket::new(sock.into(), names, handler, limit, gate, gso);
            list.push(Some(s));
        }
        b.homes.push(home);
    }
    Ok(b)
}

impl<H: Handler, D: Driver> Worker<H, D> {
    /// Arm socket `i`'s receive (unless armed, or stopping).
    pub(super) fn arm_recv_from(&mut self, i: usize) {
        let Some(Some(sock)) = self.datagrams.get_mut(i) else {
            return; // not on this worker
        };
        if sock.ledger.has(OpKind::RecvFrom) || self.stop.asked {
            return;
        }
        sock.ledger.record(OpKind::RecvFrom);
        let op = RecvFromMulti {
            fd: sock.fd.as_raw_fd(),
        };
        self.io.start(op, encode(OpKind::RecvFrom, i as u32, 0));
    }

    /// A completion of socket `i`'s receive: a datagram, or its end.
    pub(super) fn on_recv_from(&mut self, i: usize, c: Completion) {
        let Some(Some(sock)) = self.datagrams.get_mut(i) else {
            return;
        };
        let ended = !c.more();
        if ended {
            sock.ledger.complete(OpKind::RecvFrom);
        }
        if c.result >= 0 {
            self.deliver_datagram(i, &c);
        } else {
            let errno = -c.result;
            match errno {
                libc::ECANCELED => {}
                libc::ENOBUFS => bump(&self.stats.enobufs, 1),
                _ => {
                    bump(&self.stats.datagram_errors, 1);
                    let error = match errno {
                        libc::ECONNREFUSED => UdpError::Refused,
                        _ => UdpError::Receive { errno },
                    };
                    self.run_datagram_callback(i, |h, ctx| h.on_error(ctx, error));
                }
            }
        }
        if ended {
            self.arm_recv_from(i);
        }
    }

    /// The datagram a receive completion carries, to the handler.
    fn deliver_datagram(&mut self, i: usize, c: &Completion) {
        let Some(buf) = self.io.claim_datagram(c) else {
            tracing::error!(result = c.result, "a datagram completion with no buffer");
            return;
        };
        let Some(Some(sock)) = self.datagrams.get_mut(i) else {
            return self.io.recycle_datagram(buf);
        };
        let (io, stats) = (&self.io, &*self.stats);
        let dg = io.datagram(&buf);
        let refused = match dg.from {
            Some(from) if !sock.gate.is_open() => sock.gate.admit(from.ip(), self.now).err(),
            _ => None,
        };
        match (dg.from, refused) {
            (None, _) => bump(&stats.datagram_errors, 1), // a family the engine does not speak
            (Some(_), Some(RefuseReason::Denied | RefuseReason::NotAllowed)) => {
                bump(&stats.datagrams_denied, 1)
            }
            (Some(_), Some(_)) => bump(&stats.datagrams_rate_limited, 1),
            (Some(from), None) => {
                let (handler, mut ctx) = sock.callback(i, &self.mailbox);
                if dg.truncated {
                    bump(&stats.datagrams_truncated, 1);
                    guard(stats, || handler.on_truncated(&mut ctx, from, dg.data));
                } else {
                    bump(&stats.datagrams_in, 1);
                    bump(&stats.datagram_bytes_in, dg.data.len() as u64);
                    guard(stats, || handler.on_datagram(&mut ctx, from, dg.data));
                }
            }
        }
        self.io.recycle_datagram(buf);
    }

    /// Run a callback of socket `i`'s handler, then start what it queued.
    fn run_datagram_callback(
        &mut self,
        i: usize,
        f: impl FnOnce(&dyn DatagramHandler, &mut UdpCtx<'_>),
    ) {
        let Some(Some(sock)) = self.datagrams.get_mut(i) else {
            return;
        };
        let (handler, mut ctx) = sock.callback(i, &self.mailbox);
        guard(&self.stats, || f(handler, &mut ctx));
    }

    /// A send of socket `i` (sequence `seq`) completed.
    pub(super) fn on_sent_to(&mut self, i: usize, seq: u32, c: Completion) {
        let Some(Some(sock)) = self.datagrams.get_mut(i) else {
            return;
        };
        let Some((to, len, count)) = sock.in_flight.remove(&seq) else {
            bump(&self.stats.stale_completions, 1);
            return;
        };
        sock.held -= len;
        sock.queue.room = sock.limit.saturating_sub(sock.held);
        if c.result >= 0 {
            bump(&self.stats.datagrams_out, u64::from(count));
            bump(&self.stats.datagram_bytes_out, c.result as u64);
            return;
        }
        if count > 1 && sock.gso {
            // The kernel refused to segment (a device without GSO, a segment above the
            // path MTU): send one by one from now on.
            tracing::warn!(%to, errno = -c.result, "UDP GSO send refused; sending datagrams one by one");
            sock.gso = false;
        }
        bump(&self.stats.datagram_send_errors, u64::from(count));
        let error = UdpError::SendFailed {
            to,
            len,
            errno: -c.result,
        };
        self.run_datagram_callback(i, |h, ctx| h.on_error(ctx, error));
    }

    /// A datagram posted from another thread for socket `i`.
    pub(super) fn on_send_to_message(&mut self, i: u16, out: Outgoing) {
        let Some(Some(sock)) = self.datagrams.get_mut(usize::from(i)) else {
            bump(&self.stats.datagrams_dropped, 1);
            return;
        };
        sock.queue.push(out);
    }

    /// After the batch's callbacks: start what every socket queued (one pass, so a run of
    /// echoes to one peer can go out as one GSO send).
    pub(super) fn flush_datagram_sockets(&mut self) {
        for (i, sock) in self.datagrams.iter_mut().enumerate() {
            if let Some(sock) = sock
                .as_mut()
                .filter(|s| !s.queue.items.is_empty() || s.queue.dropped > 0)
            {
                flush(&mut self.io, &self.stats, i, sock);
            }
        }
    }

    /// Shutdown: stop receiving (sends in flight finish; the worker waits for them).
    pub(super) fn stop_datagram_sockets(&mut self) {
        for (i, sock) in self.datagrams.iter().enumerate() {
            let Some(sock) = sock else { continue };
            if sock.ledger.has(OpKind::RecvFrom) {
                let cancel = Cancel {
                    target: encode(OpKind::RecvFrom, i as u32, 0),
                    fd: sock.fd.as_raw_fd(),
                };
                self.io.start(cancel, encode(OpKind::Ignore, 0, 0));
            }
        }
    }

    /// Every datagram socket is done (nothing armed, queued or in flight).
    pub(super) fn datagram_sockets_idle(&self) -> bool {
        self.datagrams.iter().flatten().all(DatagramSocket::idle)
    }
}
