//! What every serving command does around its server: the metrics endpoint, and the
//! wait for a termination signal followed by the graceful shutdown and its report.

use crate::live_stats::Ticker;
use anyhow::Context;
use ringport::metrics::MetricsServer;
use ringport::{Handler, Server, ShutdownReport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Serve Prometheus metrics of `server` on `addr` if asked (printing `metrics on ADDR`).
/// The endpoint holds a weak reference: it never keeps the server from shutting down.
pub fn start_metrics<H: Handler>(
    server: &Arc<Server<H>>,
    addr: Option<SocketAddr>,
) -> anyhow::Result<Option<MetricsServer>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let source = Arc::downgrade(server);
    let metrics = MetricsServer::start(addr, move || {
        source.upgrade().map(|s| s.stats()).unwrap_or_default()
    })
    .with_context(|| format!("starting the metrics endpoint on {addr}"))?;
    println!("metrics on {}", metrics.local_addr());
    Ok(Some(metrics))
}

/// Wait for a termination signal, stop the live stats and the endpoint, shut the server
/// down gracefully (5 s) and print what it could not deliver and the final stats.
pub fn wait_and_shut_down<H: Handler>(
    server: Arc<Server<H>>,
    termination: crate::signal::Termination,
    ticker: Option<Ticker>,
    metrics: Option<MetricsServer>,
) -> anyhow::Result<ShutdownReport> {
    let waited = termination.wait();
    if let Some(ticker) = ticker {
        ticker.stop();
    }
    if let Some(metrics) = metrics {
        metrics.shutdown();
    }
    waited?;
    println!("shutting down");
    let server = Arc::try_unwrap(server)
        .map_err(|_| anyhow::anyhow!("the server is still shared after stopping its users"))?;
    let report = server.shutdown(Duration::from_secs(5));
    println!(
        "shutdown: {} connections open, {} forced, {} undelivered",
        report.connections,
        report.forced,
        ringport::ByteSize(report.undelivered_bytes)
    );
    println!("final stats:");
    print!("{}", crate::live_stats::indented(&report.stats));
    Ok(report)
}
