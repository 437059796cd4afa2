//! Crash consistency of the memory backend: a crash image taken at any instant recovers
//! the state before or after each call, never a mix, and never loses an acknowledged
//! call.
//!
//! Failure mode guarded against: a write or snapshot commit that is visible in a crash
//! image only in part (entries without their hard state, a snapshot without the log
//! compaction it implies), or a failed call that still changes the image.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use raftkv_storage::fault::FaultPlan;
use raftkv_storage::testing::Model;
use raftkv_storage::{
    Entry, HardState, MemoryPersister, Persister, RecoveredState, SnapshotMeta, StorageError,
    WriteBatch,
};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("{index}@{term}").into_bytes(),
    }
}

/// One call of the workload.
#[derive(Debug, Clone)]
enum Op {
    Write(WriteBatch),
    Snapshot(SnapshotMeta, Vec<u8>),
}

impl Op {
    fn apply(&self, p: &dyn Persister) -> raftkv_storage::Result<()> {
        match self {
            Op::Write(b) => p.write(b),
            Op::Snapshot(meta, payload) => {
                let mut w = p.begin_snapshot(*meta)?;
                w.write_all(payload).expect("write payload to memory");
                w.commit().map(|_| ())
            }
        }
    }

    fn apply_to_model(&self, m: &mut Model) {
        let outcome = match self {
            Op::Write(b) => m.write(b),
            Op::Snapshot(meta, payload) => m.install_snapshot(*meta, payload.clone()),
        };
        assert_eq!(
            outcome,
            raftkv_storage::testing::Outcome::Ok,
            "workload op {self:?}"
        );
    }
}

/// A workload of appends with hard states, truncations and snapshots (matching and
/// conflicting), and the model state after each prefix of it.
fn workload() -> (Vec<Op>, Vec<RecoveredState>) {
    let mut ops = Vec::new();
    let mut model = Model::new();
    let mut states = vec![model.recovered()];
    let mut push = |op: Op, model: &mut Model, states: &mut Vec<RecoveredState>| {
        op.apply_to_model(model);
        states.push(model.recovered());
        ops.push(op);
    };
    for round in 1..=40u64 {
        let last = model.last_index();
        let op = match round % 8 {
            3 => Op::Write(
                WriteBatch::new()
                    .truncate_from(last)
                    .append([entry(last, round), entry(last + 1, round)])
                    .hard_state(HardState {
                        term: round,
                        voted_for: Some(2),
                        commit: last - 1,
                    }),
            ),
            5 => Op::Snapshot(
                SnapshotMeta {
                    index: last - 1,
                    term: model.term_at(last - 1).expect("log holds last - 1"),
                },
                vec![round as u8; 100],
            ),
            7 => Op::Snapshot(
                SnapshotMeta {
                    index: last + 2,
                    term: round,
                },
                vec![round as u8; 10],
            ),
            _ => Op::Write(
                WriteBatch::new()
                    .append((last + 1..=last + 3).map(|i| entry(i, round)))
                    .hard_state(HardState {
                        term: round,
                        voted_for: Some(1),
                        commit: last,
                    }),
            ),
        };
        push(op, &mut model, &mut states);
    }
    (ops, states)
}

/// A failpoint that fires leaves the crash image at the state before the call, poisons
/// the persister, and the same call without the fault moves the image to the state
/// after it.
#[test]
fn failed_call_leaves_image_at_old_state_and_poisons() {
    let (ops, states) = workload();
    for (k, op) in ops.iter().enumerate() {
        let point = match op {
            Op::Write(_) => "memory.write",
            Op::Snapshot(..) => "memory.snapshot_commit",
        };
        let plan = Arc::new(FaultPlan::new());
        let p = MemoryPersister::with_faults(Arc::clone(&plan));
        for earlier in &ops[..k] {
            earlier.apply(&p).expect("earlier op");
        }
        assert_eq!(
            p.crash_image().recover().expect("recover"),
            states[k],
            "before op {k}"
        );

        let healthy = p.crash_image();
        plan.fail_at(point, 1);
        let err = op.apply(&p).expect_err("armed failpoint");
        assert!(
            matches!(&err, StorageError::Injected { point: at } if at == point),
            "op {k}: {err}"
        );
        assert_eq!(
            p.crash_image().recover().expect("recover"),
            states[k],
            "op {k} failed at {point}: the image must hold the old state"
        );
        let again = op.apply(&p).expect_err("poisoned");
        assert!(
            matches!(again, StorageError::Poisoned { .. }),
            "op {k}: {again}"
        );
        assert!(
            matches!(
                p.write(&WriteBatch::new()),
                Err(StorageError::Poisoned { .. })
            ),
            "op {k}: even an empty batch is refused once poisoned"
        );

        op.apply(&healthy).expect("same op without the fault");
        assert_eq!(
            healthy.crash_image().recover().expect("recover"),
            states[k + 1],
            "op {k} succeeded: the image must hold the new state"
        );
    }
}

/// Crash images taken while another thread runs the workload each equal the state after
/// some prefix of it, at least as long as the calls acknowledged before the image.
#[test]
fn concurrent_images_are_old_or_new_and_keep_every_acknowledged_call() {
    let (ops, states) = workload();
    for _ in 0..20 {
        let p = MemoryPersister::new();
        let acked = AtomicUsize::new(0);
        let mut seen = vec![0usize; states.len()];
        std::thread::scope(|s| {
            s.spawn(|| {
                for op in &ops {
                    op.apply(&p).expect("op");
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            });
            loop {
                let acked_before = acked.load(Ordering::SeqCst);
                let image = p.crash_image().recover().expect("recover");
                let k = states
                    .iter()
                    .position(|s| *s == image)
                    .unwrap_or_else(|| panic!("image is no state of the workload: {image:?}"));
                // States can repeat only if an op changed nothing, which none does.
                assert!(
                    k >= acked_before,
                    "image lost acknowledged calls: it is state {k}, {acked_before} were acknowledged"
                );
                seen[k] += 1;
                if acked_before == ops.len() {
                    break;
                }
            }
        });
        assert!(seen[ops.len()] > 0, "the final state was observed");
    }
}
