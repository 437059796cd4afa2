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

#[allow(dead_code, reason = "each bench uses part of the shared helpers")]
mod common;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use common::realistic_value;
use common::stall::{Stall, StallProbe};
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
    let value = realistic_value(0, 100);
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
            put(&mut g, &mut index, k, &realistic_value(k, 100));
        }
    }
    let load = t.elapsed();

    let dir = tempfile::tempdir().expect("tempdir");
    let persister = StorageConfig::new(Backend::File, dir.path())
        .open()
        .expect("open persister");
    let persister: Arc<dyn Persister> = Arc::from(persister);

    // Apply loop: measures the longest gap between two applies until told to stop.
    let probe = StallProbe::start(Arc::clone(&sm), value.clone());

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
    let Stall {
        worst,
        p99,
        applies,
    } = probe.finish();

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
