//! [`LiveLog`]: what the file backend keeps in memory about its log, the term and
//! accounted size of each entry after the snapshot. The entries' data stays on disk.

use std::collections::VecDeque;

use crate::types::{Entry, SnapshotMeta, WriteBatch};

/// Terms and sizes of the log entries after the current snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LiveLog {
    /// Index of the first entry (the snapshot index + 1).
    first: u64,
    /// `(term, accounted size)` of entries `first..`.
    entries: VecDeque<(u64, u64)>,
    /// Sum of the accounted sizes.
    bytes: u64,
}

impl LiveLog {
    /// A log of `entries`, which follow a snapshot at `snapshot_index`.
    pub(crate) fn new(snapshot_index: u64, entries: &[Entry]) -> Self {
        let mut log = Self {
            first: snapshot_index + 1,
            entries: VecDeque::with_capacity(entries.len()),
            bytes: 0,
        };
        for e in entries {
            log.push(e.index, e.term, e.accounted_size());
        }
        log
    }

    fn push(&mut self, index: u64, term: u64, size: u64) {
        assert_eq!(
            index,
            self.last_index() + 1,
            "live log: appending entry {index} after {}",
            self.last_index()
        );
        self.entries.push_back((term, size));
        self.bytes += size;
    }

    /// The snapshot index the log follows.
    pub(crate) fn snapshot_index(&self) -> u64 {
        self.first - 1
    }

    /// The last entry's index, or the snapshot index when empty.
    pub(crate) fn last_index(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    /// Accounted bytes of the entries.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The term of entry `index`, if the log holds it.
    pub(crate) fn term_at(&self, index: u64) -> Option<u64> {
        let pos = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.entries.get(pos).map(|&(t, _)| t)
    }

    /// Applies a batch that [`rules::validate_batch`](crate::rules::validate_batch)
    /// accepted: truncation, then appends.
    pub(crate) fn apply_batch(&mut self, batch: &WriteBatch) {
        if let Some(from) = batch.truncate_from {
            let keep = from
                .saturating_sub(self.first)
                .min(self.entries.len() as u64) as usize;
            for (_, size) in self.entries.drain(keep..) {
                self.bytes -= size;
            }
        }
        for e in &batch.entries {
            self.push(e.index, e.term, e.accounted_size());
        }
    }

    /// Compacts the log for a committed snapshot at `meta`, as
    /// [`rules::superseded_by_snapshot`](crate::rules::superseded_by_snapshot) decides:
    /// if the log holds `meta.index` with `meta.term`, the entries after it stay;
    /// otherwise the whole log is superseded.
    ///
    /// Returns whether the suffix was kept. `meta` must be newer than the log's snapshot.
    pub(crate) fn apply_snapshot(&mut self, meta: SnapshotMeta) -> bool {
        assert!(
            meta.index + 1 >= self.first,
            "live log: snapshot {meta:?} is not newer than the log's snapshot index {}",
            self.snapshot_index()
        );
        let keep_suffix = self.keeps_suffix(meta);
        let drop = if keep_suffix {
            (meta.index + 1 - self.first) as usize
        } else {
            self.entries.len()
        };
        for (_, size) in self.entries.drain(..drop) {
            self.bytes -= size;
        }
        if !keep_suffix {
            debug_assert!(self.entries.is_empty());
        }
        self.first = meta.index + 1;
        keep_suffix
    }

    /// Whether a snapshot at `meta` would keep the entries after it (the log holds
    /// `meta.index` with `meta.term`).
    /// A snapshot at the log's own snapshot index (only possible at index 0, with no
    /// snapshot yet) keeps everything, as the shared rule does.
    pub(crate) fn keeps_suffix(&self, meta: SnapshotMeta) -> bool {
        meta.index + 1 == self.first || self.term_at(meta.index) == Some(meta.term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::superseded_by_snapshot;

    fn e(index: u64, term: u64, len: usize) -> Entry {
        Entry {
            index,
            term,
            data: vec![0; len],
        }
    }

    #[test]
    fn snapshot_compaction_matches_the_shared_rule() {
        // Every snapshot position/term against a log 5..=12 with a term change at 9.
        let log: Vec<Entry> = (5..=12)
            .map(|i| e(i, if i < 9 { 1 } else { 2 }, i as usize))
            .collect();
        // Snapshots newer than the log's (index 4), as the stale check guarantees.
        for index in 5..=14 {
            for term in 0..=3 {
                let meta = SnapshotMeta { index, term };
                let mut live = LiveLog::new(4, &log);
                let kept = live.apply_snapshot(meta);
                assert_eq!(kept, log.iter().any(|x| x.index == index && x.term == term));
                let n = superseded_by_snapshot(&log, meta);
                // What the memory backend keeps: the rule's suffix, if it starts right
                // after the snapshot.
                let mut suffix: Vec<Entry> = log[n..].to_vec();
                if suffix.first().is_some_and(|f| f.index != index + 1) {
                    suffix.clear();
                }
                assert_eq!(live, LiveLog::new(index, &suffix), "snapshot {meta:?}");
                assert_eq!(
                    live.bytes(),
                    suffix.iter().map(Entry::accounted_size).sum::<u64>()
                );
            }
        }
    }

    #[test]
    fn batches_truncate_and_append() {
        let mut live = LiveLog::new(0, &[e(1, 1, 3), e(2, 1, 3), e(3, 1, 3)]);
        assert_eq!(live.bytes(), 3 * 19);
        live.apply_batch(&WriteBatch::new().truncate_from(2).append([e(2, 2, 10)]));
        assert_eq!(live.last_index(), 2);
        assert_eq!(live.term_at(2), Some(2));
        assert_eq!(live.term_at(3), None);
        assert_eq!(live.bytes(), 19 + 26);
        live.apply_batch(&WriteBatch::new().truncate_from(9));
        assert_eq!(live.last_index(), 2);
    }
}
