//! The `file-server` command: open the root, start the engine with a job pool, print
//! where it listens, serve until SIGINT/SIGTERM, shut down and print the summary (the
//! engine's stats, then requests and refusals by code).

use crate::defences::DefenceArgs;
use crate::file::names::Root;
use crate::file::protocol::MAX_LINE;
use crate::file::server::{Counters, FileHandler};
use crate::live_stats::Ticker;
use anyhow::Context;
use ringport::codec::DelimitedCodec;
use ringport::{ByteSize, Codec, Server, Stats};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FileServerOptions {
    pub root: PathBuf,
    pub listen: Vec<String>,
    pub max_upload: Option<u64>,
    pub allow_upload: bool,
    pub workers: usize,
    /// Threads of the job pool (digests, upload sync and rename).
    pub jobs: usize,
    pub backend: ringport::Backend,
    pub defences: DefenceArgs,
    pub metrics: Option<SocketAddr>,
    pub stats: bool,
}

/// The request-line codec: lines of at most [`MAX_LINE`] bytes.
pub fn codec() -> Codec {
    Codec::Delimited(DelimitedCodec::lines()).with_max_frame(MAX_LINE)
}

/// The files part of a stats line: `  files out N (R/s)  in N (R/s)  failed N`.
pub fn files_line(before: &Stats, now: &Stats, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let per_sec =
        |new: u64, old: u64| ByteSize((new.saturating_sub(old) as f64 / secs).round() as u64);
    format!(
        "  files out {} ({}/s)  in {} ({}/s)  failed {}",
        now.files_sent,
        per_sec(now.file_bytes_sent, before.file_bytes_sent),
        now.files_received,
        per_sec(now.file_bytes_received, before.file_bytes_received),
        now.transfers_failed,
    )
}

pub fn run(opts: FileServerOptions) -> anyhow::Result<()> {
    let termination = crate::signal::Termination::install()?;
    let root = Root::open(&opts.root)?;
    let counters = Arc::new(Counters::default());
    let handler = FileHandler {
        root,
        allow_upload: opts.allow_upload,
        max_upload: opts.max_upload,
        counters: Arc::clone(&counters),
    };
    let mut builder = Server::builder()
        .workers(opts.workers)
        .codec(codec())
        .backend(opts.backend)
        .jobs(opts.jobs);
    for addr in &opts.listen {
        builder = builder
            .listen(addr.as_str())
            .with_context(|| format!("bad listen address {addr:?}"))?;
    }
    let server = opts
        .defences
        .apply(builder)?
        .start(handler)
        .context("starting the file server")?;
    let server = Arc::new(server);
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    println!("backend {}", server.stats().backend);
    println!(
        "root {}, uploads {}",
        opts.root.display(),
        match (opts.allow_upload, opts.max_upload) {
            (false, _) => "refused".to_string(),
            (true, None) => "allowed".to_string(),
            (true, Some(max)) => format!("allowed up to {}", ByteSize(max)),
        }
    );
    let metrics = crate::serving::start_metrics(&server, opts.metrics)?;
    let ticker = if opts.stats {
        let source = Arc::clone(&server);
        let counters = Arc::clone(&counters);
        Some(Ticker::start(
            move || source.stats(),
            move |before, now, elapsed| {
                format!(
                    "{}{}  {}",
                    crate::live_stats::line(before, now, elapsed),
                    files_line(before, now, elapsed),
                    counters.summary()
                )
            },
        )?)
    } else {
        None
    };
    let report = crate::serving::wait_and_shut_down(server, termination, ticker, metrics)?;
    println!(
        "files: sent {} ({}), received {} ({}), failed {}",
        report.stats.files_sent,
        ByteSize(report.stats.file_bytes_sent),
        report.stats.files_received,
        ByteSize(report.stats.file_bytes_received),
        report.stats.transfers_failed,
    );
    println!("{}", counters.summary());
    Ok(())
}
