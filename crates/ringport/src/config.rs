//! Engine settings shared by servers and clients, with their documented defaults.

use crate::admission::AdmissionConfig;
use crate::codec::Codec;
pub use crate::sys::Backend;
use std::time::Duration;

/// Settings of the I/O engine (workers, rings, buffers). Servers and clients share them.
///
/// Non-exhaustive (settings are added over time): start from [`EngineConfig::default`]
/// and set the fields you need, or use the builders' setters.
///
/// ```
/// let mut config = ringport::EngineConfig::default();
/// config.workers = 2;
/// config.ring_entries = 256;
/// let builder = ringport::Server::builder().config(config);
/// # drop(builder);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Number of I/O workers. Default: the available parallelism.
    pub workers: usize,
    /// Submission-queue entries per worker ring. Default: 1024.
    pub ring_entries: u32,
    /// Completion-queue entries per worker ring. Default: 16384 (multishot receives and
    /// accepts post many completions per submission).
    pub cq_entries: u32,
    /// Provided receive buffers per worker (a power of two, at most 32768). Default: 1024.
    pub recv_buffers: u16,
    /// Size of each provided receive buffer in bytes. Default: 4096. Receive memory per
    /// worker is `recv_buffers * recv_buffer_size` (4 MiB by default), whatever the number
    /// of connections.
    pub recv_buffer_size: u32,
    /// Datagram buffers per worker (a power of two, at most 32768), made only when the
    /// engine has datagram sockets. Default 0: as many as 4 MiB holds at `datagram_max`
    /// (64 for the largest datagrams, 2048 for 1,500-byte ones), at least 64.
    pub datagram_buffers: u16,
    /// The largest datagram payload received whole; longer ones are reported truncated.
    /// Default: 65,507 (the most IPv4 UDP carries). Datagram memory per worker is about
    /// `datagram_buffers * datagram_max` (4 MiB by default).
    pub datagram_max: u32,
    /// Set TCP_NODELAY on every connection. Default: true.
    pub nodelay: bool,
    /// TCP keepalive: SO_KEEPALIVE on, and the first probe after this long without
    /// traffic, then one probe per this interval (TCP_KEEPIDLE and TCP_KEEPINTVL, whole
    /// seconds, 1 s to 32767 s; the probe count stays the system's, 9 by default).
    /// Set on listeners (accepted connections inherit it) and outbound sockets.
    /// Default: none (off).
    pub tcp_keepalive: Option<Duration>,
    /// TCP_USER_TIMEOUT: sent data may stay unacknowledged this long before the kernel
    /// drops the connection (the handler then sees an error close, usually
    /// `CloseReason::Io(ETIMEDOUT)`); with keepalive on, it also bounds how long
    /// unanswered probes keep a dead peer's connection open. Milliseconds, rounded up. Set
    /// on listeners (inherited) and outbound sockets. Default: none (the system's).
    pub tcp_user_timeout: Option<Duration>,
    /// Listen backlog. Default: 1024.
    pub backlog: i32,
    /// Time an outbound connect may take before it fails with
    /// [`crate::CloseReason::ConnectTimeout`]. Default: 10 s.
    pub connect_timeout: Duration,
    /// Batching of completions: while busy, a worker waits up to this long for as many
    /// completions as its previous wake-up reaped, then takes what has arrived. Fewer
    /// system calls per message for at most this much added latency; zero turns it off.
    /// Needs Linux 6.12 (min-wait); ignored before. Default: 50 µs.
    pub batch_wait: Duration,
    /// How received bytes are cut into deliveries: [`Codec::Raw`] (default) hands over
    /// each received chunk; a framing codec hands over whole frames, one `on_data` call
    /// each, and [`crate::Conn::send_frame`] encodes with it.
    pub codec: Codec,
    /// Which I/O backend runs the workers. Default: [`Backend::Auto`].
    pub backend: Backend,
    /// Admission control at accept (caps, rates, allow/deny lists). Default: none.
    pub admission: AdmissionConfig,
    /// Connection timeouts (first data, idle, read, write). Default: none.
    pub timeouts: Timeouts,
    /// Send-queue water marks, cap and engine-wide budget. Default: marks at 256 KiB /
    /// 64 KiB, no cap, no budget.
    pub send_queue: SendQueueLimits,
    /// Bytes each worker may hold in partly received frames (frames that span receives,
    /// and exact reads), over all its connections. A frame's buffer grows with the bytes
    /// that arrive, never with what its header announces; a connection whose growing
    /// frame takes the worker over this budget is closed with
    /// [`crate::CloseReason::FrameBudget`] (its memory freed at once). The check follows
    /// each receive, so the budget may be passed by one reader's growth in one receive
    /// (a buffer grows by doubling, up to its frame's length).
    /// `usize::MAX`: no budget; 0: only frames that arrive within one receive are
    /// delivered. Default: 64 MiB per worker.
    pub frame_budget: usize,
    /// Bytes that other threads may have waiting in one worker's mailbox (sends and
    /// broadcasts through [`crate::ConnRef`] and the server, plus a small cost per
    /// message) before the worker has taken them; beyond it, posts fail with
    /// [`crate::SendError::Full`] instead of growing the queue without limit (a shutdown
    /// is always taken). At least 4096. Default: 64 MiB per worker.
    pub mailbox_bytes: usize,
    /// Threads of a job pool the engine makes for itself at start (0: none), unless
    /// `job_pool` gives one. Default: 0.
    pub job_threads: usize,
    /// A job pool to use (shared with other engines, sized and bounded as built); wins
    /// over `job_threads`. Default: none.
    pub job_pool: Option<crate::jobs::JobPool>,
    /// The most jobs (and async tasks) one connection may have outstanding: at the cap
    /// the engine hands the connection no data and stops reading from it until a result
    /// is delivered (see [`crate::jobs`]). At least 1. Default:
    /// [`crate::jobs::DEFAULT_JOBS_PER_CONNECTION`] (32).
    pub jobs_per_connection: usize,
    /// The tokio runtime `Conn::spawn_async` runs futures on (feature `tokio`).
    /// Default: none.
    #[cfg(feature = "tokio")]
    pub tokio_runtime: Option<tokio::runtime::Handle>,
    /// Test hook (feature `test-hooks`, not part of the stable API): make the io_uring
    /// probe fail, as on a kernel or container without it.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub inject_uring_probe_failure: bool,
    /// Test hook (feature `test-hooks`, not part of the stable API): how far a freed
    /// slot's generation moves (1). 2^24 brings it round at once, as 2^24 reuses of the
    /// slot would.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub inject_generation_step: u32,
}

/// The smallest mailbox bound: below it even control messages (a close, a connect, a
/// registry question) would never fit.
const MAILBOX_BYTES_MIN: usize = 4096;

/// Connection timeouts, each off when `None`. A connection closes with
/// [`crate::CloseReason::Timeout`] naming the one that fired; queued bytes are dropped
/// and counted as undelivered.
///
/// Non-exhaustive: start from [`Timeouts::default`] (all off) and set the ones you need.
///
/// ```
/// use std::time::Duration;
///
/// let mut timeouts = ringport::Timeouts::default();
/// timeouts.idle = Some(Duration::from_secs(60));
/// timeouts.heartbeat = Some(ringport::Heartbeat::new(Duration::from_secs(10), 3, b"PING\n"));
/// let builder = ringport::Server::builder().timeouts(timeouts);
/// # drop(builder);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Connected but nothing received for this long.
    pub first_data: Option<Duration>,
    /// Nothing received and nothing sent for this long.
    pub idle: Option<Duration>,
    /// With a framing codec: a frame started and not finished within this long (a
    /// slowloris defence). With the raw codec: nothing received for this long.
    pub read: Option<Duration>,
    /// Queued bytes made no progress for this long (the peer stopped reading).
    pub write: Option<Duration>,
    /// Ping a silent peer, and close it when it stays silent (see [`Heartbeat`]).
    pub heartbeat: Option<Heartbeat>,
}

/// An application heartbeat: when nothing has been received for `every`, send `ping`
/// (framed by the connection's codec); any byte received resets the count; after
/// `misses` pings without an answer, the next silent `every` closes the connection with
/// [`crate::Timeout::Heartbeat`]. Non-exhaustive: made with [`Heartbeat::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Silence before each ping.
    pub every: Duration,
    /// Pings sent without an answer before the connection is closed.
    pub misses: u32,
    /// The ping's payload.
    pub ping: &'static [u8],
}

impl Heartbeat {
    /// Ping with `ping` after each `every` of silence; close after `misses` unanswered
    /// pings.
    pub fn new(every: Duration, misses: u32, ping: &'static [u8]) -> Heartbeat {
        Heartbeat {
            every,
            misses,
            ping,
        }
    }
}

impl Timeouts {
    pub(crate) fn any(&self) -> bool {
        self.first_data.is_some()
            || self.idle.is_some()
            || self.read.is_some()
            || self.write.is_some()
            || self.heartbeat.is_some()
    }
}

/// Send-queue limits, in bytes of a connection's queue (what `send` accepted and the
/// kernel has not taken yet).
///
/// Non-exhaustive: start from [`SendQueueLimits::default`] and set the fields you need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendQueueLimits {
    /// Above this, `Handler::on_writable(false)` is called once.
    pub high_water: usize,
    /// Back at or below this, `Handler::on_writable(true)` is called once.
    pub low_water: usize,
    /// Above this the connection closes with [`crate::CloseReason::SlowReader`].
    pub max: Option<usize>,
    /// Stop reading from a connection while its queue is above the high mark (an echo or
    /// proxy then pushes back on its peer instead of buffering).
    pub pause_reading: bool,
    /// Queued bytes allowed over the whole engine; when exceeded, a connection above its
    /// low mark closes as a slow reader.
    pub budget: Option<usize>,
}

impl Default for SendQueueLimits {
    fn default() -> Self {
        SendQueueLimits {
            high_water: 256 * 1024,
            low_water: 64 * 1024,
            max: None,
            pause_reading: false,
            budget: None,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ring_entries: 1024,
            cq_entries: 16384,
            recv_buffers: 1024,
            recv_buffer_size: 4096,
            datagram_buffers: 0,
            datagram_max: 65_507,
            nodelay: true,
            tcp_keepalive: None,
            tcp_user_timeout: None,
            backlog: 1024,
            connect_timeout: Duration::from_secs(10),
            batch_wait: Duration::from_micros(50),
            codec: Codec::Raw,
            backend: Backend::Auto,
            admission: AdmissionConfig::default(),
            timeouts: Timeouts::default(),
            send_queue: SendQueueLimits::default(),
            frame_budget: 64 << 20,
            mailbox_bytes: 64 << 20,
            job_threads: 0,
            job_pool: None,
            jobs_per_connection: crate::jobs::DEFAULT_JOBS_PER_CONNECTION,
            #[cfg(feature = "tokio")]
            tokio_runtime: None,
            #[cfg(feature = "test-hooks")]
            inject_uring_probe_failure: false,
            #[cfg(feature = "test-hooks")]
            inject_generation_step: 1,
        }
    }
}

impl EngineConfig {
    /// Whether the io_uring probe is to fail (a test hook; false without `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub(crate) fn uring_probe_failure(&self) -> bool {
        self.inject_uring_probe_failure
    }

    /// Whether the io_uring probe is to fail: never without the `test-hooks` feature.
    #[cfg(not(feature = "test-hooks"))]
    pub(crate) fn uring_probe_failure(&self) -> bool {
        false
    }

    /// How far a freed slot's generation moves (a test hook; 1 without `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub(crate) fn generation_step(&self) -> u32 {
        self.inject_generation_step
    }

    /// How far a freed slot's generation moves: 1 without the `test-hooks` feature.
    #[cfg(not(feature = "test-hooks"))]
    pub(crate) fn generation_step(&self) -> u32 {
        1
    }

    pub(crate) fn driver_config(&self) -> crate::sys::DriverConfig {
        crate::sys::DriverConfig {
            ring_entries: self.ring_entries,
            cq_entries: self.cq_entries,
            recv_buffers: self.recv_buffers,
            recv_buffer_size: self.recv_buffer_size,
            // Set by the engine when it has datagram sockets (`with_datagrams`).
            datagram_buffers: 0,
            datagram_buffer_size: 0,
        }
    }

    /// The datagram buffer count: as set, or 4 MiB's worth (a power of two, 64 to 32768).
    fn datagram_buffer_count(&self) -> u16 {
        if self.datagram_buffers != 0 {
            return self.datagram_buffers;
        }
        let size = (self.datagram_max + crate::sys::DATAGRAM_HEADROOM) as usize;
        let fit = ((4usize << 20) / size).clamp(64, 32768);
        // The largest power of two not above what fits.
        (1usize << (usize::BITS - 1 - fit.leading_zeros())) as u16
    }

    /// The driver configuration of an engine with datagram sockets.
    pub(crate) fn driver_config_with_datagrams(&self) -> crate::sys::DriverConfig {
        crate::sys::DriverConfig {
            datagram_buffers: self.datagram_buffer_count(),
            datagram_buffer_size: self.datagram_max + crate::sys::DATAGRAM_HEADROOM,
            ..self.driver_config()
        }
    }

    /// What connections need to spawn jobs (after `start` made the pool, if any).
    pub(crate) fn job_settings(&self) -> crate::jobs::JobSettings {
        crate::jobs::JobSettings {
            pool: self.job_pool.clone(),
            per_connection: self.jobs_per_connection,
            #[cfg(feature = "tokio")]
            runtime: self.tokio_runtime.clone(),
        }
    }

    pub(crate) fn sock_opts(&self) -> crate::sys::socket::SockOpts {
        crate::sys::socket::SockOpts {
            nodelay: self.nodelay,
            keepalive: self.tcp_keepalive,
            user_timeout: self.tcp_user_timeout,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_string()));
        if self.workers == 0 || self.workers > 255 {
            return bad("workers must be between 1 and 255");
        }
        if !self.recv_buffers.is_power_of_two() || self.recv_buffers > 32768 {
            return bad("recv_buffers must be a power of two, at most 32768");
        }
        let count = self.datagram_buffers;
        if count != 0 && (!count.is_power_of_two() || count > 32768) {
            return bad("datagram_buffers must be 0 (sized by datagram_max) or a power of two, at most 32768");
        }
        if self.datagram_max > 1 << 20 {
            return bad("datagram_max must be at most 1 MiB");
        }
        if self.recv_buffer_size < 64 {
            return bad("recv_buffer_size must be at least 64 bytes");
        }
        if self.send_queue.low_water > self.send_queue.high_water {
            return bad("send_queue.low_water must not be above high_water");
        }
        if self.ring_entries < 8 || self.cq_entries < self.ring_entries {
            return bad("ring_entries must be >= 8 and cq_entries >= ring_entries");
        }
        if let Some(d) = self.tcp_keepalive {
            if d.is_zero() || d > Duration::from_secs(32767) {
                return bad("tcp_keepalive must be between 1 s and 32767 s");
            }
        }
        if self.mailbox_bytes < MAILBOX_BYTES_MIN {
            return bad("mailbox_bytes must be at least 4096 (room for a few messages)");
        }
        if self.jobs_per_connection == 0 {
            return bad("jobs_per_connection must be at least 1");
        }
        if let Some(hb) = self.timeouts.heartbeat {
            if hb.every.is_zero() {
                return bad("the heartbeat period must be above zero");
            }
        }
        if let Some(d) = self.tcp_user_timeout {
            if d.is_zero() || d > Duration::from_millis(i32::MAX as u64) {
                return bad("tcp_user_timeout must be above zero and below 24 days");
            }
        }
        Ok(())
    }
}

/// The engine settings every builder (server and client) offers, as `self.config`
/// setters.
macro_rules! engine_setters {
    () => {
        /// Number of I/O workers (default: available parallelism).
        pub fn workers(mut self, n: usize) -> Self {
            self.config.workers = n;
            self
        }

        /// Provided receive buffers per worker: `count` (a power of two) of `size` bytes.
        pub fn recv_buffers(mut self, count: u16, size: u32) -> Self {
            self.config.recv_buffers = count;
            self.config.recv_buffer_size = size;
            self
        }

        /// Datagram buffers per worker (`count`, a power of two, or 0: 4 MiB's worth) and
        /// the largest datagram payload received whole (default: 0 and 65,507 bytes);
        /// made only when the engine has datagram sockets.
        pub fn datagram_buffers(mut self, count: u16, max_payload: u32) -> Self {
            self.config.datagram_buffers = count;
            self.config.datagram_max = max_payload;
            self
        }

        /// Set TCP_NODELAY on connections (default: true).
        pub fn nodelay(mut self, on: bool) -> Self {
            self.config.nodelay = on;
            self
        }

        /// TCP keepalive: probe after `idle` without traffic, then every `idle` (see
        /// [`crate::EngineConfig::tcp_keepalive`]; default: off).
        pub fn tcp_keepalive(mut self, idle: std::time::Duration) -> Self {
            self.config.tcp_keepalive = Some(idle);
            self
        }

        /// TCP_USER_TIMEOUT: drop a connection whose sent data stays unacknowledged this long
        /// (see [`crate::EngineConfig::tcp_user_timeout`]; default: the system's).
        pub fn tcp_user_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.tcp_user_timeout = Some(timeout);
            self
        }

        /// Time an outbound connect may take before `on_connect_failed(.., ConnectTimeout)`
        /// (default 10 s).
        pub fn connect_timeout(mut self, d: std::time::Duration) -> Self {
            self.config.connect_timeout = d;
            self
        }

        /// Frame received bytes with `codec`: `on_data` then gets whole frames and
        /// [`crate::Conn::send_frame`] encodes with it (default: [`crate::Codec::Raw`]).
        pub fn codec(mut self, codec: crate::Codec) -> Self {
            self.config.codec = codec;
            self
        }

        /// The I/O backend (default [`crate::Backend::Auto`]: io_uring when available).
        pub fn backend(mut self, backend: crate::Backend) -> Self {
            self.config.backend = backend;
            self
        }

        /// Connection timeouts (first data, idle, read, write; default: none).
        pub fn timeouts(mut self, timeouts: crate::Timeouts) -> Self {
            self.config.timeouts = timeouts;
            self
        }

        /// Send-queue water marks, hard cap and engine-wide budget.
        pub fn send_queue(mut self, limits: crate::SendQueueLimits) -> Self {
            self.config.send_queue = limits;
            self
        }

        /// Bytes each worker may hold in partly received frames (see
        /// [`crate::EngineConfig::frame_budget`]; default 64 MiB).
        pub fn frame_budget(mut self, bytes: usize) -> Self {
            self.config.frame_budget = bytes;
            self
        }

        /// Bytes other threads may leave waiting in one worker's mailbox before posts fail
        /// with [`crate::SendError::Full`] (see [`crate::EngineConfig::mailbox_bytes`];
        /// default 64 MiB).
        pub fn mailbox_bytes(mut self, bytes: usize) -> Self {
            self.config.mailbox_bytes = bytes;
            self
        }

        /// Give the engine a job pool of `threads` threads, made when it starts (see
        /// [`crate::jobs`]). Use [`Self::job_pool`] to share one pool between engines.
        pub fn jobs(mut self, threads: usize) -> Self {
            self.config.job_threads = threads;
            self
        }

        /// Run the engine's jobs on `pool` (which other engines may share).
        pub fn job_pool(mut self, pool: crate::jobs::JobPool) -> Self {
            self.config.job_pool = Some(pool);
            self
        }

        /// The most jobs one connection may have outstanding (see
        /// [`crate::EngineConfig::jobs_per_connection`]; default 32).
        pub fn jobs_per_connection(mut self, n: usize) -> Self {
            self.config.jobs_per_connection = n;
            self
        }

        /// The tokio runtime `Conn::spawn_async` runs futures on (feature `tokio`).
        #[cfg(feature = "tokio")]
        pub fn tokio_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
            self.config.tokio_runtime = Some(runtime);
            self
        }

        /// Replace every engine setting at once.
        pub fn config(mut self, config: crate::EngineConfig) -> Self {
            self.config = config;
            self
        }
    };
}
pub(crate) use engine_setters;

#[cfg(test)]
mod tests {
    use super::EngineConfig;

    #[test]
    fn datagram_buffers_come_to_about_4_mib_a_worker_unless_set() {
        let count = |max: u32| {
            let c = EngineConfig {
                datagram_max: max,
                ..EngineConfig::default()
            };
            c.datagram_buffer_count()
        };
        assert_eq!(count(65_507), 64);
        assert_eq!(count(1500), 2048);
        assert_eq!(count(16), 16_384);
        assert_eq!(count(1 << 20), 64);
        let set = EngineConfig {
            datagram_buffers: 8,
            ..EngineConfig::default()
        };
        assert_eq!(set.datagram_buffer_count(), 8);
    }
}
