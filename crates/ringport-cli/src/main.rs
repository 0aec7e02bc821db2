//! `ringport`: TCP and UDP echo servers, a load tool and a self-contained demo on the
//! ringport engine.
#![forbid(unsafe_code)]

mod bench;
mod defences;
mod demo;
mod echo_server;
mod file;
mod job_work;
mod live_stats;
mod pattern;
mod report;
mod serving;
mod signal;
mod udp_echo;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "ringport",
    version,
    about = "io_uring TCP and UDP echo servers, load tool and demo"
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
        #[command(flatten)]
        codec: CodecArgs,
        /// I/O backend: auto (io_uring if available, else poll), uring or poll.
        #[arg(long, default_value = "auto", value_parser = parse_backend)]
        backend: ringport::Backend,
        #[command(flatten)]
        defences: defences::DefenceArgs,
        /// Serve Prometheus metrics (GET /metrics) on this address; port 0 picks a free
        /// port, printed as "metrics on ADDR".
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
        /// Print a summary line every second: connections open, accepted, refused and
        /// closed, bytes in and out per second, bytes queued, timeouts, slow readers.
        #[arg(long)]
        stats: bool,
        #[command(flatten)]
        jobs: JobArgs,
    },
    /// Serve UDP echo (each datagram back to its sender) until SIGINT/SIGTERM.
    UdpEcho {
        /// Address to bind (repeatable; port 0 picks a free port).
        #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:7007")]
        listen: Vec<String>,
        /// I/O workers, each with its own socket per address (SO_REUSEPORT; default:
        /// available parallelism).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=255))]
        workers: Option<u64>,
        /// I/O backend: auto (RINGPORT_BACKEND if set, else io_uring if available, else
        /// poll), uring or poll.
        #[arg(long, default_value = "auto", value_parser = parse_backend)]
        backend: ringport::Backend,
        /// Largest datagram echoed whole (default 65,507); longer ones arrive truncated
        /// and are counted, not echoed.
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
        datagram_max: Option<u32>,
        /// Kernel receive and send buffer of each socket (SO_RCVBUF/SO_SNDBUF; the kernel
        /// drops datagrams arriving while the receive buffer is full). Default: the
        /// system's.
        #[arg(long, value_name = "BYTES")]
        socket_buffer: Option<usize>,
        /// Print a summary line every second: datagrams and bytes in and out per second,
        /// truncated, dropped, send and receive errors.
        #[arg(long)]
        stats: bool,
    },
    /// Load an echo server and verify every echoed byte.
    ///
    /// Default: closed loop (each connection keeps --pipeline messages in flight).
    /// --rate, --churn and --idle select the other modes; --udp loads a UDP echo server.
    Bench(BenchArgs),
    /// Serve the regular files under a root directory (and store uploads with
    /// --allow-upload) until SIGINT/SIGTERM.
    FileServer(FileServerArgs),
    /// Download a file from a file server and verify its digest.
    Get {
        /// The file server's address.
        addr: String,
        /// The file's name under the server's root.
        name: std::ffi::OsString,
        /// Where to write it (default: the name's last component, here).
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        output: Option<std::path::PathBuf>,
        /// Continue a partial download from the local file's length (the whole file is
        /// verified).
        #[arg(long)]
        resume: bool,
        /// Skip the digest (the server computes none).
        #[arg(long)]
        no_verify: bool,
        /// Seconds the connect, or any read or write, may take.
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Upload a file to a file server (started with --allow-upload) and verify the
    /// digest of what it stored.
    Put {
        /// The file server's address.
        addr: String,
        /// The local file.
        path: std::path::PathBuf,
        /// The name to store it under (default: the file's name).
        #[arg(long, value_name = "NAME")]
        name: Option<std::ffi::OsString>,
        /// Seconds the connect, or any read or write, may take.
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        timeout: f64,
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
struct FileServerArgs {
    /// The directory served: names resolve strictly under it.
    #[arg(long, value_name = "DIR")]
    root: std::path::PathBuf,
    /// Address to listen on (repeatable; port 0 picks a free port).
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:7008")]
    listen: Vec<String>,
    /// Accept uploads (PUT); refused otherwise.
    #[arg(long)]
    allow_upload: bool,
    /// Largest upload accepted, in bytes (default: no limit).
    #[arg(long, value_name = "BYTES", requires = "allow_upload")]
    max_upload: Option<u64>,
    /// I/O workers (default: available parallelism).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=255))]
    workers: Option<u64>,
    /// Threads of the job pool that computes digests and stores uploads (default:
    /// available parallelism).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    jobs: Option<u64>,
    /// I/O backend: auto (io_uring if available, else poll), uring or poll.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: ringport::Backend,
    #[command(flatten)]
    defences: defences::DefenceArgs,
    /// Serve Prometheus metrics (GET /metrics) on this address; port 0 picks a free
    /// port, printed as "metrics on ADDR".
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Print a summary line every second: the echo server's, then files and bytes sent
    /// and received, requests and refusals.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The echo server's address.
    addr: String,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    codec: CodecArgs,
    /// Seconds to measure (idle: seconds to hold once every connection is up).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Seconds to run before measuring.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    warmup: f64,
    /// I/O workers of the client (default: available parallelism).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=255))]
    workers: Option<u64>,
    /// Print the report as one JSON object on stdout (its last line).
    #[arg(long)]
    json: bool,
    /// Open loop: send R messages per second in total, spread evenly over the
    /// connections; latency counts from each message's scheduled send time.
    #[arg(long, value_name = "R", conflicts_with_all = ["churn", "idle"])]
    rate: Option<f64>,
    /// Rate mode: messages outstanding per connection beyond which a scheduled send is
    /// skipped and counted as behind (an error).
    #[arg(long, default_value_t = 1024, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    max_outstanding: u64,
    /// Churn: each of --connections slots connects, does --churn-messages echoes,
    /// closes and reconnects at once; reports connections per second.
    #[arg(long, conflicts_with = "idle")]
    churn: bool,
    /// Churn mode: echo round trips per connection.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    churn_messages: u64,
    /// Open C connections and hold them without traffic for --duration; prints
    /// "all C connections up after X s" on stdout once they are.
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u64).range(1..))]
    idle: Option<u64>,
    /// Local source address to connect from (repeatable: connections go round robin
    /// over them; e.g. 127.0.0.2 and 127.0.0.3 for more than ~25k loopback connections).
    #[arg(long = "source-ip", value_name = "IP")]
    source_ip: Vec<IpAddr>,
    /// Seconds a connect may take before it counts as failed.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    connect_timeout: f64,
    /// Play a hostile client for --duration with at most --connections sockets and
    /// report how the server treated it: silent, slowloris, slow-reader, flood or reset.
    #[arg(long, value_name = "KIND", conflicts_with_all = ["rate", "churn", "idle"])]
    attack: Option<bench::Attack>,
    /// Attacks: seconds between two bytes (slowloris); seconds without write progress
    /// after which a connection counts as stalled (slow-reader).
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    interval: f64,
    /// UDP: --connections client sockets on one thread send tagged datagrams of --size
    /// bytes (16 to 65,507, header included), --pipeline in flight per socket or --rate
    /// in total, and check every echo byte for byte; reports loss and reordering too.
    #[arg(long, conflicts_with_all = ["churn", "idle", "attack", "codec", "max_frame",
          "workers", "connect_timeout"])]
    udp: bool,
    /// UDP: seconds a datagram may take to come back before it counts as lost.
    #[arg(long, default_value_t = 1.0, value_name = "SECS", requires = "udp")]
    loss_timeout: f64,
}

impl BenchArgs {
    fn mode(&self) -> anyhow::Result<bench::Mode> {
        Ok(if let Some(kind) = self.attack {
            bench::Mode::Attack {
                kind,
                interval: seconds(self.interval, "--interval")?,
            }
        } else if let Some(per_sec) = self.rate {
            anyhow::ensure!(
                per_sec.is_finite() && per_sec > 0.0,
                "--rate {per_sec}: must be a positive number of messages per second"
            );
            bench::Mode::Rate {
                per_sec,
                max_outstanding: to_usize(self.max_outstanding)?,
            }
        } else if self.churn {
            bench::Mode::Churn {
                messages: to_usize(self.churn_messages)?,
            }
        } else if self.idle.is_some() {
            bench::Mode::Idle
        } else {
            bench::Mode::ClosedLoop
        })
    }
}

/// `echo-server`'s job pool: each frame (or raw chunk) is echoed back unchanged, in
/// order, once a job on the pool has done --job-work for it.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Jobs")]
struct JobArgs {
    /// Run a job pool of N threads; each frame (raw: each chunk received) is echoed only
    /// after a job has done --job-work on it (needs --job-work).
    #[arg(long, value_name = "N", requires = "job_work",
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    jobs: Option<u64>,
    /// The work of each job: hash:ITERS (ITERS rounds of a 64-bit hash over the bytes,
    /// 0 to 10,000,000) or sleep:MS (the pool thread sleeps MS ms, 0 to 60,000; a
    /// stand-in for blocking calls). Needs --jobs.
    #[arg(long, value_name = "KIND", requires = "jobs", value_parser = job_work::parse_job_work)]
    job_work: Option<job_work::JobWork>,
}

impl JobArgs {
    fn build(&self) -> anyhow::Result<Option<job_work::EchoJobs>> {
        Ok(match (self.jobs, self.job_work) {
            (Some(threads), Some(work)) => Some(job_work::EchoJobs {
                threads: to_usize(threads)?,
                work,
            }),
            // clap's `requires` rejects one without the other; be explicit anyway.
            (None, None) => None,
            _ => anyhow::bail!("--jobs and --job-work go together"),
        })
    }
}

#[derive(Debug, clap::Args)]
struct CodecArgs {
    /// Framing: raw (bytes as they come), length:N (N-byte big-endian length prefix, N in
    /// 1, 2, 4, 8), line (lines ended by \n or \r\n) or fixed:N. The echo server echoes
    /// whole frames; the load tool frames its messages (--size is the payload).
    #[arg(long, default_value = "raw", value_name = "CODEC")]
    codec: ringport::Codec,
    /// Largest frame payload accepted (default: 8 MiB for length, 64 KiB for line).
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<usize>,
}

impl CodecArgs {
    fn build(&self) -> anyhow::Result<ringport::Codec> {
        let codec = self.codec.clone();
        Ok(match self.max_frame {
            Some(max) => {
                anyhow::ensure!(max > 0, "--max-frame must be at least 1");
                codec.with_max_frame(max)
            }
            None => codec,
        })
    }
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Concurrent connections (churn: concurrent connect-echo-close slots).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    size: u64,
    /// Messages in flight per connection (closed loop and churn; rate mode is open loop).
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
            codec,
            backend,
            defences,
            metrics,
            stats,
            jobs,
        } => echo_server::run(echo_server::EchoOptions {
            listen,
            workers: workers_or_default(workers),
            recv_buffers,
            recv_buffer_size,
            codec: codec.build()?,
            backend,
            defences,
            metrics: metrics
                .as_deref()
                .map(resolve)
                .transpose()
                .context("--metrics")?,
            stats,
            jobs: jobs.build()?,
        }),
        Command::UdpEcho {
            listen,
            workers,
            backend,
            datagram_max,
            socket_buffer,
            stats,
        } => udp_echo::run(udp_echo::UdpEchoOptions {
            listen,
            workers: workers_or_default(workers),
            backend,
            datagram_max,
            socket_buffer,
            stats,
        }),
        Command::Bench(args) if args.udp => bench_udp(&args),
        Command::Bench(args) => {
            let report = bench::run(bench::BenchOptions {
                addr: resolve(&args.addr)?,
                mode: args.mode()?,
                connections: to_usize(args.idle.unwrap_or(args.load.connections))?,
                size: to_usize(args.load.size)?,
                pipeline: to_usize(args.load.pipeline)?,
                duration: seconds(args.duration, "--duration")?,
                warmup: seconds(args.warmup, "--warmup")?,
                workers: workers_or_default(args.workers),
                progress: true,
                sources: args.source_ip.clone(),
                connect_timeout: seconds(args.connect_timeout, "--connect-timeout")?,
                codec: args.codec.build()?,
            })?;
            if args.json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            report.check()
        }
        Command::FileServer(args) => file_server(args),
        Command::Get {
            addr,
            name,
            output,
            resume,
            no_verify,
            timeout,
        } => file::get::run(&file::get::GetOptions {
            addr: resolve(&addr)?,
            name: name.into_encoded_bytes(),
            output,
            resume,
            verify: !no_verify,
            timeout: seconds(timeout, "--timeout")?,
        }),
        Command::Put {
            addr,
            path,
            name,
            timeout,
        } => file::put::run(&file::put::PutOptions {
            addr: resolve(&addr)?,
            path,
            name: name.map(std::ffi::OsString::into_encoded_bytes),
            timeout: seconds(timeout, "--timeout")?,
        }),
        Command::Demo { load, duration } => demo::run(demo::DemoOptions {
            duration: seconds(duration, "--duration")?,
            connections: to_usize(load.connections)?,
            size: to_usize(load.size)?,
            pipeline: to_usize(load.pipeline)?,
        }),
    }
}

/// `file-server`.
fn file_server(args: FileServerArgs) -> anyhow::Result<()> {
    file::serve::run(file::serve::FileServerOptions {
        root: args.root,
        listen: args.listen,
        max_upload: args.max_upload,
        allow_upload: args.allow_upload,
        workers: workers_or_default(args.workers),
        jobs: args
            .jobs
            .map_or_else(|| workers_or_default(None), |n| n as usize),
        backend: args.backend,
        defences: args.defences,
        metrics: args
            .metrics
            .as_deref()
            .map(resolve)
            .transpose()
            .context("--metrics")?,
        stats: args.stats,
    })
}

/// `bench --udp`.
fn bench_udp(args: &BenchArgs) -> anyhow::Result<()> {
    let report = bench::udp::run(&bench::udp::UdpOptions {
        addr: resolve(&args.addr)?,
        connections: to_usize(args.load.connections)?,
        size: to_usize(args.load.size)?,
        pipeline: to_usize(args.load.pipeline)?,
        rate: args.rate,
        max_outstanding: to_usize(args.max_outstanding)?,
        duration: seconds(args.duration, "--duration")?,
        warmup: seconds(args.warmup, "--warmup")?,
        loss_timeout: seconds(args.loss_timeout, "--loss-timeout")?,
        sources: args.source_ip.clone(),
        progress: true,
    })?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
    report.check()
}

fn parse_backend(s: &str) -> Result<ringport::Backend, String> {
    match s {
        "auto" => Ok(ringport::Backend::Auto),
        "uring" => Ok(ringport::Backend::Uring),
        "poll" => Ok(ringport::Backend::Poll),
        other => Err(format!("unknown backend {other:?} (auto, uring, poll)")),
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
