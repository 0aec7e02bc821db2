//! The engine: N workers, each owning one I/O backend (io_uring or readiness), its
//! connections and its mailbox.
//!
//! `Engine` is the cross-thread face (start, connect, stats, shutdown); everything that
//! touches a connection happens on its worker (see `worker`).

mod accept;
mod backpressure;
mod callbacks;
mod conn_state;
mod datagrams;
mod delivery;
mod jobs;
mod lifecycle;
mod lost;
pub(crate) mod mailbox;
mod registry;
#[cfg(test)]
mod scenarios;
mod timeouts;
mod transfers;
mod watches;
mod worker;

use crate::admission::{Gate, IpNet};
use crate::config::EngineConfig;
use crate::error::Error;
use crate::handler::Handler;
use crate::listener::ListenerSpec;
use crate::server::ShutdownReport;
use crate::stats::{Stats, WorkerStats};
use crate::sys;
use crate::workers::Workers;
use mailbox::{Mailbox, Message};
pub(crate) use registry::REGISTRY_WAIT;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::{Worker, WorkerExit, WorkerSockets};

/// What an engine's workers share besides the handler: admission control (server-wide
/// and per listener) and the budget of queued send bytes.
#[derive(Debug)]
pub(crate) struct EngineShared {
    pub gate: Gate,
    /// By listener index.
    pub listener_gates: Vec<Gate>,
    pub budget: backpressure::SendBudget,
    /// Every worker's mailbox and the files watched (see `Workers`).
    pub workers: Workers,
}

/// What a worker thread returns.
type Joined = std::thread::Result<WorkerExit>;

impl Error {
    /// The error of a post to a worker's mailbox that failed.
    pub(crate) fn from_post(e: crate::error::SendError) -> Error {
        match e {
            crate::error::SendError::Full => Error::Busy,
            _ => Error::Stopped,
        }
    }
}

struct WorkerHandle {
    mailbox: Arc<Mailbox>,
    thread: Option<JoinHandle<WorkerExit>>,
}

/// The running workers of one server or client (whatever their handler's type: that is
/// known to the worker threads only).
pub(crate) struct Engine {
    workers: Vec<WorkerHandle>,
    backend: sys::Chosen,
    shared: Arc<EngineShared>,
    stats: Vec<Arc<WorkerStats>>,
    /// Each listener's name (given, or its bound address) for the statistics.
    listener_names: Vec<String>,
    next_connect: AtomicUsize,
    /// The bound address of each datagram socket, and the one worker it is on if it is
    /// not on every worker.
    udp_addrs: Vec<SocketAddr>,
    udp_homes: Vec<Option<usize>>,
    /// The job pool, for its figures in the stats.
    job_pool: Option<crate::jobs::JobPool>,
}

impl EngineShared {
    /// An admitted connection of listener `listener` from `ip` closed (or was vetoed).
    pub(crate) fn release(&self, listener: usize, ip: std::net::IpAddr, now: Instant) {
        self.gate.release(ip, now);
        if let Some(own) = self.listener_gates.get(listener) {
            own.release(ip, now);
        }
    }
}

/// When a ban of `for_how_long` ends; `None` (lasting) for none or one too long to
/// represent (`Duration::MAX` as "forever").
pub(crate) fn ban_until(for_how_long: Option<Duration>) -> Option<Instant> {
    for_how_long.and_then(|d| Instant::now().checked_add(d))
}

fn gate(admission: &crate::admission::AdmissionConfig) -> Result<Gate, Error> {
    Gate::new(admission).map_err(|e| Error::Config(format!("admission: {e}")))
}

impl Engine {
    /// Bind one SO_REUSEPORT listener per address per worker, start the workers serving
    /// with `handler`, and return the engine with the bound addresses.
    pub(crate) fn start<H: Handler>(
        config: EngineConfig,
        listeners: &[ListenerSpec],
        udp: &[crate::udp::Udp],
        handler: H,
    ) -> Result<(Engine, Vec<SocketAddr>), Error> {
        config.validate()?;
        let mut config = config;
        if config.job_pool.is_none() && config.job_threads > 0 {
            config.job_pool = Some(crate::jobs::JobPool::new(config.job_threads)?);
        }
        let backend = sys::select(
            config.backend,
            config.driver_config(),
            config.uring_probe_failure(),
        )
        .map_err(Error::Backend)?;
        let mailboxes = (0..config.workers)
            .map(|_| Mailbox::new(config.mailbox_bytes).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Arc::new(EngineShared {
            workers: Workers::new(mailboxes.clone()),
            gate: gate(&config.admission)?,
            listener_gates: listeners
                .iter()
                .map(|l| gate(&l.admission))
                .collect::<Result<_, _>>()?,
            budget: backpressure::SendBudget {
                limit: config
                    .send_queue
                    .budget
                    .map(|b| b.min(i64::MAX as usize) as i64),
                queued: Default::default(),
            },
        });
        let (per_worker, bound) = bind_listeners(&config, listeners)?;
        let bound_udp = datagrams::bind_all(&config, udp)?;
        let mut datagram_sockets = bound_udp.per_worker;
        let handler = Arc::new(handler);
        let mut engine = Engine {
            workers: Vec::new(),
            backend,
            shared: shared.clone(),
            stats: Vec::new(),
            listener_names: listeners
                .iter()
                .zip(&bound)
                .map(|(l, addr)| l.name.clone().unwrap_or_else(|| addr.to_string()))
                .collect(),
            next_connect: AtomicUsize::new(0),
            udp_addrs: bound_udp.addrs,
            udp_homes: bound_udp.homes,
            job_pool: config.job_pool.clone(),
        };
        let mut names: Vec<&String> = engine.listener_names.iter().collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Config(format!(
                "two listeners are named {:?}: their statistics would be merged",
                w[0]
            )));
        }
        let (ready_tx, ready_rx) = mpsc::channel::<Result<&'static str, Error>>();
        for ((index, sockets), mailbox) in per_worker.into_iter().enumerate().zip(mailboxes) {
            let stats = Arc::new(WorkerStats::new(listeners.len()));
            let setup = WorkerSetup {
                index,
                config: config.clone(),
                handler: handler.clone(),
                mailbox: mailbox.clone(),
                stats: stats.clone(),
                sockets: WorkerSockets {
                    listeners: sockets
                        .into_iter()
                        .zip(listeners.iter().map(|l| l.codec.clone()))
                        .collect(),
                    datagrams: std::mem::take(&mut datagram_sockets[index]),
                },
                shared: shared.clone(),
                ready: ready_tx.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("ringport-w{index}"))
                .spawn(move || match backend {
                    sys::Chosen::Uring => run_worker::<H, sys::uring::UringDriver>(setup),
                    sys::Chosen::Poll => run_worker::<H, sys::poll::PollDriver>(setup),
                })?;
            engine.workers.push(WorkerHandle {
                mailbox,
                thread: Some(thread),
            });
            engine.stats.push(stats);
        }
        drop(ready_tx);
        let mut setup = "";
        for _ in 0..engine.workers.len() {
            match ready_rx.recv() {
                Ok(Ok(name)) => setup = name,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::Backend("a worker died while starting".into())),
            }
        }
        tracing::info!(
            workers = engine.workers.len(),
            setup,
            listeners = ?bound,
            backend = backend.name(),
            "ringport engine started"
        );
        Ok((engine, bound))
    }

    /// Open an outbound connection on the next worker (round robin).
    pub(crate) fn connect(
        &self,
        addr: SocketAddr,
        token: u64,
        bind: Option<SocketAddr>,
    ) -> Result<(), Error> {
        // Round robin over the workers still running (a lost one refuses at once).
        let n = self.workers.len();
        let first = self.next_connect.fetch_add(1, Ordering::Relaxed);
        let mut last = crate::error::SendError::WorkerStopped;
        for i in (first..first + n).map(|i| i % n) {
            match self.workers[i]
                .mailbox
                .post(Message::Connect { addr, token, bind })
            {
                Ok(()) => return Ok(()),
                Err(crate::error::SendError::WorkerStopped) => continue,
                Err(e) => last = e,
            }
        }
        Err(Error::from_post(last))
    }

    /// Tests only: make worker `i` panic outside any guard.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn inject_worker_panic(&self, i: usize) -> Result<(), Error> {
        let w = self.workers.get(i).ok_or(Error::Stopped)?;
        w.mailbox
            .post(Message::InjectPanic)
            .map_err(Error::from_post)
    }

    /// Refuse `net` from now on (or for `for_how_long`).
    pub(crate) fn deny(&self, net: IpNet, for_how_long: Option<Duration>) {
        self.shared.gate.deny(net, ban_until(for_how_long));
    }

    /// Allow `net` (once the allow list has entries, only they may connect).
    pub(crate) fn allow(&self, net: IpNet) {
        self.shared.gate.allow(net);
    }

    /// Lift a deny entry or ban; true if there was one.
    pub(crate) fn remove_deny(&self, net: IpNet) -> bool {
        self.shared.gate.remove_deny(net)
    }

    /// The admission state of listener `index` alone.
    pub(crate) fn listener_gate(&self, index: usize) -> Result<&Gate, Error> {
        self.shared
            .listener_gates
            .get(index)
            .ok_or(Error::NoListener(index))
    }

    /// The bound addresses of the datagram sockets.
    pub(crate) fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// A handle on datagram socket `index` of worker `worker`.
    pub(crate) fn udp_ref(&self, index: usize, worker: usize) -> Option<crate::udp::UdpRef> {
        let w = self.workers.get(worker)?;
        let home = *self.udp_homes.get(index)?;
        (home.is_none() || home == Some(worker))
            .then(|| crate::udp::UdpRef::new(index as u16, w.mailbox.clone()))
    }

    /// The handle for watches and posts.
    pub(crate) fn workers(&self) -> &Workers {
        &self.shared.workers
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats::sum(
            self.backend.name(),
            self.stats.iter().map(|s| &**s),
            &self.listener_names,
        );
        stats.job_pool = self.job_pool.as_ref().map(|p| p.stats());
        stats
    }

    pub(crate) fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        self.stop(deadline)
    }

    /// Ask every worker to shut down by `deadline`, join them, and sum their reports.
    fn stop(&mut self, deadline: Duration) -> ShutdownReport {
        // A deadline too long to represent (Duration::MAX) is none: flush until done.
        let until = crate::deadline::after(Instant::now(), deadline);
        for w in &self.workers {
            let _ = w.mailbox.post(Message::Shutdown(until));
        }
        let mut report = ShutdownReport::default();
        for w in &mut self.workers {
            let Some(thread) = w.thread.take() else {
                continue;
            };
            let joined: Joined = thread.join();
            match joined {
                Ok(exit) => {
                    report.connections += exit.connections_at_shutdown;
                    report.forced += exit.forced;
                }
                Err(_) => tracing::error!("a ringport worker panicked"),
            }
        }
        report.stats = self.stats();
        report.undelivered_bytes = report.stats.undelivered_bytes;
        report.undelivered_datagrams =
            report.stats.datagrams_dropped + report.stats.datagram_send_errors;
        report
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.workers.iter().any(|w| w.thread.is_some()) {
            self.stop(Duration::ZERO);
        }
    }
}

/// What a worker thread starts from.
struct WorkerSetup<H> {
    index: usize,
    config: EngineConfig,
    handler: Arc<H>,
    mailbox: Arc<Mailbox>,
    stats: Arc<WorkerStats>,
    /// Its listening sockets, each with its listener's own codec if it has one.
    sockets: WorkerSockets,
    shared: Arc<EngineShared>,
    /// Told the backend's set-up name, or the error that stopped the worker.
    ready: mpsc::Sender<Result<&'static str, Error>>,
}

/// A worker thread's body: set up the backend, report readiness (or the error), run. A
/// worker that panics outside the handler guards, or whose backend fails, is lost: its
/// connections are closed and reported (`lost.rs`), its mailbox refuses posts, and the
/// loss is counted and logged; the other workers go on.
fn run_worker<H: Handler, D: sys::Driver>(s: WorkerSetup<H>) -> WorkerExit {
    let worker = Worker::<H, D>::new(
        s.index as u8,
        &s.config,
        s.handler,
        s.mailbox,
        s.stats,
        s.sockets,
        s.shared,
    );
    let mut w = match worker {
        Ok(w) => w,
        Err(e) => {
            let _ = s.ready.send(Err(e));
            return WorkerExit::default();
        }
    };
    registry::enter_worker(w.ctx.clone());
    let _ = s.ready.send(Ok(w.setup_name()));
    let why = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run())) {
        Ok(Ok(exit)) => return exit,
        Ok(Err(e)) => format!("its backend failed: {e}"),
        Err(panic) => format!("it panicked: {}", lost::panic_message(&*panic)),
    };
    w.lose(&why);
    WorkerExit::default()
}

/// Bind every address once per worker. Port 0 is resolved by the first bind and reused
/// for the others, so all workers share the same port.
fn bind_listeners(
    config: &EngineConfig,
    listeners: &[ListenerSpec],
) -> Result<(Vec<Vec<OwnedFd>>, Vec<SocketAddr>), Error> {
    let mut per_worker: Vec<Vec<OwnedFd>> = (0..config.workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for addr in listeners.iter().map(|l| l.addr) {
        let mut actual = addr;
        for (w, list) in per_worker.iter_mut().enumerate() {
            let sock = sys::socket::listener(actual, config.backlog, &config.sock_opts())?;
            if w == 0 {
                actual = sock
                    .local_addr()?
                    .as_socket()
                    .ok_or_else(|| Error::NoAddress(format!("{addr}")))?;
                bound.push(actual);
            }
            list.push(sock.into());
        }
    }
    Ok((per_worker, bound))
}
