//! The demo: an embedded echo server and the load tool against it, in one process.

use crate::bench::{self, BenchOptions};
use crate::echo_server::{self, EchoOptions};
use ringport::ByteSize;
use std::time::{Duration, Instant};

/// Settings of the `demo` command.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub duration: Duration,
    pub connections: usize,
    pub size: usize,
    pub pipeline: usize,
}

/// Run the demo; fails if the load run had errors or echoed nothing.
pub fn run(opts: DemoOptions) -> anyhow::Result<()> {
    // Server and load tool share the machine: give each half of it.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = (cores / 2).max(1);

    let server = echo_server::start(&EchoOptions {
        listen: vec!["127.0.0.1:0".to_string()],
        workers,
        recv_buffers: None,
        recv_buffer_size: None,
        codec: ringport::Codec::Raw,
        backend: ringport::Backend::Auto,
        defences: Default::default(),
        metrics: None,
        stats: false,
        jobs: None,
    })?;
    let addr = *server
        .local_addrs()
        .first()
        .ok_or_else(|| anyhow::anyhow!("the server reported no listen address"))?;
    println!(
        "echo server listening on {addr} ({workers} workers, {} backend)",
        server.stats().backend
    );
    println!(
        "load: {} connections, {} byte messages, {} in flight each, for {:.1} s ({workers} workers)",
        opts.connections,
        opts.size,
        opts.pipeline,
        opts.duration.as_secs_f64()
    );

    let result = bench::run(BenchOptions {
        addr,
        mode: bench::Mode::ClosedLoop,
        connections: opts.connections,
        size: opts.size,
        pipeline: opts.pipeline,
        duration: opts.duration,
        warmup: Duration::ZERO,
        workers,
        progress: true,
        sources: Vec::new(),
        connect_timeout: Duration::from_secs(10),
        codec: ringport::Codec::Raw,
    });

    // The load tool's closes reach the server a moment later; let them land so the
    // shutdown finds a settled server (not connections to force closed).
    let settle = Instant::now() + Duration::from_secs(2);
    while server.stats().open > 0 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The stats of the shutdown report are read after every worker stopped: a live
    // snapshot can lag behind what the workers last published (in-flight operations of
    // connections already gone).
    let shutdown = server.shutdown(Duration::from_secs(5));
    println!(
        "server shutdown: {} connections open, {} forced, {} undelivered",
        shutdown.connections,
        shutdown.forced,
        ByteSize(shutdown.undelivered_bytes)
    );
    println!("server stats:");
    print!("{}", crate::live_stats::indented(&shutdown.stats));
    let report = result?;
    println!("--- report ---");
    println!("{report}");
    report.check()
}
