//! Runs the conformance suite (`raftkv_storage::testing::suite`) against every backend,
//! one test per case and backend, so that a failure names both.

use raftkv_storage::testing::{DirHarness, MemoryHarness, suite};
#[allow(
    unused_imports,
    reason = "used by the rocksdb module, behind its feature"
)]
use raftkv_storage::{Backend, StorageConfig};

macro_rules! conformance {
    ($backend:ident, $harness:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            #[allow(unused_imports, reason = "each harness expression uses some of these")]
            use super::*;

            $(
                #[test]
                fn $case() {
                    #[allow(unused_variables, reason = "the memory harness needs no directory")]
                    let root = tempfile::tempdir().expect("tempdir");
                    let mut h = $harness(root.path());
                    suite::$case(&mut h);
                }
            )*

            /// The list above names every case of the suite.
            #[test]
            fn lists_every_case() {
                let listed: Vec<&str> = vec![$(stringify!($case)),*];
                let suite: Vec<&str> = suite::CASES.iter().map(|(name, _)| *name).collect();
                assert_eq!(listed, suite, "update the case list in tests/conformance.rs");
            }
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $harness:expr) => {
        conformance!(
            $backend,
            $harness,
            [
                empty_store,
                first_append_must_start_at_one,
                gaps_and_overlaps_are_rejected,
                truncate_at_first_index,
                truncate_above_last_index,
                truncate_and_replace_suffix,
                truncate_at_or_below_snapshot_is_rejected,
                empty_batch_and_hard_state_only,
                invalid_terms_and_votes_are_rejected,
                recovery_after_reopen_equals_state_before,
                snapshot_keeps_matching_suffix,
                snapshot_discards_conflicting_log,
                snapshot_beyond_log_discards_it,
                snapshot_on_empty_store,
                stale_snapshot_is_rejected,
                log_writes_during_snapshot_write,
                successive_snapshots_and_restarts,
                compact_edges,
                raft_state_size_is_exact,
                snapshot_size_before_and_after,
                large_snapshot_streams,
                reader_keeps_old_payload_across_commit,
                dropped_writer_leaves_old_snapshot,
                concurrent_writes_leave_contiguous_log,
                rejected_calls_do_not_poison,
            ]
        );
    };
}

all_cases!(memory, |_: &std::path::Path| MemoryHarness::new());

all_cases!(file, |root: &std::path::Path| DirHarness::new(
    Backend::File,
    root
));

/// Small segments, so that the file backend's segment rollover is exercised too.
mod file_small_segments {
    use super::*;

    #[test]
    fn run_all() {
        let root = tempfile::tempdir().expect("tempdir");
        let config = StorageConfig {
            segment_bytes: 64 << 10,
            snapshot_frame_bytes: 4096,
            ..StorageConfig::new(Backend::File, "unset")
        };
        // The large-snapshot case is covered above; here the small frames would make it
        // slow without adding coverage of the log.
        let mut h = DirHarness::with_config(config, root.path());
        for (name, case) in suite::CASES {
            if *name != "large_snapshot_streams" {
                case(&mut h);
            }
        }
    }
}

#[cfg(feature = "rocksdb")]
all_cases!(rocksdb, |root: &std::path::Path| DirHarness::new(
    Backend::Rocksdb,
    root
));
