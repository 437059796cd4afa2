//! Log append throughput per backend: batches of 64 entries of 100 bytes, each batch one
//! `Persister::write` and so one fsync (`Durability::Immediate`).
//!
//! Criterion reports entries/s (`Throughput::Elements(64)` per batch); the summary
//! printed at the end adds batches/s, which is fsyncs/s for the file and RocksDB
//! backends. Stores live under Cargo's target tmp directory (on the build disk, not a
//! tmpfs), so the fsyncs are real.
//!
//! `RAFTKV_BENCH_QUICK=1` shortens warm-up and measurement; `-- --test` runs each
//! benchmark once.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raftkv_storage::{Backend, Entry, Persister, StorageConfig, WriteBatch};

const ENTRIES_PER_BATCH: u64 = 64;
const ENTRY_BYTES: usize = 100;
/// The log is emptied (outside the timed region) every this many batches, so that a
/// long run does not grow the memory backend without bound.
const BATCHES_BEFORE_RESET: u64 = 1024;

fn quick() -> bool {
    std::env::var("RAFTKV_BENCH_QUICK").is_ok_and(|v| v == "1")
}

fn open(backend: Backend, dir: &Path) -> Box<dyn Persister> {
    match backend {
        Backend::Memory => Box::new(raftkv_storage::MemoryPersister::new()),
        _ => StorageConfig::new(backend, dir)
            .open()
            .unwrap_or_else(|e| panic!("open {backend} store in {}: {e}", dir.display())),
    }
}

fn backends() -> Vec<Backend> {
    vec![
        Backend::Memory,
        Backend::File,
        #[cfg(feature = "rocksdb")]
        Backend::Rocksdb,
    ]
}

/// Time spent in `write` and batches written, for the summary.
#[derive(Default)]
struct Tally {
    batches: u64,
    in_write: Duration,
}

fn log_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_append");
    group.throughput(Throughput::Elements(ENTRIES_PER_BATCH));
    if quick() {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    } else {
        group
            .sample_size(30)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(8));
    }
    let mut summary = Vec::new();
    for backend in backends() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let p = open(backend, dir.path());
        let data = vec![0xa5u8; ENTRY_BYTES];
        let mut next = 1u64;
        let mut since_reset = 0u64;
        let mut tally = Tally::default();
        group.bench_function(backend.name(), |b| {
            b.iter_custom(|iters| {
                let mut in_write = Duration::ZERO;
                for _ in 0..iters {
                    if since_reset == BATCHES_BEFORE_RESET {
                        p.write(&WriteBatch::new().truncate_from(1))
                            .expect("reset log");
                        next = 1;
                        since_reset = 0;
                    }
                    let batch =
                        WriteBatch::new().append((next..next + ENTRIES_PER_BATCH).map(|index| {
                            Entry {
                                index,
                                term: 1,
                                data: data.clone(),
                            }
                        }));
                    let start = Instant::now();
                    p.write(black_box(&batch)).expect("append batch");
                    in_write += start.elapsed();
                    next += ENTRIES_PER_BATCH;
                    since_reset += 1;
                }
                tally.batches += iters;
                tally.in_write += in_write;
                in_write
            });
        });
        summary.push((backend, tally));
    }
    group.finish();
    eprintln!(
        "\nlog_append summary ({ENTRIES_PER_BATCH} entries of {ENTRY_BYTES} B per batch, one write per batch; batches/s is fsyncs/s for file and rocksdb):"
    );
    for (backend, t) in summary {
        let secs = t.in_write.as_secs_f64();
        if secs > 0.0 {
            let batches_per_s = t.batches as f64 / secs;
            eprintln!(
                "  {:<8} {:>12.0} entries/s  {:>9.0} batches/s  mean {:>9.1} µs/batch",
                backend.name(),
                batches_per_s * ENTRIES_PER_BATCH as f64,
                batches_per_s,
                secs * 1e6 / t.batches as f64
            );
        }
    }
}

criterion_group!(benches, log_append);
criterion_main!(benches);
