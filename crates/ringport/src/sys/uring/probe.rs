//! Ring setup: try the fastest setup flags first, fall back, and check every opcode the
//! registered operations use.

use crate::sys::op;
use io_uring::{IoUring, Probe};
use std::io;

/// Setup flag sets, fastest first. SINGLE_ISSUER + DEFER_TASKRUN (6.1) runs completion
/// work only when the worker asks for events, in its own context; COOP_TASKRUN (5.19)
/// avoids interrupting the worker to post completions.
const SETUPS: [(&str, bool, bool, bool); 4] = [
    ("single_issuer+defer_taskrun", true, true, false),
    ("single_issuer+coop_taskrun", true, false, true),
    ("coop_taskrun", false, false, true),
    ("plain", false, false, false),
];

/// A ring and the name of the setup that the kernel took.
pub(crate) fn build_ring(sq: u32, cq: u32) -> io::Result<(IoUring, &'static str)> {
    let mut last_err = None;
    for (name, single, defer, coop) in SETUPS {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq).setup_clamp();
        if single {
            b.setup_single_issuer();
        }
        if defer {
            b.setup_defer_taskrun();
        }
        if coop {
            b.setup_coop_taskrun();
        }
        match b.build(sq) {
            Ok(ring) => {
                check_ring(&ring)?;
                return Ok((ring, name));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no io_uring setup accepted")))
}

fn check_ring(ring: &IoUring) -> io::Result<()> {
    if !ring.params().is_feature_nodrop() {
        return Err(io::Error::other(
            "kernel lacks IORING_FEAT_NODROP (completions could be lost on overflow)",
        ));
    }
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::other(
            "kernel lacks IORING_FEAT_EXT_ARG (wait timeouts)",
        ));
    }
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    // Every opcode of every registered operation (`sys/op/mod.rs`).
    let missing: Vec<&str> = op::URING_OPCODES
        .iter()
        .flat_map(|ops| ops.iter())
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(io::Error::other(format!(
            "io_uring lacks opcodes: {}",
            missing.join(", ")
        )));
    }
    Ok(())
}
