//! The in-memory view of what the database holds: enough to validate batches, decide
//! what a snapshot supersedes and account sizes without reading RocksDB.

use std::collections::VecDeque;

use crate::types::{Entry, SnapshotMeta, WriteBatch};

/// The logical state of the log, kept equal to what recovery would return.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// The current snapshot.
    pub(crate) snapshot: Option<SnapshotMeta>,
    /// Index of the snapshot kept as a fallback (the store's previous one), 0 if none.
    /// Entries above it stay on disk, so that recovery can fall back to it.
    pub(crate) fallback_index: u64,
    /// `(term, accounted size)` of each entry after the snapshot, in index order.
    log: VecDeque<(u64, u64)>,
    /// Sum of the accounted sizes in `log`.
    log_bytes: u64,
}

impl View {
    /// A view of `snapshot` followed by `log` (`(term, accounted size)` from
    /// `snapshot.index + 1`).
    pub(crate) fn new(
        snapshot: Option<SnapshotMeta>,
        fallback_index: u64,
        log: VecDeque<(u64, u64)>,
    ) -> Self {
        let log_bytes = log.iter().map(|&(_, size)| size).sum();
        Self {
            snapshot,
            fallback_index,
            log,
            log_bytes,
        }
    }

    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snapshot.map_or(0, |s| s.index)
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.snapshot_index() + self.log.len() as u64
    }

    /// Number of entries after the snapshot.
    pub(crate) fn len(&self) -> usize {
        self.log.len()
    }

    /// Accounted bytes of the entries after the snapshot.
    pub(crate) fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// The term of the entry at `index`, if it is after the snapshot and in the log.
    pub(crate) fn term_at(&self, index: u64) -> Option<u64> {
        let pos = index.checked_sub(self.snapshot_index() + 1)?;
        self.log
            .get(usize::try_from(pos).ok()?)
            .map(|&(term, _)| term)
    }

    /// Applies a batch that [`rules::validate_batch`](crate::rules::validate_batch)
    /// accepted.
    pub(crate) fn apply(&mut self, batch: &WriteBatch) {
        if let Some(from) = batch.truncate_from {
            let keep = from.saturating_sub(self.snapshot_index() + 1);
            let keep = usize::try_from(keep)
                .unwrap_or(usize::MAX)
                .min(self.log.len());
            for (_, size) in self.log.drain(keep..) {
                self.log_bytes -= size;
            }
        }
        for e in &batch.entries {
            let size = e.accounted_size();
            self.log.push_back((e.term, size));
            self.log_bytes += size;
        }
    }

    /// Makes `meta` the current snapshot. Returns whether the log held `meta.index` with
    /// `meta.term`, in which case the entries after it are kept; otherwise the whole log
    /// is superseded (Raft §7), the rule of
    /// [`rules::superseded_by_snapshot`](crate::rules::superseded_by_snapshot).
    pub(crate) fn install(&mut self, meta: SnapshotMeta) -> bool {
        let matched = self.term_at(meta.index) == Some(meta.term);
        if matched {
            let drop_n = usize::try_from(meta.index - self.snapshot_index()).unwrap_or(usize::MAX);
            for (_, size) in self.log.drain(..drop_n) {
                self.log_bytes -= size;
            }
        } else {
            self.log.clear();
            self.log_bytes = 0;
        }
        self.fallback_index = self.snapshot_index();
        self.snapshot = Some(meta);
        matched
    }
}

/// `(term, accounted size)` of an entry, as the view keeps it.
pub(crate) fn view_item(e: &Entry) -> (u64, u64) {
    (e.term, e.accounted_size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![0; index as usize],
        }
    }

    #[test]
    fn install_agrees_with_the_shared_rule() {
        let log: Vec<Entry> = vec![e(5, 1), e(6, 1), e(7, 2), e(8, 2)];
        let base = SnapshotMeta { index: 4, term: 1 };
        for (index, term) in [
            (5, 1),
            (6, 1),
            (6, 2),
            (7, 2),
            (8, 2),
            (8, 3),
            (9, 2),
            (12, 5),
        ] {
            let meta = SnapshotMeta { index, term };
            let mut v = View::new(Some(base), 0, log.iter().map(view_item).collect());
            let matched = v.install(meta);
            let superseded = rules::superseded_by_snapshot(&log, meta);
            let kept: Vec<Entry> = log[superseded..].to_vec();
            let holds = log.iter().any(|x| x.index == index && x.term == term);
            assert_eq!(matched, holds, "{meta:?}");
            assert_eq!(v.len(), kept.len(), "{meta:?}");
            assert_eq!(
                v.log_bytes(),
                kept.iter().map(Entry::accounted_size).sum::<u64>(),
                "{meta:?}"
            );
            assert_eq!(
                v.last_index(),
                kept.last().map_or(index, |x| x.index),
                "{meta:?}"
            );
            assert_eq!(v.fallback_index, 4);
        }
    }

    #[test]
    fn apply_truncates_and_appends() {
        let mut v = View::new(
            Some(SnapshotMeta { index: 2, term: 1 }),
            0,
            [e(3, 1), e(4, 1), e(5, 1)].iter().map(view_item).collect(),
        );
        v.apply(&WriteBatch::new().truncate_from(4).append([e(4, 2)]));
        assert_eq!(v.last_index(), 4);
        assert_eq!(v.term_at(4), Some(2));
        assert_eq!(v.term_at(2), None);
        assert_eq!(
            v.log_bytes(),
            e(3, 1).accounted_size() + e(4, 2).accounted_size()
        );
        v.apply(&WriteBatch::new().truncate_from(99));
        assert_eq!(v.last_index(), 4);
        v.apply(&WriteBatch::new().truncate_from(3));
        assert_eq!((v.last_index(), v.len(), v.log_bytes()), (2, 0, 0));
    }
}
