//! The echo server: every byte received is sent straight back (with `--jobs`, after a
//! job on the pool has worked on it: see [`crate::job_work`]).

use crate::defences::DefenceArgs;
use crate::job_work::{EchoJobs, JobEcho};
use crate::live_stats::Ticker;
use anyhow::Context;
use ringport::{CloseReason, Conn, Handler, Server, ServerBuilder};
use std::net::SocketAddr;
use std::sync::Arc;

/// Echo handler: `on_data` sends the data back on the same connection.
pub struct Echo {
    /// Echo whole frames re-encoded with the codec (false: raw, echo bytes as they come).
    framed: bool,
}

impl Handler for Echo {
    type Session = ();

    fn on_open(&self, conn: &mut Conn) {
        tracing::debug!(conn = %conn.id(), peer = %conn.peer_addr(), "open");
    }

    fn on_data(&self, _session: &mut (), conn: &mut Conn, data: &[u8]) {
        if !self.framed {
            conn.send(data);
        } else if let Err(e) = conn.send_frame(data) {
            // Cannot happen for a frame the same codec decoded; close rather than guess.
            tracing::warn!(conn = %conn.id(), error = %e, "cannot re-frame; closing");
            conn.abort();
        }
    }

    fn on_close(&self, _session: (), conn: &Conn, reason: CloseReason) {
        tracing::debug!(conn = %conn.id(), %reason, "closed");
    }
}

/// Engine settings of the echo server.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    pub listen: Vec<String>,
    pub workers: usize,
    pub recv_buffers: Option<u16>,
    pub recv_buffer_size: Option<u32>,
    /// Framing: frames are echoed back whole.
    pub codec: ringport::Codec,
    pub backend: ringport::Backend,
    /// Admission control, timeouts, send-queue cap.
    pub defences: DefenceArgs,
    /// Serve Prometheus metrics on this address (`run` only).
    pub metrics: Option<SocketAddr>,
    /// Print a stats line every second (`run` only).
    pub stats: bool,
    /// Echo only after a job on a pool of this many threads did this work (`run` only).
    pub jobs: Option<EchoJobs>,
}

/// Bind and start an echo server (not waiting for anything).
pub fn start(opts: &EchoOptions) -> anyhow::Result<Server<Echo>> {
    let framed = opts.codec != ringport::Codec::Raw;
    builder(opts)?
        .start(Echo { framed })
        .context("starting the echo server")
}

/// The engine settings of `opts`, listening.
fn builder(opts: &EchoOptions) -> anyhow::Result<ServerBuilder> {
    let mut builder = Server::builder()
        .workers(opts.workers)
        .codec(opts.codec.clone())
        .backend(opts.backend);
    if opts.recv_buffers.is_some() || opts.recv_buffer_size.is_some() {
        let defaults = ringport::EngineConfig::default();
        builder = builder.recv_buffers(
            opts.recv_buffers.unwrap_or(defaults.recv_buffers),
            opts.recv_buffer_size.unwrap_or(defaults.recv_buffer_size),
        );
    }
    for addr in &opts.listen {
        builder = builder
            .listen(addr.as_str())
            .with_context(|| format!("bad listen address {addr:?}"))?;
    }
    opts.defences.apply(builder)
}

/// The `echo-server` command: serve until SIGINT/SIGTERM, then shut down gracefully.
pub fn run(opts: EchoOptions) -> anyhow::Result<()> {
    let termination = crate::signal::Termination::install()?;
    match opts.jobs {
        None => serve(start(&opts)?, &opts, termination),
        Some(jobs) => {
            let handler = JobEcho {
                framed: opts.codec != ringport::Codec::Raw,
                work: jobs.work,
            };
            let server = builder(&opts)?
                .jobs(jobs.threads)
                .start(handler)
                .context("starting the echo server")?;
            serve(server, &opts, termination)
        }
    }
}

/// Print where `server` listens, serve until a termination signal, shut it down.
fn serve<H: Handler>(
    server: Server<H>,
    opts: &EchoOptions,
    termination: crate::signal::Termination,
) -> anyhow::Result<()> {
    let server = Arc::new(server);
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    println!("backend {}", server.stats().backend);
    if let Some(jobs) = &opts.jobs {
        println!("jobs {} threads, work {}", jobs.threads, jobs.work);
    }
    let metrics = crate::serving::start_metrics(&server, opts.metrics)?;
    let ticker = if opts.stats {
        let source = Arc::clone(&server);
        Some(Ticker::start(
            move || source.stats(),
            crate::live_stats::line,
        )?)
    } else {
        None
    };
    crate::serving::wait_and_shut_down(server, termination, ticker, metrics)?;
    Ok(())
}
