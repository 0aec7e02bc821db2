//! Test helpers: both drivers built directly, and waiting for completions.

use crate::sys::driver::{Driver, DriverConfig};
use crate::sys::Completion;
use std::time::{Duration, Instant};

/// A small driver configuration.
pub(crate) fn config() -> DriverConfig {
    DriverConfig {
        ring_entries: 256,
        cq_entries: 4096,
        recv_buffers: 16,
        recv_buffer_size: 4096,
        datagram_buffers: 8,
        datagram_buffer_size: 65_536 + crate::sys::DATAGRAM_HEADROOM,
    }
}

/// A driver of type `D`, or `None` (with a note) where this kernel or sandbox has no
/// io_uring: the readiness backend's run of the same test still covers the op. With
/// `RINGPORT_REQUIRE_URING` set (CI sets it: its machine has io_uring), a missing driver
/// fails the test instead of skipping it.
pub(crate) fn driver<D: Driver>() -> Option<D> {
    driver_with(config())
}

/// [`driver`], built with `config`.
pub(crate) fn driver_with<D: Driver>(config: DriverConfig) -> Option<D> {
    match D::new(config) {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("RINGPORT_REQUIRE_URING").is_some() => {
            panic!(
                "{}: {e} (RINGPORT_REQUIRE_URING is set)",
                std::any::type_name::<D>()
            )
        }
        Err(e) => {
            eprintln!(
                "{}: not available here ({e}); skipped",
                std::any::type_name::<D>()
            );
            None
        }
    }
}

/// Wait (up to ten seconds) and drain into `got` until `done(got)`.
pub(crate) fn wait_until<D: Driver>(
    d: &mut D,
    got: &mut Vec<Completion>,
    mut done: impl FnMut(&[Completion]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(got) {
        assert!(Instant::now() < deadline, "timed out; got {got:?}");
        d.submit_and_wait(1, Duration::ZERO, Some(Duration::from_millis(10)))
            .expect("wait");
        d.drain(got);
    }
}

/// Wait `for_` and drain whatever completed into `got` (to see nothing more came).
pub(crate) fn settle<D: Driver>(d: &mut D, got: &mut Vec<Completion>, for_: Duration) {
    let until = Instant::now() + for_;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        d.submit_and_wait(1, Duration::ZERO, Some(left.min(Duration::from_millis(10))))
            .expect("wait");
        d.drain(got);
    }
}

/// Run each named generic test (`fn name<D: Driver>()`, in scope as `super::name`) on
/// both drivers: `uring::name` and `poll::name`.
macro_rules! on_both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test] fn $name() { super::$name::<crate::sys::uring::UringDriver>(); })*
        }
        mod poll {
            $(#[test] fn $name() { super::$name::<crate::sys::poll::PollDriver>(); })*
        }
    };
}
pub(crate) use on_both_drivers;
