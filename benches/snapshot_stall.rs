//! The client-visible stall of taking a snapshot, at 1M keys × 100 B (issue: step 3).
//!
//! It reproduces what the RSM does: the apply thread applies puts in a loop; when the
//! snapshot triggers it takes an O(1) frozen view of the state machine under its lock,
//! and a second thread streams the view into a `FilePersister` (zstd + crc + fsync +
//! rename) while applies go on. The stall is the longest gap between two applies
//! during the snapshot. Prints a table.
//!
//!     cargo bench --bench snapshot_stall            # 1M keys
//!     RAFTKV_BENCH_QUICK=1 cargo bench --bench snapshot_stall   # 100k keys

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use raftkv::kvservice::command::{Command, Op};
use raftkv::kvservice::state_machine::KvStateMachine;
use raftkv::storage::{Backend, Persister, SnapshotMeta, StorageConfig};

fn main() {
    // `cargo test --benches` runs this once as a smoke test: keep that small.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let keys: u64 = if smoke {
        10_000
    } else if std::env::var_os("RAFTKV_BENCH_QUICK").is_some() {
        100_000
    } else {
        1_000_000
    };
    let sm = Arc::new(Mutex::new(KvStateMachine::new()));
    let value = realistic_value(0);
    let mut index = 0u64;
    let put = |sm: &mut KvStateMachine, index: &mut u64, k: u64, value: &Bytes| {
        *index += 1;
        sm.apply(
            *index,
            1,
            &Command {
                client_id: 0,
                seq: 0,
                ts_ms: 0,
                op: Op::Put {
                    key: Bytes::from(format!("user:{k:010}")),
                    value: value.clone(),
                },
            },
        );
    };
    let t = Instant::now();
    {
        let mut g = sm.lock();
        for k in 0..keys {
            put(&mut g, &mut index, k, &realistic_value(k));
        }
    }
    let load = t.elapsed();

    let dir = tempfile::tempdir().expect("tempdir");
    let persister = StorageConfig::new(Backend::File, dir.path())
        .open()
        .expect("open persister");
    let persister: Arc<dyn Persister> = Arc::from(persister);

    // Apply loop: measures the longest gap between two applies until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let applier = {
        let sm = Arc::clone(&sm);
        let stop = Arc::clone(&stop);
        let value = value.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let mut gaps = Vec::new();
            let mut last = Instant::now();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut g = sm.lock();
                let i = g.applied_index() + 1;
                g.apply(
                    i,
                    1,
                    &Command {
                        client_id: 0,
                        seq: 0,
                        ts_ms: 0,
                        op: Op::Put {
                            key: Bytes::from(format!("user:{:010}", k % 1000)),
                            value: value.clone(),
                        },
                    },
                );
                drop(g);
                k += 1;
                let now = Instant::now();
                let gap = now - last;
                worst = worst.max(gap);
                gaps.push(gap);
                last = now;
            }
            gaps.sort_unstable();
            let p99 = gaps
                .get(gaps.len().saturating_sub(1) * 99 / 100)
                .copied()
                .unwrap_or_default();
            (worst, p99, k)
        })
    };

    // The snapshot: frozen view under the lock, then stream on this thread.
    let t = Instant::now();
    let view = sm.lock().snapshot_view();
    let view_time = t.elapsed();
    let meta = SnapshotMeta {
        index: view.applied_index(),
        term: 1,
    };
    let mut w = persister.begin_snapshot(meta).expect("begin");
    let payload = view.write_snapshot(&mut w).expect("write");
    let info = w.commit().expect("commit");
    let snap_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (worst, p99, applies) = applier.join().expect("applier");

    println!(
        "| keys | load | view (O(1) clone) | snapshot write | payload | stored | ratio | applies during | longest apply gap | p99 gap |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {keys} | {:.2} s | {:.1} µs | {:.2} s | {:.1} MB | {:.1} MB | {:.2}x | {applies} | {:.2} ms | {:.3} ms |",
        load.as_secs_f64(),
        view_time.as_secs_f64() * 1e6,
        snap_time.as_secs_f64(),
        payload as f64 / 1e6,
        info.stored_bytes as f64 / 1e6,
        payload as f64 / info.stored_bytes.max(1) as f64,
        worst.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
}

/// 100 bytes that compress like real application values (about 1.3x with zstd -1):
/// a few fixed-format fields and a random alphanumeric tail from a seeded LCG.
fn realistic_value(k: u64) -> Bytes {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = k
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut v = format!("{{\"id\":{k},\"name\":\"").into_bytes();
    while v.len() < 100 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        v.push(ALPHABET[((x >> 33) % ALPHABET.len() as u64) as usize]);
    }
    Bytes::from(v)
}
