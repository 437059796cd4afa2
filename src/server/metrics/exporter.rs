//! [`Exporter`]: the member's metrics as a `prometheus-client` registry whose values are
//! read from the replica and its persister at each scrape (nothing is pushed to it).

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use raftkv_kvservice::replica::Replica;

/// The content type of [`Exporter::render`]'s output (OpenMetrics text, which
/// Prometheus scrapes; it is the Prometheus text format plus a `# EOF` line).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Read<T> = Box<dyn Fn(&Replica) -> T + Send + Sync>;

/// A gauge or counter whose value is read when encoded.
struct Live {
    replica: Arc<Replica>,
    kind: MetricType,
    read: Read<f64>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("kind", &self.kind).finish()
    }
}

impl EncodeMetric for Live {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let v = (self.read)(&self.replica);
        match self.kind {
            // Counters are whole numbers here.
            MetricType::Counter => encoder.encode_counter::<NoLabelSet, _, u64>(&(v as u64), None),
            _ => encoder.encode_gauge(&v),
        }
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// The persister's sync histogram, read when encoded (empty for a backend without one).
#[derive(Debug)]
struct FsyncHistogram(Arc<Replica>);

impl EncodeMetric for FsyncHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self.0.persister().sync_histogram() {
            Some(h) => {
                let s = h.snapshot();
                // The encoder accumulates the counts, and writes `+Inf` for `f64::MAX`.
                let buckets: Vec<(f64, u64)> = s
                    .buckets
                    .iter()
                    .map(|&(b, n)| (if b.is_finite() { b } else { f64::MAX }, n))
                    .collect();
                encoder.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &buckets, None)
            }
            None => encoder.encode_histogram::<NoLabelSet>(0.0, 0, &[(f64::MAX, 0)], None),
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A registry of the metrics in the README's table.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    /// Registers every metric over `replica`; `started` is when the process began to
    /// open its storage (the restart lasts from then until the state is loaded).
    pub fn new(replica: Arc<Replica>, started: Instant) -> Exporter {
        let mut registry = Registry::with_prefix("raftkv");
        let mut live = |name: &str, help: &str, kind: MetricType, read: Read<f64>| {
            let metric = Live {
                replica: Arc::clone(&replica),
                kind,
                read,
            };
            registry.register(name, help, metric);
        };
        live(
            "has_leader",
            "1 if this member knows a leader in its current term, else 0",
            MetricType::Gauge,
            Box::new(|r| f64::from(u8::from(r.node().status().leader.is_some()))),
        );
        live(
            "term",
            "The member's current Raft term",
            MetricType::Gauge,
            Box::new(|r| r.node().status().term as f64),
        );
        live(
            "commit_index",
            "The highest log index known to be committed",
            MetricType::Gauge,
            Box::new(|r| r.node().status().commit as f64),
        );
        live(
            "applied_index",
            "The index of the last entry the state machine applied",
            MetricType::Gauge,
            Box::new(|r| r.rsm().applied_index() as f64),
        );
        live(
            "proposals_committed",
            "Client commands submitted here that committed and were answered",
            MetricType::Counter,
            Box::new(|r| r.rsm().proposal_stats().committed as f64),
        );
        live(
            "proposals_failed",
            "Client commands submitted here that ended in an error (refused, \
             leadership lost, timed out)",
            MetricType::Counter,
            Box::new(|r| r.rsm().proposal_stats().failed as f64),
        );
        live(
            "snapshot_duration_seconds",
            "How long the last snapshot this member took needed to write and commit",
            MetricType::Gauge,
            Box::new(|r| r.rsm().snapshot_stats().last_duration.as_secs_f64()),
        );
        live(
            "snapshot_size_bytes",
            "Bytes the last snapshot this member took occupies in storage",
            MetricType::Gauge,
            Box::new(|r| r.rsm().snapshot_stats().last_stored_bytes as f64),
        );
        live(
            "restart_duration_seconds",
            "How long this process took to open its storage, recover and load its state \
             (so far, while loading)",
            MetricType::Gauge,
            Box::new(move |r| {
                let ready = r.rsm().load_progress().ready_at();
                ready
                    .map_or_else(
                        || started.elapsed(),
                        |at| at.saturating_duration_since(started),
                    )
                    .as_secs_f64()
            }),
        );
        registry.register(
            "fsync_duration_seconds",
            "How long each log sync that made a write durable took",
            FsyncHistogram(Arc::clone(&replica)),
        );
        Exporter { registry }
    }

    /// The metrics now, in the text format of [`CONTENT_TYPE`].
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
