//! Whether an engine still has every worker it started.

/// The state of a server's (or client's) workers, from [`crate::Server::health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Every worker is running.
    Healthy,
    /// Some workers were lost (see [`crate::Stats::workers_lost`]): the others go on
    /// serving, with less capacity. A process supervisor should restart the server.
    Degraded {
        /// Workers lost.
        workers_lost: u64,
        /// Workers started.
        workers: u64,
    },
}

impl Health {
    pub(crate) fn of(stats: &crate::Stats) -> Health {
        if stats.workers_lost == 0 {
            Health::Healthy
        } else {
            Health::Degraded {
                workers_lost: stats.workers_lost,
                workers: stats.workers,
            }
        }
    }

    /// True unless every worker is running.
    pub fn is_degraded(&self) -> bool {
        *self != Health::Healthy
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Degraded {
                workers_lost,
                workers,
            } => write!(f, "degraded: {workers_lost} of {workers} workers lost"),
        }
    }
}
