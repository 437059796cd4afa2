//! Property test: random sequences of writes (appends, truncations, hard states, some
//! invalid), snapshot installs (matching, conflicting, beyond the log, stale), dropped
//! snapshot writers, compactions and restarts, applied to a backend and to the naive
//! [`Model`]. After every step the backend must have answered like the model and
//! `recover()` must equal the model's state.
//!
//! `PROPTEST_CASES` overrides the number of cases. A failure is shrunk, printed, and its
//! seed saved in `model_proptest.regressions` beside this file, so that the next run replays it first.

use std::io::{Read, Write};

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use raftkv_storage::testing::{DirHarness, Harness, MemoryHarness, Model, Outcome};
use raftkv_storage::{Backend, Entry, HardState, Persister, SnapshotMeta, WriteBatch};

#[derive(Debug, Clone)]
enum Op {
    /// A batch resolved against the current log: truncate `truncate` entries back from
    /// the end (which may reach the snapshot: invalid), append `count` entries of the
    /// current term (or of a new term), shifted by `gap` (nonzero: a gap or overlap).
    Write {
        truncate: Option<u8>,
        count: u8,
        new_term: bool,
        gap: i8,
        vote: Option<u8>,
        data_len: u8,
    },
    /// A snapshot at an index in the log (`back` entries before its end) with the log's
    /// term or a conflicting one, or `beyond` the end of the log.
    Snapshot {
        back: u8,
        conflict: bool,
        beyond: Option<u8>,
        payload_len: u16,
        seed: u8,
    },
    /// A snapshot at or below the current one's index.
    StaleSnapshot { back: u8 },
    /// Begins a snapshot, writes some of it, drops the writer.
    DroppedWriter,
    /// `compact` at the snapshot index minus `back`, or one above it (invalid).
    Compact { back: u8, above: bool },
    /// Drops the persister and opens what is durable.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (
            proptest::option::weighted(0.25, 0u8..8),
            0u8..5,
            proptest::bool::weighted(0.2),
            prop_oneof![8 => Just(0i8), 1 => -2i8..=2],
            proptest::option::of(0u8..4),
            0u8..64,
        )
            .prop_map(|(truncate, count, new_term, gap, vote, data_len)| Op::Write {
                truncate,
                count,
                new_term,
                gap,
                vote,
                data_len,
            }),
        3 => (
            0u8..6,
            proptest::bool::weighted(0.3),
            proptest::option::weighted(0.2, 0u8..3),
            0u16..3000,
            any::<u8>(),
        )
            .prop_map(|(back, conflict, beyond, payload_len, seed)| Op::Snapshot {
                back,
                conflict,
                beyond,
                payload_len,
                seed,
            }),
        1 => (0u8..3).prop_map(|back| Op::StaleSnapshot { back }),
        1 => Just(Op::DroppedWriter),
        1 => (0u8..4, proptest::bool::weighted(0.2))
            .prop_map(|(back, above)| Op::Compact { back, above }),
        2 => Just(Op::Reopen),
    ]
}

fn payload(len: u16, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn install(p: &dyn Persister, meta: SnapshotMeta, payload: &[u8]) -> raftkv_storage::Result<()> {
    let mut w = p.begin_snapshot(meta)?;
    for part in payload.chunks(700) {
        w.write_all(part).expect("write snapshot payload");
    }
    w.commit().map(|_| ())
}

/// Applies `ops` to a fresh store of `h` and to the model, comparing after every step.
fn run(h: &mut dyn Harness, ops: &[Op]) -> Result<(), TestCaseError> {
    let name = h.name().to_string();
    let mut p = h.open();
    let mut model = Model::new();
    let mut term = 1u64;
    for (step, op) in ops.iter().enumerate() {
        let at = format!("[{name}] step {step} {op:?}");
        let snap = model.snapshot_index();
        let last = model.last_index();
        let (got, want) = match op {
            Op::Write {
                truncate,
                count,
                new_term,
                gap,
                vote,
                data_len,
            } => {
                if *new_term {
                    term += 1;
                }
                let truncate_from =
                    truncate.map(|k| (last + 1).saturating_sub(u64::from(k)).max(1));
                let base = truncate_from.map_or(last, |t| last.min(t - 1));
                let start = (base + 1).saturating_add_signed(i64::from(*gap)).max(1);
                let mut b =
                    WriteBatch::new().append((start..start + u64::from(*count)).map(|i| Entry {
                        index: i,
                        term,
                        data: vec![i as u8; usize::from(*data_len)],
                    }));
                b.truncate_from = truncate_from;
                b.hard_state = vote.map(|v| HardState {
                    term,
                    voted_for: (v > 0).then_some(u64::from(v)),
                    commit: base,
                });
                (Outcome::of(&p.write(&b)), model.write(&b))
            }
            Op::Snapshot {
                back,
                conflict,
                beyond,
                payload_len,
                seed,
            } => {
                let meta = match (beyond, last > snap) {
                    (None, true) => {
                        let index = last - u64::from(*back) % (last - snap);
                        let log_term = model.term_at(index).expect("index in the log");
                        SnapshotMeta {
                            index,
                            term: if *conflict { log_term + 1 } else { log_term },
                        }
                    }
                    (Some(b), _) => SnapshotMeta {
                        index: last + 1 + u64::from(*b),
                        term,
                    },
                    (None, false) => SnapshotMeta {
                        index: last + 1,
                        term,
                    },
                };
                let bytes = payload(*payload_len, *seed);
                (
                    Outcome::of(&install(&*p, meta, &bytes)),
                    model.install_snapshot(meta, bytes),
                )
            }
            Op::StaleSnapshot { back } => {
                let Some(current) = model.recovered().snapshot else {
                    continue;
                };
                let meta = SnapshotMeta {
                    index: current.index.saturating_sub(u64::from(*back)),
                    term: current.term,
                };
                (
                    Outcome::of(&install(&*p, meta, b"stale")),
                    model.install_snapshot(meta, b"stale".to_vec()),
                )
            }
            Op::DroppedWriter => {
                let meta = SnapshotMeta {
                    index: last + 1,
                    term,
                };
                let mut w = p
                    .begin_snapshot(meta)
                    .map_err(|e| TestCaseError::fail(format!("{at}: begin: {e}")))?;
                w.write_all(&payload(5000, 1)).expect("write payload");
                drop(w);
                (Outcome::Ok, Outcome::Ok)
            }
            Op::Compact { back, above } => {
                let through = if *above {
                    snap + 1
                } else {
                    snap.saturating_sub(u64::from(*back))
                };
                (Outcome::of(&p.compact(through)), model.compact(through))
            }
            Op::Reopen => {
                p = h.reopen(p);
                (Outcome::Ok, Outcome::Ok)
            }
        };
        prop_assert_eq!(got, want, "{}: outcome", at);
        let recovered = p
            .recover()
            .map_err(|e| TestCaseError::fail(format!("{at}: recover: {e}")))?;
        prop_assert_eq!(recovered, model.recovered(), "{}: recovered state", at);
        prop_assert_eq!(
            p.raft_state_size(),
            model.raft_state_size(),
            "{}: raft_state_size",
            at
        );
        prop_assert_eq!(
            p.snapshot_meta(),
            model.recovered().snapshot,
            "{}: snapshot_meta",
            at
        );
        if matches!(op, Op::Snapshot { .. } | Op::Reopen) {
            let got = match p
                .open_snapshot()
                .map_err(|e| TestCaseError::fail(format!("{at}: open snapshot: {e}")))?
            {
                Some(mut r) => {
                    let mut buf = Vec::new();
                    r.read_to_end(&mut buf)
                        .map_err(|e| TestCaseError::fail(format!("{at}: read snapshot: {e}")))?;
                    Some(buf)
                }
                None => None,
            };
            prop_assert_eq!(
                got.as_deref(),
                model.snapshot_payload(),
                "{}: snapshot payload",
                at
            );
        }
    }
    Ok(())
}

/// `default` cases unless `PROPTEST_CASES` says otherwise; failures are saved beside
/// this file (`model_proptest.regressions`) and replayed first on the next run.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn memory_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&mut MemoryHarness::new(), &ops)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn file_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let root = tempfile::tempdir().expect("tempdir");
        run(&mut DirHarness::new(Backend::File, root.path()), &ops)?;
    }
}

#[cfg(feature = "rocksdb")]
proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn rocksdb_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let root = tempfile::tempdir().expect("tempdir");
        run(&mut DirHarness::new(Backend::Rocksdb, root.path()), &ops)?;
    }
}
