//! The operating-system edge: the only module with `unsafe`.
//!
//! Contract with the engine above (the [`Driver`] trait; both backends keep it):
//! - Every operation is a type in `op/` (accept, receive, send, connect, shutdown,
//!   cancel, close, the doorbell read, ...), started with `Driver::start(op, user_data)`.
//!   The engine names it with a `u64` of its own choosing and gets it back, unchanged,
//!   in each [`Completion`]. Multishot operations (accept, receive) post many
//!   completions; the last one of an operation has `more() == false`. Every operation
//!   ends with exactly one final completion, including when it is cancelled
//!   (-ECANCELED), so the engine can count what is in flight.
//! - Memory an operation reads or writes (send chunks and iovecs, connect addresses,
//!   timeouts, the doorbell counter, receive buffers) is owned here, by the operation's
//!   state, until its final completion has been reaped, so no engine mistake can make
//!   the kernel touch freed memory. A connect and the doorbell release theirs by
//!   themselves; a send's unsent chunks go back to the engine with `Driver::call(
//!   ReclaimSend)`, which gives back nothing before the completion was reaped. Memory
//!   still lent when an io_uring is dropped is leaked rather than freed.
//! - Receive data is lent by the backend: a receive completion's data is claimed
//!   (`claim_recv`), read through the backend (`recv_bytes`), and given back (`recycle`)
//!   before the next wait. No receive memory belongs to a connection.
//! - Submissions never fail silently: a full io_uring submission queue is flushed to the
//!   kernel, completions reaped meanwhile are kept for the next drain; an operation the
//!   readiness backend cannot start completes with the error.
//!
//! Backends: `uring` (io_uring with multishot accept/receive and a provided-buffer ring)
//! and `poll` (mio/epoll, edge-triggered, emulating the same completions). The engine is
//! generic over [`Driver`] and knows nothing else about them; [`select`] picks one.

mod driver;
pub(crate) mod eventfd;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod fd_info;
pub(crate) mod file_send;
pub(crate) mod int_map;
pub(crate) mod op;
pub(crate) mod outbound;
pub(crate) mod poll;
pub(crate) mod socket;
pub(crate) mod uring;

pub(crate) use driver::{Datagram, Driver, DriverConfig, DATAGRAM_HEADROOM};
pub(crate) use eventfd::EventFd;

/// The I/O backend of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// `RINGPORT_BACKEND=uring|poll` if set; else io_uring if this kernel and process
    /// allow it (probed at start), else the readiness backend, with one log line saying
    /// why.
    #[default]
    Auto,
    /// io_uring only; starting fails if it is unavailable.
    Uring,
    /// The portable readiness backend (epoll through mio): no receive buffer per
    /// connection either (one read arena per worker).
    Poll,
}

/// The completion flag that says more completions of the same operation follow
/// (io_uring's IORING_CQE_F_MORE; the readiness backend sets the same bit).
const F_MORE: u32 = 1 << 1;

/// One completed operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    /// The engine's name for the operation.
    pub user_data: u64,
    /// The result: bytes, an fd, 0, or a negative errno.
    pub result: i32,
    /// The backend's completion flags.
    pub flags: u32,
}

impl Completion {
    /// A completion made by a backend other than io_uring; `extra` flag bits are the
    /// backend's own (e.g. which receive slice it is).
    pub(crate) fn new(user_data: u64, result: i32, more: bool, extra: u32) -> Completion {
        Completion {
            user_data,
            result,
            flags: extra | if more { F_MORE } else { 0 },
        }
    }

    /// More completions of this (multishot) operation will follow.
    pub fn more(&self) -> bool {
        self.flags & F_MORE != 0
    }
}

/// The backend a worker runs, once chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chosen {
    Uring,
    Poll,
}

impl Chosen {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Chosen::Uring => "uring",
            Chosen::Poll => "poll",
        }
    }
}

/// Pick the backend: an explicit choice wins, then `RINGPORT_BACKEND=uring|poll`, then
/// io_uring if a probe (ring set-up, every opcode and feature, the buffer ring) passes,
/// else poll, with one log line saying why. `fault` injects a failed probe (tests).
pub(crate) fn select(asked: Backend, config: DriverConfig, fault: bool) -> Result<Chosen, String> {
    let asked = match asked {
        Backend::Auto => match std::env::var("RINGPORT_BACKEND").ok().as_deref() {
            None | Some("") | Some("auto") => Backend::Auto,
            Some("uring") => Backend::Uring,
            Some("poll") => Backend::Poll,
            Some(other) => {
                return Err(format!(
                    "RINGPORT_BACKEND={other:?}: expected uring, poll or auto"
                ))
            }
        },
        explicit => explicit,
    };
    match asked {
        Backend::Poll => Ok(Chosen::Poll),
        Backend::Uring => probe_uring(config, fault).map(|()| Chosen::Uring),
        Backend::Auto => match probe_uring(config, fault) {
            Ok(()) => Ok(Chosen::Uring),
            Err(why) => {
                tracing::warn!("io_uring unavailable ({why}); using the poll backend");
                Ok(Chosen::Poll)
            }
        },
    }
}

/// Can this process run the io_uring backend? Builds (and drops) one worker's ring.
fn probe_uring(config: DriverConfig, fault: bool) -> Result<(), String> {
    if fault {
        return Err("io_uring probe failure injected".to_string());
    }
    match <uring::UringDriver as Driver>::new(config) {
        Ok(mut d) => {
            d.shutdown();
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_more_flag_is_io_urings() {
        assert!(io_uring::cqueue::more(super::F_MORE));
        assert!(super::Completion::new(1, 0, true, 0).more());
        assert!(!super::Completion::new(1, 0, false, 7 << 16).more());
    }

    /// `sys/` is the bottom layer: it names nothing of the crate above it (only
    /// `crate::sys::..`), so the engine, codecs and API can change without touching it.
    #[test]
    fn sys_imports_nothing_from_above_it() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sys");
        let mut files = Vec::new();
        walk(&root, &mut files);
        assert!(files.len() > 10, "{files:?}");
        // Built, so this test's own source does not match.
        let (path, own) = (["crate", "::"].concat(), ["crate", "::sys"].concat());
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap();
                for (i, _) in code.match_indices(&path) {
                    assert!(
                        code[i..].starts_with(&own),
                        "{}:{}: {line}",
                        f.display(),
                        n + 1
                    );
                }
            }
        }
    }
}
