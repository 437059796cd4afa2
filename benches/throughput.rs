//! Embedded put and get throughput per backend, fsync on (issue: step 5): 1, 16 and 64
//! threads each calling `Db::put` / `Db::get` one at a time, on a single node and on a
//! 3-replica in-process cluster (`DbConfig::replicas = 3`). Gets are linearizable
//! (ReadIndex) over 4096 keys written beforehand; puts overwrite those keys with
//! 100-byte values. The memory backend has no fsync.
//!
//!     RAFTKV_BENCH_QUICK=1 cargo bench --bench throughput [--features rocksdb]

#![allow(missing_docs, reason = "a bench binary")]

#[allow(dead_code, reason = "each bench uses part of the shared helpers")]
mod common;

use std::time::{Duration, Instant};

use common::results::{record, secs};
use common::{backends, quick, realistic_value, run_writers, selected, test_mode, timed_bench};
use criterion::{Criterion, Throughput};
use raftkv::storage::Backend;
use raftkv::{Db, DbConfig};

const WRITERS: [u64; 3] = [1, 16, 64];
const OPS: [&str; 2] = ["put", "get"];
const KEYS_PER_WRITER: u64 = 64;

fn key(w: u64, i: u64) -> Vec<u8> {
    format!("w{w}-{}", i % KEYS_PER_WRITER).into_bytes()
}

fn main() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut c = Criterion::default().configure_from_args();
    let value = realistic_value(7, 100);
    for backend in backends() {
        for replicas in [1u64, 3] {
            let dir = tmp.path().join(format!("{backend}-{replicas}"));
            let mut config = match backend {
                Backend::Memory => DbConfig::memory(),
                _ => DbConfig::new(backend, &dir),
            };
            config.replicas = replicas;
            let db = Db::open(config).expect("open");
            let max_writers = WRITERS[WRITERS.len() - 1];
            run_writers(&db, max_writers, KEYS_PER_WRITER, |db, w, i| {
                db.put(&key(w, i), &value).expect("preload");
            });
            let group = format!("throughput/{backend}_{replicas}_replicas");
            let wanted = OPS.iter().any(|op| {
                WRITERS
                    .iter()
                    .any(|w| selected(&format!("{group}/{op}/{w}_writers")))
            });
            if !wanted {
                continue;
            }
            let mut g = c.benchmark_group(&group);
            common::configure(&mut g);
            g.warm_up_time(Duration::from_millis(200));
            for op in OPS {
                for writers in WRITERS {
                    let per_writer = match (test_mode(), quick(), op) {
                        (true, _, _) => 2,
                        (false, true, "put") => 20,
                        (false, true, _) => 100,
                        (false, false, _) => 200,
                    };
                    g.throughput(Throughput::Elements(writers * per_writer));
                    let median =
                        timed_bench(&mut g, &group, &format!("{op}/{writers}_writers"), || {
                            let t = Instant::now();
                            run_writers(&db, writers, per_writer, |db, w, i| {
                                if op == "put" {
                                    db.put(&key(w, i), &value).expect("put");
                                } else {
                                    let v = db.get(&key(w, i)).expect("get");
                                    assert!(v.is_some(), "preloaded");
                                }
                            });
                            t.elapsed()
                        });
                    let Some(m) = median else { continue };
                    record(&[
                        ("kind", "throughput".to_string()),
                        ("backend", backend.to_string()),
                        ("replicas", replicas.to_string()),
                        ("op", op.to_string()),
                        ("writers", writers.to_string()),
                        ("secs", secs(m)),
                        (
                            "ops_per_sec",
                            format!("{:.0}", (writers * per_writer) as f64 / m.as_secs_f64()),
                        ),
                    ]);
                }
            }
            g.finish();
            db.close();
        }
    }
    c.final_summary();
}
