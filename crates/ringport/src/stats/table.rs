//! The counter table: one row per scalar counter or gauge makes its worker counter
//! (`WorkerStats`), its `Stats` field and summing, its Prometheus metric (name, kind,
//! help) and its place in the `Display`. A new counter is one row in `stats.rs`.

/// How a metric behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricKind {
    Counter,
    Gauge,
}

impl MetricKind {
    /// The name the exposition format gives the kind.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// Where the `Display` of `Stats` shows a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// On a line of its own making (connections, bytes, timers, health).
    Written,
    /// In the `anomalies` line when not zero, under this label.
    Anomaly(&'static str),
    /// The same, a byte count.
    AnomalyBytes(&'static str),
}

/// One row of the table, as the metrics and the `Display` read it.
pub(crate) struct Counter {
    /// The `Stats` field.
    #[cfg_attr(not(test), allow(dead_code))]
    pub field: &'static str,
    pub kind: MetricKind,
    /// The Prometheus metric, if the counter has one of its own (closes and refusals are
    /// series by reason instead).
    pub metric: Option<&'static str>,
    pub help: &'static str,
    pub shown: Shown,
    pub get: fn(&super::Stats) -> u64,
}

/// Make `Stats`, `WorkerStats`, their summing and the `COUNTERS` table from the rows:
/// `/// docs`, `field: Kind "metric_name" (or -) "help" => Shown;`.
macro_rules! counter_table {
    (@metric -) => { None };
    (@metric $name:literal) => { Some($name) };
    ($( $(#[doc = $doc:literal])+ $field:ident : $kind:ident $metric:tt $help:literal => $shown:expr; )+) => {
        /// A snapshot of an engine's counters, summed over its workers.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            /// The backend serving: "uring" or "poll".
            pub backend: &'static str,
            $( $(#[doc = $doc])+ pub $field: u64, )+
            /// Inbound connections refused at accept (admission control and the handler's
            /// veto).
            pub refused: u64,
            /// The same, by [`crate::admission::RefuseReason`] name (every name, zeros
            /// included).
            pub refused_by: Vec<(&'static str, u64)>,
            /// Connections closed, by [`CloseReason`] name (every name, zeros included).
            pub closed_by: Vec<(&'static str, u64)>,
            /// I/O workers the engine started.
            pub workers: u64,
            /// The same counters for each listener's connections, in listener order.
            pub listeners: Vec<ListenerStats>,
            /// The figures of the engine's job pool, if it has one (a pool shared by
            /// several engines shows the same figures in each).
            pub job_pool: Option<crate::jobs::JobPoolStats>,
        }

        /// One worker's counters (only it writes them).
        #[derive(Debug, Default)]
        pub(crate) struct WorkerStats {
            $( pub $field: AtomicU64, )+
            /// By `RefuseReason::index`.
            pub refused: [AtomicU64; RefuseReason::ALL.len()],
            /// By `CloseReason::index`.
            pub closed_by: [AtomicU64; CloseReason::NAMES.len()],
            /// By listener index.
            pub listeners: Box<[ListenerCounters]>,
        }

        /// Every row of the table, in order.
        pub(crate) const COUNTERS: &[table::Counter] = &[
            $( table::Counter {
                field: stringify!($field),
                kind: table::MetricKind::$kind,
                metric: counter_table!(@metric $metric),
                help: $help,
                shown: $shown,
                get: |s| s.$field,
            }, )+
        ];

        impl Stats {
            /// Set every table field of `self` to its sum over `workers`.
            fn sum_table(&mut self, workers: &[&WorkerStats]) {
                $( self.$field = workers.iter().map(|w| w.$field.load(Relaxed)).sum(); )+
            }

            /// The table field named `name` (tests set counters by name).
            #[cfg(test)]
            pub(crate) fn field_mut(&mut self, name: &str) -> Option<&mut u64> {
                match name {
                    $( stringify!($field) => Some(&mut self.$field), )+
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use counter_table;
