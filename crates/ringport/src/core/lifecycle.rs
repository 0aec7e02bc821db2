//! A connection's life as a sans-IO state machine: no driver, no handler, no clock.
//!
//! ```text
//!   Connecting ──connected──▶ Open { read, write } ──close(reason)──▶ Closing { reason }
//!        │                      (half-closed: read Eof                    │ ledger empty
//!        └──────close(reason)────  or write Shut)                         ▼
//!                                                          Report, Start(Close) ─▶ Closed
//!                                                                     ledger empty ─▶ Free
//! ```
//!
//! The shell (the worker) tells the machine what happened (a final completion, the
//! connect's outcome, EOF) and what the handler asked ([`Wants`], after the callbacks);
//! the machine answers with [`Actions`]: operations to start (already recorded in its
//! [`Ledger`]) or cancel, when to report the close, when the slot may be freed. The close
//! reason is set once, by [`Lifecycle::close`]; a connection is reported exactly once, and
//! only after every operation it had in flight has completed.

use super::{Ledger, OpKind};
use crate::error::CloseReason;

/// What the handler (or the engine on its behalf) asked about the connection's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseRequest {
    None,
    /// Flush the queue, then close with this reason.
    AfterFlush(CloseReason),
    /// Close now; queued bytes are undelivered.
    Now(CloseReason),
}

/// The read side of an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadSide {
    /// No receive in flight: the next plan arms one (unless reading is paused).
    Idle,
    /// The multishot receive is in flight.
    Armed,
    /// Its cancel was submitted (reading paused, or a graceful close stopped reading);
    /// its final completion is awaited.
    Cancelling,
    /// The peer shut its write side: nothing more to read (half-closed).
    Eof,
}

/// The write side of an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteSide {
    /// No send in flight.
    Idle,
    /// The one send in flight.
    Sending,
    /// shutdown(SHUT_WR) was submitted: nothing more is sent (half-closed).
    Shut,
}

/// Where a connection is, with what each state needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// The outbound connect (and its linked timeout) are in flight.
    Connecting,
    /// Callbacks run; each side has its own state, and the handler may have asked for
    /// the connection's end (`Conn::close`, `abort`, a failure found on its behalf).
    Open {
        read: ReadSide,
        write: WriteSide,
        close: CloseRequest,
    },
    /// Its in-flight operations are cancelled and awaited; then it is reported closed.
    Closing { reason: CloseReason },
    /// Reported (`on_close` ran); the descriptor's close is in flight.
    Closed { reason: CloseReason },
}

/// A freshly opened connection's state.
const OPEN: State = State::Open {
    read: ReadSide::Idle,
    write: WriteSide::Idle,
    close: CloseRequest::None,
};

/// What the handler's requests come to, read by the shell after the callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wants {
    /// `Conn::shutdown_write` was called.
    pub shutdown_write: bool,
    /// Bytes wait in the queue (not in a send in flight).
    pub has_out: bool,
    /// Bytes accepted and not yet sent (the queue and the send in flight).
    pub has_unsent: bool,
    /// Reading is paused (the send queue is above its high-water mark, or the
    /// connection is at its cap of outstanding jobs).
    pub pause_reading: bool,
    /// Jobs of the connection are outstanding: a graceful close waits for their
    /// results as it waits for queued bytes.
    pub jobs_pending: bool,
}

/// One thing for the shell to do. Two bytes: the close reason an action concerns is the
/// machine's ([`Lifecycle::closing_reason`]), not carried (actions are made and copied on
/// every completion; a `CloseReason` is 24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// The connection entered `Closing`: drop what the shell keeps for it besides its
    /// operations (timers, its timeout watch, budgets, the frame reader). Always the
    /// first action of a close.
    Closing,
    /// Start the connection's operation of this kind (the ledger has recorded it).
    Start(OpKind),
    /// Cancel its operation of this kind (its final completion follows).
    Cancel(OpKind),
    /// Every operation has completed: report the close (`on_close`, or
    /// `on_connect_failed` for a connect that never opened) with the closing reason. The
    /// descriptor's close (`Start(Close)`) follows.
    Report,
    /// The descriptor's close completed and nothing is in flight: free the slot.
    Free,
}

/// Most actions one transition returns: a close says it is closing, cancels three
/// operations, reports and closes the descriptor.
const MAX_ACTIONS: u32 = 6;

impl Action {
    /// One byte, never 0: the tag in the high nibble, an operation kind in the low one.
    #[inline]
    fn code(self) -> u64 {
        match self {
            Action::Closing => 0x10,
            Action::Start(k) => 0x20 | k as u64,
            Action::Cancel(k) => 0x30 | k as u64,
            Action::Report => 0x40,
            Action::Free => 0x50,
        }
    }

    #[inline]
    fn from_code(code: u8) -> Action {
        let kind = || OpKind::from_u8(code & 0xf).expect("an action names a known kind");
        match code >> 4 {
            1 => Action::Closing,
            2 => Action::Start(kind()),
            3 => Action::Cancel(kind()),
            4 => Action::Report,
            _ => Action::Free,
        }
    }
}

/// The actions of one transition, in the order to carry them out, packed a byte each
/// into one word: made and read in registers on every completion (an array of enums
/// written a byte at a time and copied out as words stalls on store forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Actions(u64);

impl Actions {
    #[inline]
    fn len(&self) -> u32 {
        (64 - self.0.leading_zeros()).div_ceil(8)
    }

    #[inline]
    fn push(&mut self, a: Action) {
        let len = self.len();
        debug_assert!(len < MAX_ACTIONS, "more actions than a transition makes");
        self.0 |= a.code() << (8 * len);
    }

    fn extend(&mut self, more: Actions) {
        for a in more {
            self.push(a);
        }
    }

    /// The next action, without taking it.
    #[inline]
    pub(crate) fn peek(&self) -> Option<Action> {
        (self.0 != 0).then(|| Action::from_code(self.0 as u8))
    }

    /// Nothing to do.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

impl Iterator for Actions {
    type Item = Action;
    #[inline]
    fn next(&mut self) -> Option<Action> {
        let code = self.0 as u8;
        if code == 0 {
            return None;
        }
        self.0 >>= 8;
        Some(Action::from_code(code))
    }
}

/// One connection's life: its state and its in-flight ledger. It lives in the `Conn`
/// (which is a view over it: `Conn::close` and `abort` are asks to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    state: State,
    ledger: Ledger,
    /// `on_open` ran: the close is reported with `on_close` (else, for an outbound
    /// connection, with `on_connect_failed`).
    opened: bool,
}

impl Lifecycle {
    /// An accepted connection: open (once the shell has run `on_open`), nothing in
    /// flight.
    pub(crate) fn accepted() -> Lifecycle {
        Lifecycle {
            state: OPEN,
            ledger: Ledger::default(),
            opened: false,
        }
    }

    /// An outbound connection: the shell starts its connect and the linked timeout now
    /// (both recorded).
    pub(crate) fn connecting() -> Lifecycle {
        let mut ledger = Ledger::default();
        ledger.record(OpKind::Connect);
        ledger.record(OpKind::ConnectTimeout);
        Lifecycle {
            state: State::Connecting,
            ledger,
            opened: false,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    #[inline]
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Open: callbacks run.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Reported closed; only the descriptor's close may be in flight.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// What was asked about the connection's end: while open, the handler's request;
    /// once closing or closed, "now", with the reason it is closing for.
    #[inline]
    pub(crate) fn request(&self) -> CloseRequest {
        match self.state {
            State::Open { close, .. } => close,
            State::Closing { reason } | State::Closed { reason } => CloseRequest::Now(reason),
            State::Connecting => CloseRequest::None,
        }
    }

    /// The reason the connection is closing (or closed) for; `None` before its close.
    pub(crate) fn closing_reason(&self) -> Option<CloseReason> {
        match self.state {
            State::Closing { reason } | State::Closed { reason } => Some(reason),
            _ => None,
        }
    }

    /// Ask for the connection's end (only an open connection takes asks). The one rule
    /// for which ask stands: the first one, except that a close-now replaces a pending
    /// close-after-flush.
    #[inline]
    pub(crate) fn ask(&mut self, ask: CloseRequest) {
        if let State::Open { close, .. } = &mut self.state {
            let replaces = matches!(
                (*close, ask),
                (CloseRequest::None, _) | (CloseRequest::AfterFlush(_), CloseRequest::Now(_))
            );
            if replaces {
                *close = ask;
            }
        }
    }

    /// The peer's EOF arrived: a graceful close the handler asked without a reason of its
    /// own (`Conn::close`) is now the peer's doing.
    pub(crate) fn peer_closed(&mut self) {
        if let State::Open { close, .. } = &mut self.state {
            if *close == CloseRequest::AfterFlush(CloseReason::Local) {
                *close = CloseRequest::AfterFlush(CloseReason::PeerClosed);
            }
        }
    }

    /// `on_open` ran.
    pub(crate) fn was_opened(&self) -> bool {
        self.opened
    }

    /// The connection is open and `on_open` is about to run (the shell counts it open).
    pub(crate) fn open(&mut self) {
        self.opened = true;
        if self.state == State::Connecting {
            self.state = OPEN;
        }
    }

    /// Still connecting: a connect that completes now is to open (false if a close came
    /// first: a shutdown dropped it while connecting).
    pub(crate) fn is_connecting(&self) -> bool {
        self.state == State::Connecting
    }

    /// A completion of the operation of `kind`; `more`: more of the same (multishot)
    /// follow. False if the ledger holds no such operation: the completion is not this
    /// connection's (the shell drops it as stale).
    #[inline]
    pub(crate) fn completed(&mut self, kind: OpKind, more: bool) -> bool {
        if more {
            return self.ledger.has(kind);
        }
        if !self.ledger.complete(kind) {
            return false;
        }
        if let State::Open { read, write, .. } = &mut self.state {
            match kind {
                OpKind::Recv if *read != ReadSide::Eof => *read = ReadSide::Idle,
                OpKind::Send if *write == WriteSide::Sending => *write = WriteSide::Idle,
                _ => {}
            }
        }
        true
    }

    /// The read side has seen the peer's EOF.
    pub(crate) fn read_is_eof(&self) -> bool {
        matches!(
            self.state,
            State::Open {
                read: ReadSide::Eof,
                ..
            }
        )
    }

    /// Record a write to the file a receive goes to, to start now: only while open and
    /// none is in flight (one at a time). Its final completion is handled like any
    /// other (`completed`); a close waits for it (a file write is not cancellable).
    pub(crate) fn start_file_write(&mut self) -> bool {
        if !self.is_open() || self.ledger.has(OpKind::FileWrite) {
            return false;
        }
        self.ledger.record(OpKind::FileWrite);
        true
    }

    /// The peer shut its write side (a receive returned 0).
    #[inline]
    pub(crate) fn read_eof(&mut self) {
        if let State::Open { read, .. } = &mut self.state {
            *read = ReadSide::Eof;
        }
    }

    /// What the handler's requests call for now: operations to start or cancel, or the
    /// close. Only an open connection plans. (Runs after every batch that touched the
    /// connection: it works on the state in place and copies no close reason unless it
    /// closes; its one caller, the worker's `service`, takes it inline.)
    #[inline(always)]
    pub(crate) fn plan(&mut self, wants: Wants) -> Actions {
        let State::Open { read, write, close } = &mut self.state else {
            return Actions::default();
        };
        let flushing = match close {
            CloseRequest::None => false,
            CloseRequest::AfterFlush(_) => true,
            CloseRequest::Now(reason) => {
                let reason = *reason;
                return self.close(reason).unwrap_or_default();
            }
        };
        let mut a = Actions::default();
        if *write == WriteSide::Idle && wants.has_out {
            *write = WriteSide::Sending;
            self.ledger.record(OpKind::Send);
            a.push(Action::Start(OpKind::Send));
        }
        let flushed = *write != WriteSide::Sending && !wants.has_unsent;
        if flushing {
            if flushed && !wants.jobs_pending {
                if let CloseRequest::AfterFlush(reason) = self.request() {
                    a.extend(self.close(reason).unwrap_or_default());
                }
                return a;
            }
            // Stop reading while the queue drains.
            if *read == ReadSide::Armed {
                *read = ReadSide::Cancelling;
                a.push(Action::Cancel(OpKind::Recv));
            }
            return a;
        }
        if flushed && wants.shutdown_write && *write == WriteSide::Idle {
            *write = WriteSide::Shut;
            self.ledger.record(OpKind::Shutdown);
            a.push(Action::Start(OpKind::Shutdown));
        }
        if wants.pause_reading {
            if *read == ReadSide::Armed {
                *read = ReadSide::Cancelling;
                a.push(Action::Cancel(OpKind::Recv));
            }
        } else if *read == ReadSide::Idle {
            *read = ReadSide::Armed;
            self.ledger.record(OpKind::Recv);
            a.push(Action::Start(OpKind::Recv));
        }
        a
    }

    /// Close with `reason`: cancel what is in flight, then (once the ledger is empty)
    /// report and close the descriptor. The first call sets the reason; `None` if the
    /// connection was already closing (the reason stays the first one). Cold: a
    /// connection closes once and plans on every batch, so this stays out of `plan`.
    #[cold]
    pub(crate) fn close(&mut self, reason: CloseReason) -> Option<Actions> {
        if matches!(self.state, State::Closing { .. } | State::Closed { .. }) {
            return None;
        }
        self.state = State::Closing { reason };
        let mut a = Actions::default();
        a.push(Action::Closing);
        for kind in self.ledger.cancellable() {
            a.push(Action::Cancel(kind));
        }
        a.extend(self.settle());
        Some(a)
    }

    /// After a final completion: what an empty ledger now calls for (report and close
    /// the descriptor of a closing connection; free a closed one's slot).
    #[inline]
    pub(crate) fn settle(&mut self) -> Actions {
        let mut a = Actions::default();
        if !self.ledger.is_empty() {
            return a;
        }
        match self.state {
            State::Closing { reason } => {
                self.state = State::Closed { reason };
                self.ledger.record(OpKind::Close);
                a.push(Action::Report);
                a.push(Action::Start(OpKind::Close));
            }
            State::Closed { .. } => a.push(Action::Free),
            _ => {}
        }
        a
    }
}

#[cfg(test)]
mod tests;
