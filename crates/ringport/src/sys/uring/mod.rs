//! The io_uring backend: ring setup with feature probing, the provided-buffer ring, and
//! a safe submission API whose operations own the memory they lend the kernel.

mod backend;
mod buf_ring;
mod driver;
mod probe;

pub(crate) use backend::UringDriver;
pub(crate) use buf_ring::BufRing;
pub(crate) use driver::Uring;
