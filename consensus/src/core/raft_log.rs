//! [`RaftLog`]: the in-memory log after the snapshot, with the commit, applied and
//! persisted bookkeeping and the staging of persist batches.
//!
//! Indices, from low to high, always satisfy
//! `snapshot.index <= applied <= min(commit, persisted)`, `commit <= last_index` and
//! `persisted <= last_index`. Entries `>= unstable_from` have not been handed to a
//! persist batch yet; entries in `(persisted, unstable_from)` have been, but are not
//! known to be durable. The checked operations return a [`LogError`] rather than
//! break these rules; the core turns that into an invariant panic.

use std::collections::VecDeque;

use raftkv_storage::{Entry, SnapshotMeta};

/// A rule of the log an operation would break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LogError {
    #[error("entry {got} does not directly follow the last index {last}")]
    Gap { last: u64, got: u64 },
    #[error("entry {index} has term {term}, below the previous entry's term {prev}")]
    TermRegression { index: u64, term: u64, prev: u64 },
    #[error("commit would move back from {from} to {to}")]
    CommitRegression { from: u64, to: u64 },
    #[error("commit {commit} is beyond the last index {last}")]
    CommitBeyondLog { commit: u64, last: u64 },
    #[error("truncating from {from} would remove committed entries (commit {commit})")]
    TruncateCommitted { from: u64, commit: u64 },
    #[error("a snapshot at {index} covers entries not yet applied (applied {applied})")]
    SnapshotBeyondApplied { index: u64, applied: u64 },
    #[error("a snapshot at {index} has term {term}, but the log holds {log_term:?} there")]
    SnapshotTermMismatch {
        index: u64,
        term: u64,
        log_term: Option<u64>,
    },
    #[error("persist id {id} was never handed out (last handed out: {last_id})")]
    UnknownPersistId { id: u64, last_id: u64 },
}

/// A persist batch handed out and not yet reported durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    id: u64,
    /// Once the batch is durable, the log is durable through this index (lowered if
    /// a later truncation removes entries the batch wrote).
    last: u64,
}

/// What [`RaftLog::install_snapshot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installed {
    /// The snapshot is not newer than the log's: nothing changed.
    Stale,
    /// The log was compacted; everything it covers had been applied already.
    Compacted,
    /// The log was compacted and the state machine must load the snapshot: commit and
    /// applied moved to its index.
    Restored,
}

/// The in-memory Raft log of one node.
#[derive(Debug, Clone)]
pub(crate) struct RaftLog {
    snapshot: SnapshotMeta,
    /// Entries `snapshot.index + 1 ..= last_index`.
    entries: VecDeque<Entry>,
    /// Sum of [`Entry::accounted_size`] over `entries`.
    entry_bytes: u64,
    commit: u64,
    applied: u64,
    persisted: u64,
    unstable_from: u64,
    /// A truncation the next persist batch must carry.
    pending_truncate: Option<u64>,
    in_flight: VecDeque<InFlight>,
    last_persist_id: u64,
}

impl RaftLog {
    /// The log as recovered from storage: everything in it is durable, and applied
    /// starts at the snapshot. Fails if the recovered state breaks a storage rule.
    pub(crate) fn recovered(
        snapshot: Option<SnapshotMeta>,
        entries: &[Entry],
        commit: u64,
    ) -> Result<Self, String> {
        let snapshot = snapshot.unwrap_or_default();
        let mut log = Self {
            snapshot,
            entries: VecDeque::with_capacity(entries.len()),
            entry_bytes: 0,
            commit: 0,
            applied: snapshot.index,
            persisted: snapshot.index,
            unstable_from: snapshot.index + 1,
            pending_truncate: None,
            in_flight: VecDeque::new(),
            last_persist_id: 0,
        };
        for e in entries {
            if e.term == 0 {
                return Err(format!("recovered entry {} has term 0", e.index));
            }
            log.append(std::iter::once(e.clone()))
                .map_err(|err| format!("recovered log: {err}"))?;
        }
        let last = log.last_index();
        if commit > last {
            return Err(format!(
                "the hard state's commit {commit} is beyond the last recovered index {last}"
            ));
        }
        log.commit = commit.max(snapshot.index);
        log.persisted = last;
        log.unstable_from = last + 1;
        Ok(log)
    }

    pub(crate) fn snapshot(&self) -> SnapshotMeta {
        self.snapshot
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.snapshot.term, |e| e.term)
    }

    pub(crate) fn commit(&self) -> u64 {
        self.commit
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied
    }

    pub(crate) fn persisted(&self) -> u64 {
        self.persisted
    }

    /// Bytes of the in-memory entries, counted with [`Entry::accounted_size`].
    pub(crate) fn entry_bytes(&self) -> u64 {
        self.entry_bytes
    }

    /// The term of the entry at `index`, if the log still knows it (the snapshot's
    /// index included; index 0 has term 0).
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up to date as
    /// this one (Raft §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Entries from `from` (at least one if any exist), at most `max_count` of them and,
    /// beyond the first, at most `max_bytes` of payload. `from` must be above the
    /// snapshot index.
    pub(crate) fn entries_from(&self, from: u64, max_count: usize, max_bytes: u64) -> Vec<Entry> {
        let Some(start) = from.checked_sub(self.first_index()) else {
            return Vec::new();
        };
        let Ok(start) = usize::try_from(start) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for e in self.entries.iter().skip(start).take(max_count) {
            let size = e.data.len() as u64;
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(e.clone());
        }
        out
    }

    /// Appends entries that directly follow the log, with non-decreasing terms.
    pub(crate) fn append(
        &mut self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), LogError> {
        for e in entries {
            let last = self.last_index();
            if e.index != last + 1 {
                return Err(LogError::Gap { last, got: e.index });
            }
            let prev = self.last_term();
            if e.term < prev {
                return Err(LogError::TermRegression {
                    index: e.index,
                    term: e.term,
                    prev,
                });
            }
            self.entry_bytes += e.accounted_size();
            self.entries.push_back(e);
        }
        Ok(())
    }

    /// Removes every entry `>= from`. Committed entries are never removed.
    pub(crate) fn truncate_from(&mut self, from: u64) -> Result<(), LogError> {
        if from <= self.commit {
            return Err(LogError::TruncateCommitted {
                from,
                commit: self.commit,
            });
        }
        if from > self.last_index() {
            return Ok(());
        }
        let keep = (from - self.first_index()) as usize;
        let removed: u64 = self.entries.range(keep..).map(Entry::accounted_size).sum();
        self.entries.truncate(keep);
        self.entry_bytes -= removed;
        if from < self.unstable_from {
            // Entries already handed to a batch are gone: the next batch truncates.
            self.pending_truncate = Some(self.pending_truncate.map_or(from, |p| p.min(from)));
            self.unstable_from = from;
        }
        self.lower_durable_to(from - 1);
        Ok(())
    }

    /// Durability can no longer be claimed above `index`.
    fn lower_durable_to(&mut self, index: u64) {
        self.persisted = self.persisted.min(index);
        for batch in &mut self.in_flight {
            batch.last = batch.last.min(index);
        }
    }

    /// The follower's fast-backtracking hint for a rejected `prev_log_index` above the
    /// commit index: `(last + 1, None)` if the log is too short, otherwise the first
    /// index above the commit index holding the conflicting term, and that term.
    pub(crate) fn conflict_hint(&self, prev_log_index: u64) -> (u64, Option<u64>) {
        let Some(term) = self.term(prev_log_index) else {
            return (self.last_index() + 1, None);
        };
        // Terms never decrease, so the first entry with a term >= `term` starts the run
        // of `term` that ends at `prev_log_index`.
        let first = self.first_index() + self.entries.partition_point(|e| e.term < term) as u64;
        (first.max(self.commit + 1), Some(term))
    }

    /// The last index `<= at_most` whose entry has `term`, if the log knows one.
    pub(crate) fn last_index_of_term(&self, term: u64, at_most: u64) -> Option<u64> {
        let upto = self.entries.partition_point(|e| e.term <= term) as u64;
        // `upto` entries have a term <= `term`; the last of them is at this index (the
        // snapshot's index when there are none).
        let candidate = (self.snapshot.index + upto).min(at_most);
        (self.term(candidate) == Some(term)).then_some(candidate)
    }

    /// Raises the commit index to `index` (never lowers it). Returns whether it moved.
    pub(crate) fn commit_to(&mut self, index: u64) -> Result<bool, LogError> {
        if index < self.commit {
            return Err(LogError::CommitRegression {
                from: self.commit,
                to: index,
            });
        }
        if index > self.last_index() {
            return Err(LogError::CommitBeyondLog {
                commit: index,
                last: self.last_index(),
            });
        }
        let moved = index > self.commit;
        self.commit = index;
        Ok(moved)
    }

    /// Whether entries are committed and durable but not yet handed out to apply.
    pub(crate) fn has_applicable(&self) -> bool {
        self.applied < self.commit.min(self.persisted)
    }

    /// Hands out the committed, durable entries not yet applied, and marks them
    /// applied.
    pub(crate) fn take_applicable(&mut self) -> Vec<Entry> {
        let hi = self.commit.min(self.persisted);
        if hi <= self.applied {
            return Vec::new();
        }
        let start = (self.applied + 1 - self.first_index()) as usize;
        let count = (hi - self.applied) as usize;
        let out: Vec<Entry> = self.entries.range(start..start + count).cloned().collect();
        self.applied = hi;
        out
    }

    /// The service took a snapshot at `meta` (already durable): drops the entries it
    /// covers. Returns false (and changes nothing) for a snapshot not newer than the
    /// log's.
    pub(crate) fn compact(&mut self, meta: SnapshotMeta) -> Result<bool, LogError> {
        if meta.index <= self.snapshot.index {
            return Ok(false);
        }
        if meta.index > self.applied {
            return Err(LogError::SnapshotBeyondApplied {
                index: meta.index,
                applied: self.applied,
            });
        }
        let log_term = self.term(meta.index);
        if log_term != Some(meta.term) {
            return Err(LogError::SnapshotTermMismatch {
                index: meta.index,
                term: meta.term,
                log_term,
            });
        }
        self.drop_through(meta.index);
        self.snapshot = meta;
        Ok(true)
    }

    fn drop_through(&mut self, index: u64) {
        let n = usize::try_from(index.saturating_sub(self.snapshot.index))
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        let removed: u64 = self.entries.range(..n).map(Entry::accounted_size).sum();
        self.entries.drain(..n);
        self.entry_bytes -= removed;
    }

    /// A snapshot at `meta` was committed into the persister (which compacted its log
    /// by Raft §7): mirror that in memory.
    ///
    /// The persister kept the entries after `meta.index` iff its durable log held
    /// `meta.index` with `meta.term`. When the in-memory log holds that entry and it is
    /// known to be durable, both keep the same suffix. When it is not known to be
    /// durable, the persister's suffix is uncertain, so the next batch truncates from
    /// `meta.index + 1` and rewrites the in-memory suffix. Without the entry, both drop
    /// the whole log.
    pub(crate) fn install_snapshot(&mut self, meta: SnapshotMeta) -> Installed {
        if meta.index <= self.snapshot.index {
            return Installed::Stale;
        }
        let holds = self.term(meta.index) == Some(meta.term);
        let durable_certain = self.persisted >= meta.index && self.pending_truncate.is_none();
        if holds {
            self.drop_through(meta.index);
            if !durable_certain {
                self.pending_truncate = Some(meta.index + 1);
                self.unstable_from = meta.index + 1;
                self.lower_durable_to(meta.index);
                self.persisted = meta.index;
            }
        } else {
            self.entries.clear();
            self.entry_bytes = 0;
            if self.pending_truncate.is_some() {
                self.pending_truncate = Some(meta.index + 1);
            }
            self.unstable_from = meta.index + 1;
            self.lower_durable_to(meta.index);
            self.persisted = meta.index;
        }
        self.snapshot = meta;
        self.unstable_from = self.unstable_from.max(meta.index + 1);
        if meta.index > self.commit {
            self.commit = meta.index;
        }
        if meta.index > self.applied {
            self.applied = meta.index;
            Installed::Restored
        } else {
            Installed::Compacted
        }
    }

    /// Whether the next persist batch has log changes to carry.
    pub(crate) fn has_unstable(&self) -> bool {
        self.pending_truncate.is_some() || self.unstable_from <= self.last_index()
    }

    /// Hands the log changes out to persist batch `id`: the truncation (if any) and the
    /// entries not handed out before.
    pub(crate) fn stage(&mut self, id: u64) -> (Option<u64>, Vec<Entry>) {
        let truncate = self.pending_truncate.take();
        let last = self.last_index();
        let entries = if self.unstable_from <= last {
            let start = (self.unstable_from - self.first_index()) as usize;
            self.entries.range(start..).cloned().collect()
        } else {
            Vec::new()
        };
        self.unstable_from = last + 1;
        self.in_flight.push_back(InFlight { id, last });
        self.last_persist_id = id;
        (truncate, entries)
    }

    /// Batch `id` and every earlier one are durable. Returns whether the persisted
    /// index moved.
    pub(crate) fn on_persisted(&mut self, id: u64) -> Result<bool, LogError> {
        if id > self.last_persist_id {
            return Err(LogError::UnknownPersistId {
                id,
                last_id: self.last_persist_id,
            });
        }
        let before = self.persisted;
        while let Some(batch) = self.in_flight.front().copied() {
            if batch.id > id {
                break;
            }
            self.in_flight.pop_front();
            self.persisted = self.persisted.max(batch.last);
        }
        Ok(self.persisted > before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8],
        }
    }

    fn log_with(terms: &[u64]) -> RaftLog {
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, t)| e(i as u64 + 1, *t))
            .collect();
        RaftLog::recovered(None, &entries, 0).expect("valid log")
    }

    #[test]
    fn recovered_rejects_gaps_regressions_and_commit_beyond_log() {
        assert!(RaftLog::recovered(None, &[e(2, 1)], 0).is_err());
        assert!(RaftLog::recovered(None, &[e(1, 2), e(2, 1)], 0).is_err());
        assert!(RaftLog::recovered(None, &[e(1, 1)], 2).is_err());
        assert!(RaftLog::recovered(None, &[e(1, 0)], 0).is_err());
        let snap = SnapshotMeta { index: 5, term: 2 };
        let log = RaftLog::recovered(Some(snap), &[e(6, 2)], 0).expect("valid");
        assert_eq!(
            (
                log.commit(),
                log.applied(),
                log.persisted(),
                log.last_index()
            ),
            (5, 5, 6, 6)
        );
        assert!(RaftLog::recovered(Some(snap), &[e(6, 1)], 0).is_err());
    }

    #[test]
    fn term_lookup_covers_snapshot_and_rejects_out_of_range() {
        let log = RaftLog::recovered(
            Some(SnapshotMeta { index: 3, term: 2 }),
            &[e(4, 2), e(5, 3)],
            3,
        )
        .expect("valid");
        assert_eq!(
            (0..=6).map(|i| log.term(i)).collect::<Vec<_>>(),
            vec![None, None, None, Some(2), Some(2), Some(3), None]
        );
        assert_eq!(log.term(u64::MAX), None);
    }

    #[test]
    fn conflict_hint_finds_the_start_of_the_term_above_commit() {
        let mut log = log_with(&[1, 1, 2, 2, 2, 3]);
        assert_eq!(log.conflict_hint(5), (3, Some(2)));
        assert_eq!(log.conflict_hint(6), (6, Some(3)));
        assert_eq!(log.conflict_hint(9), (7, None));
        log.persisted = 6;
        log.commit_to(3).expect("commit");
        assert_eq!(log.conflict_hint(5), (4, Some(2)));
    }

    #[test]
    fn last_index_of_term_searches_backwards_from_a_bound() {
        let log = log_with(&[1, 1, 2, 2, 4]);
        assert_eq!(log.last_index_of_term(2, 5), Some(4));
        assert_eq!(log.last_index_of_term(2, 3), Some(3));
        assert_eq!(log.last_index_of_term(1, 5), Some(2));
        assert_eq!(log.last_index_of_term(3, 5), None);
        assert_eq!(log.last_index_of_term(4, 3), None);
        assert_eq!(log.last_index_of_term(5, 9), None);
        assert_eq!(log.last_index_of_term(0, 9), Some(0));
    }

    #[test]
    fn entries_from_respects_count_and_bytes_but_sends_one() {
        let mut log = log_with(&[]);
        log.append((1..=4).map(|i| Entry {
            index: i,
            term: 1,
            data: vec![0; 10],
        }))
        .expect("append");
        let idx = |v: Vec<Entry>| v.iter().map(|e| e.index).collect::<Vec<_>>();
        assert_eq!(idx(log.entries_from(1, 3, 100)), vec![1, 2, 3]);
        assert_eq!(idx(log.entries_from(2, 10, 25)), vec![2, 3]);
        assert_eq!(idx(log.entries_from(3, 10, 1)), vec![3]);
        assert_eq!(idx(log.entries_from(5, 10, 100)), Vec::<u64>::new());
        assert_eq!(idx(log.entries_from(0, 10, 100)), Vec::<u64>::new());
    }

    #[test]
    fn staging_truncation_and_durability() {
        let mut log = log_with(&[1, 1]);
        log.append([e(3, 1), e(4, 1)]).expect("append");
        assert!(log.has_unstable());
        assert_eq!(log.stage(1), (None, vec![e(3, 1), e(4, 1)]));
        assert!(!log.has_unstable());
        // A conflict removes handed-out entries before they are durable.
        log.truncate_from(4).expect("truncate");
        log.append([e(4, 2)]).expect("append");
        assert_eq!(log.stage(2), (Some(4), vec![e(4, 2)]));
        // Batch 1 landing does not make the new entry 4 durable; batch 2 does.
        assert_eq!(log.on_persisted(1), Ok(true));
        assert_eq!(log.persisted(), 3);
        assert_eq!(log.on_persisted(2), Ok(true));
        assert_eq!(log.persisted(), 4);
        assert_eq!(
            log.on_persisted(3),
            Err(LogError::UnknownPersistId { id: 3, last_id: 2 })
        );
        // Truncating unstaged entries needs no truncation in storage.
        log.append([e(5, 2)]).expect("append");
        log.truncate_from(5).expect("truncate");
        assert!(!log.has_unstable());
    }

    #[test]
    fn checked_operations_refuse_to_break_the_rules() {
        let mut log = log_with(&[1, 2]);
        log.on_persisted(0)
            .expect("nothing staged yet, id 0 is fine");
        assert_eq!(log.commit_to(2), Ok(true));
        assert_eq!(
            log.commit_to(1),
            Err(LogError::CommitRegression { from: 2, to: 1 })
        );
        assert_eq!(
            log.commit_to(3),
            Err(LogError::CommitBeyondLog { commit: 3, last: 2 })
        );
        assert_eq!(
            log.truncate_from(2),
            Err(LogError::TruncateCommitted { from: 2, commit: 2 })
        );
        assert_eq!(
            log.append([e(4, 2)]),
            Err(LogError::Gap { last: 2, got: 4 })
        );
        assert_eq!(
            log.append([e(3, 1)]),
            Err(LogError::TermRegression {
                index: 3,
                term: 1,
                prev: 2
            })
        );
        assert_eq!(
            log.compact(SnapshotMeta { index: 1, term: 1 }),
            Err(LogError::SnapshotBeyondApplied {
                index: 1,
                applied: 0
            })
        );
        assert_eq!(log.take_applicable(), vec![e(1, 1), e(2, 2)]);
        assert_eq!(
            log.compact(SnapshotMeta { index: 2, term: 1 }),
            Err(LogError::SnapshotTermMismatch {
                index: 2,
                term: 1,
                log_term: Some(2)
            })
        );
        assert_eq!(log.compact(SnapshotMeta { index: 1, term: 1 }), Ok(true));
        assert_eq!(log.compact(SnapshotMeta { index: 1, term: 1 }), Ok(false));
        assert_eq!((log.first_index(), log.last_index()), (2, 2));
        assert_eq!(log.entry_bytes(), e(2, 2).accounted_size());
    }

    #[test]
    fn install_snapshot_keeps_a_durable_matching_suffix_only() {
        // Matching and durable: suffix kept, nothing to rewrite.
        let mut log = log_with(&[1, 1, 2, 2]);
        assert_eq!(
            log.install_snapshot(SnapshotMeta { index: 2, term: 1 }),
            Installed::Restored
        );
        assert_eq!(
            (
                log.first_index(),
                log.last_index(),
                log.commit(),
                log.applied()
            ),
            (3, 4, 2, 2)
        );
        assert!(!log.has_unstable());
        // Conflicting: whole log dropped.
        let mut log = log_with(&[1, 1, 2, 2]);
        assert_eq!(
            log.install_snapshot(SnapshotMeta { index: 3, term: 3 }),
            Installed::Restored
        );
        assert_eq!(
            (log.last_index(), log.persisted(), log.last_term()),
            (3, 3, 3)
        );
        assert!(!log.has_unstable());
        // Matching but not yet durable: the suffix is rewritten after a truncation.
        let mut log = log_with(&[1]);
        log.append([e(2, 1), e(3, 1)]).expect("append");
        assert_eq!(
            log.install_snapshot(SnapshotMeta { index: 2, term: 1 }),
            Installed::Restored
        );
        assert_eq!(log.stage(1), (Some(3), vec![e(3, 1)]));
        // Older than the log's snapshot: nothing.
        assert_eq!(
            log.install_snapshot(SnapshotMeta { index: 1, term: 1 }),
            Installed::Stale
        );
        // Covered entries already applied: compaction only.
        let mut log = log_with(&[1, 1, 1]);
        log.commit_to(3).expect("commit");
        log.take_applicable();
        assert_eq!(
            log.install_snapshot(SnapshotMeta { index: 2, term: 1 }),
            Installed::Compacted
        );
        assert_eq!((log.commit(), log.applied(), log.last_index()), (3, 3, 3));
    }
}
