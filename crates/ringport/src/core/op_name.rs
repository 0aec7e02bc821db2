//! The 64-bit name of every submitted operation: what it is, which slot, which generation.
//!
//! Layout: `kind:8 | generation:24 | slot:32`. A completion is delivered only if its
//! slot still holds the same generation; otherwise it is stale, counted and dropped.

/// A connection's place in its worker's table: the slot and the generation of its
/// current tenant. Completions and the worker's own lists carry it; handles from other
/// threads carry a `ConnId`, checked by serial number instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnKey {
    pub slot: u32,
    pub gen: u32,
}

impl ConnKey {
    /// The name of this connection's operation of `kind`.
    pub(crate) fn name(self, kind: OpKind) -> u64 {
        encode(kind, self.slot, self.gen)
    }
}

/// What an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpKind {
    /// Multishot accept; the slot field is the listener index.
    Accept = 1,
    /// Multishot receive of a connection.
    Recv = 2,
    /// The connection's one in-flight sendmsg.
    Send = 3,
    /// Outbound connect.
    Connect = 4,
    /// The connect's linked timeout.
    ConnectTimeout = 5,
    /// shutdown(SHUT_WR).
    Shutdown = 6,
    /// The final close of a connection's fd.
    Close = 7,
    /// The mailbox doorbell read.
    Doorbell = 8,
    /// A cancel request or a fire-and-forget close: its completion is ignored.
    Ignore = 9,
    /// The poll of a watched descriptor; the key is the watch's slot in its table.
    Watch = 10,
    /// The multishot receive of a datagram socket; the slot is the socket's index.
    RecvFrom = 11,
    /// One datagram sent; the slot is the socket's index, the generation the send's
    /// sequence number on it.
    SendTo = 12,
    /// A write of received bytes to the file a receive goes to (`Conn::receive_to_file`).
    FileWrite = 13,
}

impl OpKind {
    /// Every kind (tests walk them).
    #[cfg(test)]
    pub(crate) const ALL: [OpKind; 13] = [
        OpKind::Accept,
        OpKind::Recv,
        OpKind::Send,
        OpKind::Connect,
        OpKind::ConnectTimeout,
        OpKind::Shutdown,
        OpKind::Close,
        OpKind::Doorbell,
        OpKind::Ignore,
        OpKind::Watch,
        OpKind::RecvFrom,
        OpKind::SendTo,
        OpKind::FileWrite,
    ];

    pub(crate) fn from_u8(v: u8) -> Option<OpKind> {
        Some(match v {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Connect,
            5 => OpKind::ConnectTimeout,
            6 => OpKind::Shutdown,
            7 => OpKind::Close,
            8 => OpKind::Doorbell,
            9 => OpKind::Ignore,
            10 => OpKind::Watch,
            11 => OpKind::RecvFrom,
            12 => OpKind::SendTo,
            13 => OpKind::FileWrite,
            _ => return None,
        })
    }
}

/// Generations wrap at 24 bits.
pub(crate) const GEN_MASK: u32 = 0xff_ffff;

/// Pack an operation name.
pub(crate) fn encode(kind: OpKind, slot: u32, gen: u32) -> u64 {
    (kind as u64) << 56 | ((gen & GEN_MASK) as u64) << 32 | slot as u64
}

/// Unpack an operation name; `None` for a kind this engine never submits. (For an
/// accept the key's slot is the listener's index.)
pub(crate) fn decode(user_data: u64) -> Option<(OpKind, ConnKey)> {
    let kind = OpKind::from_u8((user_data >> 56) as u8)?;
    let key = ConnKey {
        slot: user_data as u32,
        gen: (user_data >> 32) as u32 & GEN_MASK,
    };
    Some((kind, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        for kind in [OpKind::Accept, OpKind::Recv, OpKind::Send, OpKind::Ignore] {
            for (slot, gen) in [(0, 0), (u32::MAX, GEN_MASK), (12345, 678)] {
                let key = ConnKey { slot, gen };
                assert_eq!(decode(key.name(kind)), Some((kind, key)));
            }
        }
    }

    #[test]
    fn generation_wraps_at_24_bits() {
        let ud = encode(OpKind::Recv, 7, GEN_MASK + 2);
        assert_eq!(
            decode(ud),
            Some((OpKind::Recv, ConnKey { slot: 7, gen: 1 }))
        );
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert_eq!(decode(0), None);
        assert_eq!(decode(0xff << 56), None);
    }
}
