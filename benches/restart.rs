//! Restart time against state size, per backend (issue: step 5): from `Db::open` on an
//! existing data directory to the first linearizable read answered.
//!
//! The data directories are written directly, not through Raft (putting 1M keys
//! through Raft one at a time is too slow): the state is built by applying puts to a
//! `KvStateMachine`, its snapshot is written through the backend's
//! `Persister::begin_snapshot`, then a tail of committed log entries (100-byte puts,
//! 1024 per synced batch) through `Persister::write`, with a hard state whose commit
//! covers them — the bytes a node would have left. `max_raft_state` is off so that a
//! restart does not snapshot and change the directory between iterations.
//!
//! For each state and each durable backend (file, rocksdb; memory has nothing to
//! restart from):
//!
//! * `restart/<state>/<backend>/tail_<n>/<warm|cold>`: `Db::open` then `get`, with a log
//!   tail of 0, 10k and 100k entries after the snapshot (quick mode: the tails only at
//!   100k and 1M keys, and cold only without a tail). Cold drops every file of the data
//!   directory from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`) before each
//!   open, as raft-engine's recovery benchmark does;
//! * `restart/<state>/<backend>/load_snapshot/<cache>`: the persister's recovery plus
//!   reading and deserializing the snapshot into a state machine, without Raft;
//! * `restart/<state>/limit_read_decompress/<cache>`: the physical limit — reading a
//!   file of the same compressed frames and decompressing them on the same threads, no
//!   checksum, no deserialization.
//!
//! One more state, 100k keys reached after 1M puts, shows that restart time depends on
//! the state, not on how many commands were ever applied.
//!
//!     RAFTKV_BENCH_QUICK=1 cargo bench --bench restart [--features rocksdb]

#![allow(missing_docs, reason = "a bench binary")]

#[allow(dead_code, reason = "each bench uses part of the shared helpers")]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::limit::LimitFile;
use common::results::{record, secs};
use common::{
    StateSize, build_state, configure, drop_page_cache, key, quick, selected, state_sizes,
    test_mode, timed_bench, write_data_dir,
};
use criterion::Criterion;
use raftkv::kvservice::sessions::SessionTable;
use raftkv::kvservice::state_machine::KvStateMachine;
use raftkv::storage::{Backend, StorageConfig};
use raftkv::{Db, DbConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    Warm,
    Cold,
}

impl Cache {
    fn name(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        }
    }
}

fn durable_backends() -> Vec<Backend> {
    common::backends()
        .into_iter()
        .filter(|b| *b != Backend::Memory)
        .collect()
}

fn main() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut c = Criterion::default().configure_from_args();
    let mut sizes = state_sizes();
    // The same keys as one of the states above, after ten times as many commands.
    sizes.push(if test_mode() {
        StateSize {
            keys: 200,
            value_len: 100,
            commands: 2_000,
        }
    } else {
        StateSize {
            keys: 100_000,
            value_len: 100,
            commands: 1_000_000,
        }
    });
    for size in sizes {
        bench_state(&mut c, size, tmp.path());
    }
    c.final_summary();
}

/// Log tails to restart with, after the snapshot.
fn tails(size: StateSize) -> Vec<u64> {
    if test_mode() {
        return vec![0, 100];
    }
    let plain = size.value_len == 100 && size.commands == size.keys;
    if quick() && !(plain && size.keys >= 100_000) {
        return vec![0];
    }
    vec![0, 10_000, 100_000]
}

fn caches(tail: u64) -> &'static [Cache] {
    if quick() && tail > 0 {
        &[Cache::Warm]
    } else {
        &[Cache::Warm, Cache::Cold]
    }
}

fn bench_state(c: &mut Criterion, size: StateSize, tmp: &Path) {
    let group = format!("restart/{}", size.label());
    let limit_id = |cache: Cache| format!("limit_read_decompress/{}", cache.name());
    let load_id =
        |backend: Backend, cache: Cache| format!("{backend}/load_snapshot/{}", cache.name());
    let tail_id = |backend: Backend, tail: u64, cache: Cache| {
        format!("{backend}/tail_{}/{}", common::human(tail), cache.name())
    };
    // The benches of one data directory (backend and tail).
    let dir_ids = |backend: Backend, tail: u64| {
        let mut ids: Vec<String> = caches(tail)
            .iter()
            .map(|&c| tail_id(backend, tail, c))
            .collect();
        if tail == 0 {
            ids.extend(caches(0).iter().map(|&c| load_id(backend, c)));
        }
        ids
    };
    let wanted = |id: &str| selected(&format!("{group}/{id}"));
    let any_dir = durable_backends().into_iter().any(|b| {
        tails(size)
            .into_iter()
            .any(|t| dir_ids(b, t).iter().any(|id| wanted(id)))
    });
    if !any_dir && !caches(0).iter().any(|&c| wanted(&limit_id(c))) {
        return;
    }
    let t = Instant::now();
    let sm = build_state(size);
    eprintln!(
        "restart: built {} in {:.2} s",
        size.label(),
        t.elapsed().as_secs_f64()
    );
    let mut g = c.benchmark_group(&group);
    configure(&mut g);

    let limit_dir = tmp.join("limit");
    let limit = caches(0)
        .iter()
        .any(|&c| wanted(&limit_id(c)))
        .then(|| LimitFile::create(&limit_dir, &sm));
    for &cache in caches(0) {
        let Some(limit) = &limit else { break };
        let median = timed_bench(&mut g, &group, &limit_id(cache), || {
            timed(cache, &limit_dir, || limit.read_decompress())
        });
        if let Some(median) = median {
            let mut fields = vec![
                ("kind", "restart_limit".to_string()),
                ("cache", cache.name().to_string()),
                ("secs", secs(median)),
                ("payload", limit.payload.to_string()),
                ("stored", limit.stored().to_string()),
            ];
            fields.extend(size.fields());
            record(&fields);
        }
    }
    let _ = std::fs::remove_dir_all(&limit_dir);

    for backend in durable_backends() {
        for tail in tails(size) {
            if !dir_ids(backend, tail).iter().any(|id| wanted(id)) {
                continue;
            }
            let base = tmp.join(format!("{backend}-{}-{tail}", size.label()));
            let t = Instant::now();
            let info = write_data_dir(backend, &base, &sm, size.keys, tail);
            eprintln!(
                "restart: wrote {backend} {} + {tail} entries in {:.2} s",
                size.label(),
                t.elapsed().as_secs_f64()
            );
            if tail == 0 {
                let node = base.join("node-1");
                let storage = StorageConfig::new(backend, &node);
                for &cache in caches(0) {
                    let median = timed_bench(&mut g, &group, &load_id(backend, cache), || {
                        timed(cache, &node, || {
                            let sm = load_snapshot(&storage);
                            assert_eq!(sm.store().len() as u64, size.keys);
                            sm
                        })
                    });
                    if let Some(median) = median {
                        let mut fields = vec![
                            ("kind", "load_snapshot".to_string()),
                            ("backend", backend.to_string()),
                            ("cache", cache.name().to_string()),
                            ("secs", secs(median)),
                        ];
                        fields.extend(size.fields());
                        record(&fields);
                    }
                }
            }
            let mut config = DbConfig::new(backend, &base);
            config.max_raft_state = -1;
            config.open_timeout = Duration::from_secs(120);
            for &cache in caches(tail) {
                let median = timed_bench(&mut g, &group, &tail_id(backend, tail, cache), || {
                    if cache == Cache::Cold {
                        drop_page_cache(&base);
                    }
                    let t = Instant::now();
                    let db = Db::open(config.clone()).expect("open");
                    let first = db.get(&key(0)).expect("first read");
                    let d = t.elapsed();
                    assert!(first.is_some(), "key 0 is in the restored state");
                    db.close();
                    d
                });
                if let Some(median) = median {
                    let mut fields = vec![
                        ("kind", "restart".to_string()),
                        ("backend", backend.to_string()),
                        ("tail", tail.to_string()),
                        ("cache", cache.name().to_string()),
                        ("secs", secs(median)),
                        ("payload", info.uncompressed_bytes.to_string()),
                        ("stored", info.stored_bytes.to_string()),
                    ];
                    fields.extend(size.fields());
                    record(&fields);
                }
            }
            let _ = std::fs::remove_dir_all(&base);
        }
    }
    g.finish();
}

/// Runs `f` once, after dropping `dir` from the page cache if `cache` is cold; returns
/// how long `f` took. What `f` returns is dropped after the clock stops.
fn timed<T>(cache: Cache, dir: &Path, f: impl FnOnce() -> T) -> Duration {
    if cache == Cache::Cold {
        drop_page_cache(dir);
    }
    let t = Instant::now();
    let out = f();
    let d = t.elapsed();
    drop(out);
    d
}

/// Opens the persister (its recovery) and restores the snapshot, as a replica does at
/// start before Raft runs.
fn load_snapshot(storage: &StorageConfig) -> KvStateMachine {
    let persister = storage.open().expect("open persister");
    let mut reader = persister
        .open_snapshot()
        .expect("open snapshot")
        .expect("a snapshot");
    KvStateMachine::restore(&mut *reader, SessionTable::default()).expect("read snapshot")
}
