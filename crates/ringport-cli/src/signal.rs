//! Waiting for SIGINT or SIGTERM (through the `ctrlc` crate, no `unsafe` here).

use anyhow::Context;
use std::sync::mpsc;

/// Block until the process gets SIGINT or SIGTERM. Call at most once per process.
pub fn wait_for_termination() -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        // The receiver may already be gone on a second signal; nothing to do then.
        let _ = tx.send(());
    })
    .context("installing the SIGINT/SIGTERM handler")?;
    rx.recv().context("signal channel closed")?;
    Ok(())
}
