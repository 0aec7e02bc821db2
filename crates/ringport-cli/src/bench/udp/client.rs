//! One client socket's bookkeeping: the datagrams it has in flight, and what each echo
//! says about them (received intact, late, corrupt, reordered), into the run's
//! [`Tally`]. Time is nanoseconds since the run's start throughout.

use super::datagram::{Datagrams, Header};
use crate::bench::shared::new_histogram;
use hdrhistogram::Histogram;
use std::collections::VecDeque;

/// The run's counts. Only datagrams sent in the measured window count (`sent`,
/// `received`, `lost`, `late`, `reordered`, `behind`); a corrupt echo counts whenever it
/// comes. Once every counted datagram is resolved, `sent = received + lost + corrupt`
/// except for corrupt echoes too mangled to name their datagram, which also end up lost.
#[derive(Debug)]
pub struct Tally {
    pub sent: u64,
    /// Echoes back intact while their datagram was in flight.
    pub received: u64,
    /// Datagrams not echoed within the loss timeout.
    pub lost: u64,
    /// Intact echoes of datagrams already counted lost (or duplicates).
    pub late: u64,
    /// Intact echoes with a lower sequence number than one already echoed on the client.
    pub reordered: u64,
    /// Echoes that differ from what was sent (size, header or padding).
    pub corrupt: u64,
    /// Rate mode: scheduled sends skipped (too many in flight on the client, or its send
    /// buffer full).
    pub behind: u64,
    /// Send and receive errors (an ICMP port unreachable, say).
    pub socket_errors: u64,
    /// Round trips (ns) of the received datagrams.
    pub latency: Histogram<u64>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            sent: 0,
            received: 0,
            lost: 0,
            late: 0,
            reordered: 0,
            corrupt: 0,
            behind: 0,
            socket_errors: 0,
            latency: new_histogram(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u32,
    sent_ns: u64,
}

/// One client socket's datagram stream.
#[derive(Debug)]
pub struct ClientState {
    index: u32,
    next_seq: u32,
    /// Datagrams from this sequence number on count (`u32::MAX`: none yet, warm-up).
    first_counted: u32,
    /// Sent and not yet echoed or lost, in sequence (and so send-time) order.
    in_flight: VecDeque<InFlight>,
    highest_echoed: Option<u32>,
}

impl ClientState {
    pub fn new(index: u32) -> ClientState {
        ClientState {
            index,
            next_seq: 0,
            first_counted: u32::MAX,
            in_flight: VecDeque::new(),
            highest_echoed: None,
        }
    }

    /// Count the datagrams sent from now on (the measured window begins).
    pub fn start_counting(&mut self) {
        self.first_counted = self.next_seq;
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn counted(&self, seq: u32) -> bool {
        seq >= self.first_counted
    }

    /// The header of the next datagram, sent at `sent_ns`; `None` once the sequence
    /// numbers are used up (2^32 - 1 datagrams on one client).
    pub fn next_header(&self, sent_ns: u64) -> Option<Header> {
        (self.next_seq < u32::MAX).then_some(Header {
            client: self.index,
            seq: self.next_seq,
            sent_ns,
        })
    }

    /// The datagram of `header` (from [`ClientState::next_header`]) went out.
    pub fn sent(&mut self, header: Header, tally: &mut Tally) {
        debug_assert_eq!(header.seq, self.next_seq);
        self.in_flight.push_back(InFlight {
            seq: header.seq,
            sent_ns: header.sent_ns,
        });
        self.next_seq += 1;
        if self.counted(header.seq) {
            tally.sent += 1;
        }
    }

    /// An echo arrived at `now_ns`. True if it freed an in-flight slot.
    pub fn echo(&mut self, data: &[u8], d: &Datagrams, now_ns: u64, tally: &mut Tally) -> bool {
        let Some(header) = Header::parse(data) else {
            tally.corrupt += 1;
            return false;
        };
        if header.client != self.index || header.seq >= self.next_seq {
            tally.corrupt += 1;
            return false;
        }
        let seq = header.seq;
        let found = self
            .in_flight
            .binary_search_by_key(&seq, |f| f.seq)
            .ok()
            .and_then(|i| self.in_flight.remove(i));
        // The send time is checked against the record, not taken from the echo.
        let expected = Header {
            sent_ns: found.map_or(header.sent_ns, |f| f.sent_ns),
            ..header
        };
        if !d.is_intact(expected, data) {
            tally.corrupt += 1;
            return found.is_some();
        }
        let counted = self.counted(seq);
        if counted && self.highest_echoed.is_some_and(|high| seq < high) {
            tally.reordered += 1;
        }
        self.highest_echoed = self.highest_echoed.max(Some(seq));
        match found {
            Some(f) if counted => {
                tally.received += 1;
                let _ = tally
                    .latency
                    .record(now_ns.saturating_sub(f.sent_ns).max(1));
            }
            Some(_) => {}
            None if counted => tally.late += 1,
            None => {}
        }
        found.is_some()
    }

    /// Count as lost what was sent at or before `sent_by_ns` and is still in flight;
    /// returns how many slots that freed.
    pub fn expire(&mut self, sent_by_ns: u64, tally: &mut Tally) -> usize {
        let mut freed = 0;
        while let Some(f) = self.in_flight.front().copied() {
            if f.sent_ns > sent_by_ns {
                break;
            }
            self.in_flight.pop_front();
            freed += 1;
            if self.counted(f.seq) {
                tally.lost += 1;
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send `n` datagrams at times 0, 10, 20, ... and return them.
    fn send(c: &mut ClientState, d: &Datagrams, tally: &mut Tally, n: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let h = c.next_header(u64::from(c.next_seq) * 10).unwrap();
                let mut buf = Vec::new();
                d.build(h, &mut buf);
                c.sent(h, tally);
                buf
            })
            .collect()
    }

    #[test]
    fn echoes_in_order_are_received_with_their_round_trip() {
        let d = Datagrams::new(100).unwrap();
        let (mut c, mut t) = (ClientState::new(3), Tally::new());
        c.start_counting();
        let sent = send(&mut c, &d, &mut t, 3);
        for (i, dg) in sent.iter().enumerate() {
            assert!(c.echo(dg, &d, 1000 + i as u64 * 10, &mut t));
        }
        assert_eq!(
            (t.sent, t.received, t.lost, t.reordered, t.corrupt),
            (3, 3, 0, 0, 0)
        );
        assert_eq!(t.latency.len(), 3);
        assert!(t.latency.max() >= 1000 && t.latency.min() >= 999);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn out_of_order_echoes_count_as_reordered_and_duplicates_as_late() {
        let d = Datagrams::new(64).unwrap();
        let (mut c, mut t) = (ClientState::new(0), Tally::new());
        c.start_counting();
        let sent = send(&mut c, &d, &mut t, 3);
        assert!(c.echo(&sent[2], &d, 100, &mut t));
        assert!(c.echo(&sent[0], &d, 100, &mut t));
        assert!(c.echo(&sent[1], &d, 100, &mut t));
        assert_eq!((t.received, t.reordered), (3, 2));
        assert!(!c.echo(&sent[2], &d, 100, &mut t));
        assert_eq!((t.received, t.late, t.corrupt), (3, 1, 0));
    }

    #[test]
    fn changed_or_foreign_echoes_are_corrupt() {
        let d = Datagrams::new(64).unwrap();
        let (mut c, mut t) = (ClientState::new(1), Tally::new());
        c.start_counting();
        let sent = send(&mut c, &d, &mut t, 2);
        let mut bad = sent[0].clone();
        bad[40] ^= 0xff;
        assert!(c.echo(&bad, &d, 5, &mut t), "its slot is freed");
        let mut wrong_time = sent[1].clone();
        wrong_time[8] ^= 1;
        assert!(c.echo(&wrong_time, &d, 5, &mut t));
        let mut foreign = ClientState::new(2);
        let other = send(&mut foreign, &d, &mut Tally::new(), 1);
        assert!(!c.echo(&other[0], &d, 5, &mut t));
        assert!(!c.echo(&[1, 2, 3], &d, 5, &mut t));
        let unsent = Header {
            client: 1,
            seq: 9,
            sent_ns: 0,
        };
        let mut buf = Vec::new();
        d.build(unsent, &mut buf);
        assert!(!c.echo(&buf, &d, 5, &mut t));
        assert_eq!((t.received, t.corrupt), (0, 5));
    }

    #[test]
    fn unanswered_datagrams_expire_as_lost_and_a_late_echo_is_late() {
        let d = Datagrams::new(32).unwrap();
        let (mut c, mut t) = (ClientState::new(0), Tally::new());
        c.start_counting();
        let sent = send(&mut c, &d, &mut t, 4); // sent at 0, 10, 20, 30
        assert_eq!(c.expire(15, &mut t), 2);
        assert_eq!((t.lost, c.in_flight()), (2, 2));
        assert!(!c.echo(&sent[1], &d, 40, &mut t));
        assert!(c.echo(&sent[3], &d, 40, &mut t));
        assert_eq!((t.late, t.received), (1, 1));
        assert_eq!(t.sent, t.received + t.lost + c.in_flight() as u64);
    }

    #[test]
    fn warm_up_datagrams_do_not_count() {
        let d = Datagrams::new(32).unwrap();
        let (mut c, mut t) = (ClientState::new(0), Tally::new());
        let warm = send(&mut c, &d, &mut t, 2);
        c.start_counting();
        let measured = send(&mut c, &d, &mut t, 1);
        assert!(c.echo(&warm[0], &d, 50, &mut t));
        assert_eq!(c.expire(10, &mut t), 1, "the second warm-up datagram");
        assert!(c.echo(&measured[0], &d, 50, &mut t));
        assert_eq!((t.sent, t.received, t.lost), (1, 1, 0));
    }
}
