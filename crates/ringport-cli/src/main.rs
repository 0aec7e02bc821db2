//! `ringport`: an echo server, a load tool and a self-contained demo on the ringport
//! engine.
#![forbid(unsafe_code)]

mod bench;
mod demo;
mod echo_server;
mod pattern;
mod report;
mod signal;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "ringport",
    version,
    about = "io_uring echo server, load tool and demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve TCP echo until SIGINT/SIGTERM.
    EchoServer {
        /// Address to listen on (repeatable; port 0 picks a free port).
        #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:7007")]
        listen: Vec<String>,
        /// I/O workers (default: available parallelism).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=255))]
        workers: Option<u64>,
        /// Provided receive buffers per worker (a power of two).
        #[arg(long)]
        recv_buffers: Option<u16>,
        /// Size of each receive buffer in bytes.
        #[arg(long, value_name = "BYTES")]
        recv_buffer_size: Option<u32>,
    },
    /// Load an echo server and verify every echoed byte.
    Bench {
        /// The echo server's address.
        addr: String,
        #[command(flatten)]
        load: LoadArgs,
        /// Seconds to measure.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        duration: f64,
        /// Seconds to run before measuring.
        #[arg(long, default_value_t = 0.0, value_name = "SECS")]
        warmup: f64,
        /// I/O workers of the client (default: available parallelism).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=255))]
        workers: Option<u64>,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run an embedded echo server and the load tool against it.
    Demo {
        #[command(flatten)]
        load: LoadArgs,
        /// Seconds to measure.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        duration: f64,
    },
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Concurrent connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    size: u64,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pipeline: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    match Cli::parse().command {
        Command::EchoServer {
            listen,
            workers,
            recv_buffers,
            recv_buffer_size,
        } => echo_server::run(echo_server::EchoOptions {
            listen,
            workers: workers_or_default(workers),
            recv_buffers,
            recv_buffer_size,
        }),
        Command::Bench {
            addr,
            load,
            duration,
            warmup,
            workers,
            json,
        } => {
            let report = bench::run(bench::BenchOptions {
                addr: resolve(&addr)?,
                connections: to_usize(load.connections)?,
                size: to_usize(load.size)?,
                pipeline: to_usize(load.pipeline)?,
                duration: seconds(duration, "--duration")?,
                warmup: seconds(warmup, "--warmup")?,
                workers: workers_or_default(workers),
                progress: true,
            })?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            report.check()
        }
        Command::Demo { load, duration } => demo::run(demo::DemoOptions {
            duration: seconds(duration, "--duration")?,
            connections: to_usize(load.connections)?,
            size: to_usize(load.size)?,
            pipeline: to_usize(load.pipeline)?,
        }),
    }
}

fn workers_or_default(workers: Option<u64>) -> usize {
    workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get().min(255)),
        |n| n as usize,
    )
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr:?}"))?
        .next()
        .with_context(|| format!("{addr:?} resolved to no address"))
}

fn seconds(secs: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs).with_context(|| format!("{flag} {secs}: not a duration"))
}

fn to_usize(n: u64) -> anyhow::Result<usize> {
    usize::try_from(n).context("number too large for this platform")
}
