//! The cost of taking a snapshot against state size, per backend (issue: step 5).
//!
//! For each state (10k, 100k, 1M keys × 100 B, 4M where memory allows and not in quick
//! mode, 100k keys × 1 KiB), built by applying puts to a `KvStateMachine` directly:
//!
//! * `snapshot/<state>/<backend>`: what the RSM's snapshotter does — an O(1) frozen
//!   view, streamed into the backend's snapshot writer (serialize, zstd, crc, temp file,
//!   fsync, rename, directory fsync; the memory backend keeps the payload in memory),
//!   then commit;
//! * `snapshot/<state>/limit_serialize_compress`: the physical limit — serializing the
//!   same state and compressing it in the same frames on the same threads, no file;
//!   `limit_serialize`: serializing alone (the limit for the memory backend, which
//!   does not compress); `file_no_fsync`: the file backend with `Durability::None`, to
//!   show what the device's syncs cost;
//! * three times per backend, untimed by criterion: the same snapshot with an apply
//!   loop running beside it (the client-visible stall: longest gap between two applies,
//!   p99; the median run is reported, and the worst of the three);
//! * once per backend, in a child process: peak RSS while the snapshot is taken against
//!   the state's resident size (VmHWM after resetting it through `/proc/self/clear_refs`).
//!
//! Medians, sizes, stalls and RSS go to the results file (`benches/common/results.rs`)
//! for `benches/report.sh`.
//!
//!     RAFTKV_BENCH_QUICK=1 cargo bench --bench snapshot [--features rocksdb]

#![allow(missing_docs, reason = "a bench binary")]

#[allow(dead_code, reason = "each bench uses part of the shared helpers")]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::limit;
use common::results::{record, secs};
use common::stall::{Stall, StallProbe};
use common::{
    StateSize, backends, build_state, configure, realistic_value, selected, state_sizes,
    timed_bench,
};
use criterion::{Criterion, Throughput};
use parking_lot::Mutex;
use raftkv::kvservice::state_machine::KvStateMachine;
use raftkv::storage::{Backend, Durability, Persister, SnapshotInfo, StorageConfig};

/// Snapshots taken with an apply loop beside them, per state and backend.
const STALL_RUNS: usize = 3;

/// Set in the child process that measures peak RSS: `backend,keys,vlen,commands,dir`.
const RSS_CHILD: &str = "RAFTKV_BENCH_RSS_CHILD";

fn main() {
    if let Ok(spec) = std::env::var(RSS_CHILD) {
        rss_child(&spec);
        return;
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut c = Criterion::default().configure_from_args();
    for size in state_sizes() {
        bench_state(&mut c, size, tmp.path());
    }
    c.final_summary();
}

fn bench_state(c: &mut Criterion, size: StateSize, tmp: &Path) {
    let group = format!("snapshot/{}", size.label());
    let ids = [
        "limit_serialize_compress",
        "limit_serialize",
        "file",
        "rocksdb",
        "memory",
    ];
    if !ids.iter().any(|id| selected(&format!("{group}/{id}"))) {
        return;
    }
    let t = Instant::now();
    let sm = Arc::new(Mutex::new(build_state(size)));
    eprintln!(
        "snapshot: built {} in {:.2} s",
        size.label(),
        t.elapsed().as_secs_f64()
    );
    let (payload, limit_stored) = limit::serialize_compress(&sm.lock());
    let mut g = c.benchmark_group(&group);
    configure(&mut g);
    g.throughput(Throughput::Bytes(payload));

    let timed = |f: fn(&KvStateMachine) -> u64| {
        let sm = Arc::clone(&sm);
        move || {
            let view = sm.lock().snapshot_view();
            let t = Instant::now();
            std::hint::black_box(f(&view));
            t.elapsed()
        }
    };
    let compress = timed_bench(
        &mut g,
        &group,
        "limit_serialize_compress",
        timed(|sm| limit::serialize_compress(sm).1),
    );
    let serialize = timed_bench(&mut g, &group, "limit_serialize", timed(limit::serialize));
    if let (Some(compress), Some(serialize)) = (compress, serialize) {
        let mut fields = vec![
            ("kind", "snapshot_limit".to_string()),
            ("secs", secs(compress)),
            ("serialize_secs", secs(serialize)),
            ("payload", payload.to_string()),
            ("stored", limit_stored.to_string()),
            ("threads", limit::threads().to_string()),
        ];
        fields.extend(size.fields());
        record(&fields);
    }

    // The file backend without its fsyncs: how much of a snapshot is the device.
    if selected(&format!("{group}/file_no_fsync")) {
        let dir = tmp.join(format!("no-fsync-{}", size.label()));
        let persister = StorageConfig {
            durability: Durability::None,
            ..StorageConfig::new(Backend::File, &dir)
        }
        .open()
        .expect("open persister");
        let mut last: Option<SnapshotInfo> = None;
        let median = timed_bench(&mut g, &group, "file_no_fsync", || {
            advance(&sm);
            let t = Instant::now();
            let view = sm.lock().snapshot_view();
            last = Some(common::take_snapshot(persister.as_ref(), &view));
            t.elapsed()
        });
        if let (Some(median), Some(info)) = (median, last) {
            let mut fields = vec![
                ("kind", "snapshot".to_string()),
                ("backend", "file_no_fsync".to_string()),
                ("secs", secs(median)),
                ("payload", info.uncompressed_bytes.to_string()),
                ("stored", info.stored_bytes.to_string()),
            ];
            fields.extend(size.fields());
            record(&fields);
        }
        drop(persister);
        let _ = std::fs::remove_dir_all(&dir);
    }

    for backend in backends() {
        if !selected(&format!("{group}/{backend}")) {
            continue;
        }
        let dir = tmp.join(format!("{backend}-{}", size.label()));
        let persister: Arc<dyn Persister> = Arc::from(
            StorageConfig::new(backend, &dir)
                .open()
                .expect("open persister"),
        );
        let mut last: Option<SnapshotInfo> = None;
        let median = timed_bench(&mut g, &group, backend.name(), || {
            // Each snapshot must be newer than the last one committed.
            advance(&sm);
            let t = Instant::now();
            let view = sm.lock().snapshot_view();
            last = Some(common::take_snapshot(persister.as_ref(), &view));
            t.elapsed()
        });
        let (Some(median), Some(info)) = (median, last) else {
            continue;
        };

        // The same snapshot with applies going on beside it, three times (a stall is
        // one long gap, so one run is at the scheduler's mercy).
        let mut runs: Vec<(Duration, Stall)> = (0..STALL_RUNS)
            .map(|_| {
                advance(&sm);
                let probe = StallProbe::start(Arc::clone(&sm), realistic_value(0, size.value_len));
                std::thread::sleep(Duration::from_millis(20));
                let t = Instant::now();
                let view = sm.lock().snapshot_view();
                common::take_snapshot(persister.as_ref(), &view);
                let with_applies = t.elapsed();
                std::thread::sleep(Duration::from_millis(20));
                let stall = probe.finish();
                drop(view);
                (with_applies, stall)
            })
            .collect();
        let worst = runs.iter().map(|r| r.1.worst).max().unwrap_or_default();
        runs.sort_by_key(|r| r.1.worst);
        let (with_applies, stall) = runs[runs.len() / 2];

        let rss = measure_rss(backend, size, &tmp.join(format!("rss-{backend}")));
        let mut fields = vec![
            ("kind", "snapshot".to_string()),
            ("backend", backend.to_string()),
            ("secs", secs(median)),
            ("payload", info.uncompressed_bytes.to_string()),
            ("stored", info.stored_bytes.to_string()),
            ("secs_with_applies", secs(with_applies)),
            ("stall_max", secs(stall.worst)),
            ("stall_worst", secs(worst)),
            ("stall_p99", secs(stall.p99)),
            ("applies", stall.applies.to_string()),
        ];
        fields.extend(size.fields());
        if let Some(rss) = rss {
            fields.extend([
                ("rss_base", rss.base.to_string()),
                ("rss_state", rss.state.to_string()),
                ("rss_peak", rss.peak.to_string()),
            ]);
        }
        record(&fields);
        drop(persister);
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

/// Applies a no-op, so the next snapshot has a higher index than the last.
fn advance(sm: &Mutex<KvStateMachine>) {
    let mut s = sm.lock();
    let (index, term) = (s.applied_index() + 1, s.applied_term());
    s.apply_noop(index, term);
}

/// Resident set sizes seen by the child process, in bytes.
struct Rss {
    /// Before building the state.
    base: u64,
    /// With the state built, before the snapshot.
    state: u64,
    /// The high-water mark while the snapshot was taken.
    peak: u64,
}

/// Runs this binary again as a child that builds `size`, resets its RSS high-water
/// mark, takes one snapshot on `backend` and reports the new high-water mark. A child,
/// so that nothing else this process allocated counts.
fn measure_rss(backend: Backend, size: StateSize, dir: &Path) -> Option<Rss> {
    let exe = std::env::current_exe().ok()?;
    let spec = format!(
        "{backend},{},{},{},{}",
        size.keys,
        size.value_len,
        size.commands,
        dir.display()
    );
    let out = std::process::Command::new(exe)
        .env(RSS_CHILD, spec)
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<u64> {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    if !out.status.success() || field("reset") != Some(1) {
        eprintln!(
            "snapshot: RSS child failed ({}): {text} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(Rss {
        base: field("base")?,
        state: field("state")?,
        peak: field("peak")?,
    })
}

fn rss_child(spec: &str) {
    let parts: Vec<&str> = spec.split(',').collect();
    let [backend, keys, vlen, commands, dir] = parts[..] else {
        panic!("bad {RSS_CHILD}: {spec}");
    };
    let backend: Backend = backend.parse().expect("backend");
    let size = StateSize {
        keys: keys.parse().expect("keys"),
        value_len: vlen.parse().expect("vlen"),
        commands: commands.parse().expect("commands"),
    };
    let base = status_kb("VmRSS");
    let sm = build_state(size);
    let persister = StorageConfig::new(backend, dir)
        .open()
        .expect("open persister");
    let state = status_kb("VmRSS");
    // "5" resets the peak resident set size to the current one (proc(5)).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    common::take_snapshot(persister.as_ref(), &sm);
    let peak = status_kb("VmHWM");
    println!(
        "base={} state={} peak={} reset={}",
        base * 1024,
        state * 1024,
        peak * 1024,
        u8::from(reset)
    );
}

/// A `kB` field of `/proc/self/status`.
fn status_kb(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
