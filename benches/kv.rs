//! KV service benchmarks (issue: step 3).
//!
//! * `seq_put_3_replicas_memory`: one put at a time on a 3-replica in-process cluster,
//!   memory backend — the latency of a replicated, applied write (the lab allows 33 ms).
//! * `put_file_fsync/<writers>`: embedded single-node puts on the file backend with
//!   fsync on, from 1, 16 and 64 threads — group commit turns concurrency into
//!   throughput.
//!
//! `RAFTKV_BENCH_QUICK=1` shortens the runs.

#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]

#[allow(dead_code, reason = "each bench uses part of the shared helpers")]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::quick;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raftkv::storage::Backend;
use raftkv::{Db, DbConfig};

fn seq_puts(c: &mut Criterion) {
    let mut config = DbConfig::memory();
    config.replicas = 3;
    let db = Db::open(config).expect("open");
    let mut g = c.benchmark_group("kv");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("seq_put_3_replicas_memory", |b| {
        b.iter(|| {
            i += 1;
            db.put(b"k", &i.to_le_bytes()).expect("put")
        })
    });
    g.finish();
    db.close();
}

fn concurrent_puts(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Db::open(DbConfig::new(Backend::File, dir.path())).expect("open"));
    let mut g = c.benchmark_group("kv");
    g.sample_size(10);
    if quick() {
        g.measurement_time(Duration::from_secs(2));
    }
    for writers in [1u64, 16, 64] {
        let per_writer = if quick() { 20 } else { 200 };
        g.throughput(Throughput::Elements(writers * per_writer));
        g.bench_function(format!("put_file_fsync/{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    common::run_writers(&db, writers, per_writer, |db, w, i| {
                        let key = format!("w{w}-{}", i % 64);
                        db.put(key.as_bytes(), &[7u8; 100]).expect("put");
                    });
                }
                start.elapsed()
            })
        });
    }
    g.finish();
    if let Ok(db) = Arc::try_unwrap(db) {
        db.close();
    }
}

criterion_group!(benches, seq_puts, concurrent_puts);
criterion_main!(benches);
