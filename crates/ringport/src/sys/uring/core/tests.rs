//! The io_uring core's submit-failure accounting (the send path with real sockets is
//! tested on both drivers in `sys/op/send/tests.rs`).

use super::*;

#[test]
fn submit_failures_give_up_after_the_limit_and_a_success_resets_them() {
    let mut f = SubmitFailures::default();
    for _ in 0..SUBMIT_FAILURES_MAX - 1 {
        assert!(f.failed(libc::ENOMEM));
    }
    f.succeeded();
    for _ in 0..SUBMIT_FAILURES_MAX - 1 {
        assert!(
            f.failed(libc::ENOMEM),
            "the count restarted after a success"
        );
    }
    assert!(!f.failed(libc::EAGAIN), "the last try in a row gives up");
    assert_eq!(f.broken, Some(libc::EAGAIN));
}
