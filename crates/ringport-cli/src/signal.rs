//! Waiting for SIGINT or SIGTERM (through the `ctrlc` crate, no `unsafe` here).

use anyhow::Context;
use std::sync::mpsc;

/// SIGINT/SIGTERM caught from [`Termination::install`] on; [`Termination::wait`] blocks
/// until one arrives. Installing before the server announces itself means a signal sent
/// right after the `listening on` line is never the default (fatal) action.
pub struct Termination {
    signalled: mpsc::Receiver<()>,
}

impl Termination {
    /// Catch SIGINT and SIGTERM from now on. Call at most once per process.
    pub fn install() -> anyhow::Result<Termination> {
        let (tx, signalled) = mpsc::channel();
        ctrlc::set_handler(move || {
            // The receiver may already be gone on a second signal; nothing to do then.
            let _ = tx.send(());
        })
        .context("installing the SIGINT/SIGTERM handler")?;
        Ok(Termination { signalled })
    }

    /// Block until SIGINT or SIGTERM (returns at once if one came already).
    pub fn wait(self) -> anyhow::Result<()> {
        self.signalled.recv().context("signal channel closed")?;
        Ok(())
    }
}
