//! The io_uring backend: ring setup with feature probing, the provided-buffer ring, and
//! a core that pushes the entries operations build (`sys/op/`) and keeps what they lend
//! the kernel until their completions are reaped.

mod backend;
mod buf_ring;
mod core;
mod probe;

pub(crate) use self::core::{UringCore, UringOpState};
pub(crate) use backend::UringDriver;
pub(crate) use buf_ring::BufRing;
