//! The sans-IO core: what a connection is and may do next, with no driver, no handler and
//! no clock. The engine (the I/O shell) feeds it completions and the handler's requests;
//! it answers with the operations to start or cancel and when to report and free.
//!
//! - [`op_name`]: the 64-bit name of every operation (kind, owner key, generation) and the
//!   typed key of a connection's slot.
//! - [`ledger`]: the operations an owner has in flight; the one record the close protocol
//!   and slot reuse rest on.
//! - [`lifecycle`]: a connection's life as a state machine whose transitions return the
//!   actions the shell carries out.
//! - [`slab`]: slots with generations, addressed by [`ConnKey`] (connections, watches).

pub(crate) mod ledger;
pub(crate) mod lifecycle;
pub(crate) mod op_name;
pub(crate) mod slab;

pub(crate) use ledger::Ledger;
pub(crate) use lifecycle::{Action, Actions, Lifecycle, Wants};
pub(crate) use op_name::{ConnKey, OpKind};
pub(crate) use slab::Slab;
