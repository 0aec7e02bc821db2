//! The message stream of one connection, shared by every mode: message `seq` of the
//! connection with token `token` is `shape.fill(pattern::seed(token, seq))` (the pattern
//! body, framed by the codec under test), and `EchoRx` checks the echoed bytes against
//! it, in any chunking.

use crate::pattern::{self, Shape};
use bytes::{Bytes, BytesMut};
use ringport::Conn;
use std::collections::VecDeque;
use std::time::Instant;

/// Messages up to this size are built on the stack and copied by `Conn::send`.
const STACK_MSG: usize = 512;

/// Queue message `seq` of `token` on `conn`.
pub fn send_message(conn: &mut Conn, token: u64, seq: u64, shape: &Shape) {
    let seed = pattern::seed(token, seq);
    let size = shape.len();
    if size <= STACK_MSG {
        let mut buf = [0u8; STACK_MSG];
        shape.fill(seed, &mut buf[..size]);
        conn.send(&buf[..size]);
    } else {
        conn.send_bytes(message(token, seq, shape));
    }
}

/// Message `seq` of `token` as an owned buffer (for `ConnRef::send`).
pub fn message(token: u64, seq: u64, shape: &Shape) -> Bytes {
    let mut buf = BytesMut::zeroed(shape.len());
    shape.fill(pattern::seed(token, seq), &mut buf);
    buf.freeze()
}

/// What one batch of echoed bytes amounted to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fed {
    /// Messages completed (good or bad).
    pub completed: usize,
    /// Of those, messages with a wrong byte.
    pub bad: usize,
    /// Bytes arrived with no message in flight: the rest of the batch was dropped.
    pub unsolicited: bool,
}

/// The receive side of one connection's stream.
#[derive(Debug)]
pub struct EchoRx {
    token: u64,
    /// Sequence number of the message being received, and how far into it.
    pub seq: u64,
    off: usize,
    /// The message being received has a wrong byte.
    bad: bool,
}

impl EchoRx {
    pub fn new(token: u64) -> EchoRx {
        EchoRx {
            token,
            seq: 0,
            off: 0,
            bad: false,
        }
    }

    /// Check `data` against the messages in flight; `in_flight` holds the send time of
    /// each, oldest first, and loses its front as each completes. `done(sent_at, ok)`
    /// runs for every completed message.
    pub fn feed(
        &mut self,
        data: &[u8],
        shape: &Shape,
        in_flight: &mut VecDeque<Instant>,
        mut done: impl FnMut(Instant, bool),
    ) -> Fed {
        let size = shape.len();
        let mut fed = Fed::default();
        let mut rest = data;
        while !rest.is_empty() {
            let Some(&sent) = in_flight.front() else {
                fed.unsolicited = true;
                break;
            };
            let n = (size - self.off).min(rest.len());
            let seed = pattern::seed(self.token, self.seq);
            if !self.bad && !shape.matches(seed, self.off, &rest[..n]) {
                self.bad = true;
            }
            self.off += n;
            rest = &rest[n..];
            if self.off < size {
                break;
            }
            in_flight.pop_front();
            fed.completed += 1;
            if self.bad {
                fed.bad += 1;
            }
            done(sent, !self.bad);
            self.seq += 1;
            self.off = 0;
            self.bad = false;
        }
        fed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_completes_messages_in_any_chunking_and_flags_extra_bytes() {
        let size = &Shape::raw(10);
        let mut wire = Vec::new();
        for seq in 0..3 {
            wire.extend_from_slice(&message(7, seq, size));
        }
        let now = Instant::now();
        let mut in_flight: VecDeque<Instant> = [now; 3].into_iter().collect();
        let mut rx = EchoRx::new(7);
        let mut oks = 0;
        let a = rx.feed(&wire[..13], size, &mut in_flight, |_, ok| {
            oks += ok as usize
        });
        let b = rx.feed(&wire[13..], size, &mut in_flight, |_, ok| {
            oks += ok as usize
        });
        assert_eq!((a.completed, b.completed, oks), (1, 2, 3));
        assert!(in_flight.is_empty());
        let c = rx.feed(b"x", size, &mut in_flight, |_, _| {});
        assert!(c.unsolicited);

        let mut bad = message(7, 0, size).to_vec();
        bad[3] ^= 1;
        in_flight.push_back(now);
        let d = EchoRx::new(7).feed(&bad, size, &mut in_flight, |_, _| {});
        assert_eq!((d.completed, d.bad), (1, 1));
    }
}
