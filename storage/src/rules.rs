//! Log rules that every backend applies the same way: batch validation and the
//! compaction a committed snapshot implies.

use crate::error::StorageError;
use crate::persister::Result;
use crate::types::{Entry, SnapshotMeta, WriteBatch};

/// Checks a batch against a log holding `(snapshot_index, last_index]`, before anything
/// is written. Returns the last index after the batch.
pub(crate) fn validate_batch(
    batch: &WriteBatch,
    snapshot_index: u64,
    last_index: u64,
) -> Result<u64> {
    let mut last = last_index;
    if let Some(from) = batch.truncate_from {
        if from <= snapshot_index {
            return Err(StorageError::InvalidArgument {
                op: "write batch",
                detail: format!(
                    "truncate_from {from} is at or below the snapshot index {snapshot_index}"
                ),
            });
        }
        last = last.min(from - 1);
    }
    let mut expected = last + 1;
    for e in &batch.entries {
        if e.index != expected {
            return Err(StorageError::LogGap {
                op: "write batch",
                expected,
                got: e.index,
            });
        }
        if e.term == 0 {
            return Err(StorageError::InvalidArgument {
                op: "write batch",
                detail: format!("entry {} has term 0", e.index),
            });
        }
        expected += 1;
    }
    if let Some(hs) = batch.hard_state
        && hs.voted_for == Some(0)
    {
        return Err(StorageError::InvalidArgument {
            op: "write batch",
            detail: "hard state votes for node 0, which is not a valid id".into(),
        });
    }
    Ok(expected - 1)
}

/// How many leading entries of `entries` a snapshot at `meta` supersedes: all of them
/// when the log does not hold `meta.index` with `meta.term` (Raft §7, the snapshot wins
/// over a conflicting log), otherwise those up to and including `meta.index`.
pub(crate) fn superseded_by_snapshot(entries: &[Entry], meta: SnapshotMeta) -> usize {
    let Some(first) = entries.first() else {
        return 0;
    };
    if meta.index < first.index {
        // The snapshot is older than the whole log; it supersedes nothing but is also
        // stale, which the caller rejects before asking.
        return 0;
    }
    let pos = (meta.index - first.index) as usize;
    match entries.get(pos) {
        Some(e) if e.term == meta.term => pos + 1,
        _ => entries.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HardState;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![],
        }
    }

    #[test]
    fn batch_validation_edges() {
        let ok = WriteBatch::new().append([e(6, 1), e(7, 1)]);
        assert_eq!(validate_batch(&ok, 0, 5).expect("contiguous"), 7);
        let gap = WriteBatch::new().append([e(7, 1)]);
        assert!(matches!(
            validate_batch(&gap, 0, 5),
            Err(StorageError::LogGap {
                expected: 6,
                got: 7,
                ..
            })
        ));
        let trunc = WriteBatch::new().truncate_from(3).append([e(3, 2)]);
        assert_eq!(validate_batch(&trunc, 0, 5).expect("truncate"), 3);
        let below = WriteBatch::new().truncate_from(3);
        assert!(validate_batch(&below, 3, 5).is_err());
        let after_snap = WriteBatch::new().append([e(11, 1)]);
        assert_eq!(
            validate_batch(&after_snap, 10, 10).expect("after snapshot"),
            11
        );
        let bad_vote = WriteBatch::new().hard_state(HardState {
            term: 1,
            voted_for: Some(0),
            commit: 0,
        });
        assert!(validate_batch(&bad_vote, 0, 0).is_err());
    }

    #[test]
    fn snapshot_keeps_matching_suffix_and_discards_conflict() {
        let log = [e(5, 1), e(6, 1), e(7, 2), e(8, 2)];
        let m = |index, term| SnapshotMeta { index, term };
        assert_eq!(superseded_by_snapshot(&log, m(6, 1)), 2);
        assert_eq!(superseded_by_snapshot(&log, m(6, 3)), 4);
        assert_eq!(superseded_by_snapshot(&log, m(9, 2)), 4);
        assert_eq!(superseded_by_snapshot(&log, m(8, 2)), 4);
        assert_eq!(superseded_by_snapshot(&[], m(8, 2)), 0);
    }
}
