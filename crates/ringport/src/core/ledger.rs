//! The in-flight ledger of one owner (a connection, a listener): which of its operations
//! have been submitted and have not yet posted their final completion.
//!
//! Every operation submitted on an owner's behalf is recorded here once (a multishot
//! operation too: once, however many completions it posts); its final completion removes
//! it. The close protocol cancels what the ledger holds ([`Ledger::cancellable`]) and
//! waits for it to empty; an owner's slot may be freed only when its ledger is empty (the
//! worker refuses otherwise, in release builds too: `Worker::free` in `engine/lifecycle.rs`). An owner has at most
//! one operation of each kind in flight (one receive, one send, one shutdown, ...), so a
//! bit per kind is the whole record: two bytes.

use super::OpKind;

/// The kinds of operation a close cancels: those that would otherwise stay in flight
/// (a receive waits for data, a send for room, a connect for the peer). A shutdown, a
/// close and a connect's linked timeout end by themselves.
const CANCELLABLE: [OpKind; 3] = [OpKind::Recv, OpKind::Send, OpKind::Connect];

// A bit per kind in a u16: every kind's discriminant must be below 16.
const _: () = assert!((OpKind::FileWrite as u8) < 16);

/// The operations one owner has in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ledger(u16);

#[inline]
fn bit(kind: OpKind) -> u16 {
    1 << (kind as u8 as u16 & 15)
}

impl Ledger {
    /// Record a submitted operation. One of each kind at a time: recording a kind already
    /// in flight is an engine bug (asserted in debug builds; in release the one record
    /// stands for both, and the first final completion clears it).
    #[inline]
    pub(crate) fn record(&mut self, kind: OpKind) {
        debug_assert!(!self.has(kind), "{kind:?} recorded twice");
        if self.has(kind) {
            tracing::error!(?kind, "an operation recorded twice in one ledger");
        }
        self.0 |= bit(kind);
    }

    /// The final completion of an operation of `kind` arrived: remove it. False if the
    /// ledger had none (the completion is not this owner's).
    #[inline]
    pub(crate) fn complete(&mut self, kind: OpKind) -> bool {
        let had = self.has(kind);
        self.0 &= !bit(kind);
        had
    }

    /// An operation of `kind` is in flight.
    #[inline]
    pub(crate) fn has(&self, kind: OpKind) -> bool {
        self.0 & bit(kind) != 0
    }

    /// Nothing is in flight: the owner's slot may be freed.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// How many operations are in flight.
    #[inline]
    pub(crate) fn len(&self) -> u32 {
        self.0.count_ones()
    }

    /// The operations in flight that a close must cancel.
    pub(crate) fn cancellable(&self) -> impl Iterator<Item = OpKind> + '_ {
        CANCELLABLE.into_iter().filter(|k| self.has(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_bit_of_its_own() {
        let mut seen = 0u16;
        for k in OpKind::ALL {
            assert_eq!(seen & bit(k), 0, "{k:?} shares a bit");
            seen |= bit(k);
        }
    }

    #[test]
    fn an_operation_is_in_the_ledger_from_submission_to_final_completion() {
        let mut l = Ledger::default();
        assert!(l.is_empty());
        l.record(OpKind::Recv);
        l.record(OpKind::Send);
        l.record(OpKind::Shutdown);
        assert_eq!(l.len(), 3);
        assert_eq!(
            l.cancellable().collect::<Vec<_>>(),
            vec![OpKind::Recv, OpKind::Send],
            "a shutdown ends by itself"
        );
        assert!(l.complete(OpKind::Send));
        assert!(!l.complete(OpKind::Send), "its completion came once");
        assert!(l.complete(OpKind::Recv) && l.complete(OpKind::Shutdown));
        assert!(l.is_empty());
    }

    #[test]
    fn a_completion_of_a_kind_not_in_flight_is_not_this_owners() {
        let mut l = Ledger::default();
        l.record(OpKind::Connect);
        assert!(!l.complete(OpKind::Recv));
        assert_eq!(l.len(), 1);
    }
}
