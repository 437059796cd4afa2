//! A node's durable Raft state as the simulation sees it: a mirror of what its
//! [`Persister`](raftkv_storage::Persister) holds, kept up to date from the batches and
//! snapshots the node writes (no re-reading of storage after every event).
//!
//! Entries are kept as (term, prefix hash) only; the prefix hash is what
//! [`LogMatching`] compares. The mirror follows the storage contract exactly: a batch
//! truncates, appends, then replaces the hard state; a committed snapshot keeps the
//! entries after its index only if the log held its index with its term (Raft §7).
//! The simulation compares the mirror with `Persister::recover()` after every snapshot
//! and on every restart, so a drift between the two (a storage bug or a sim bug) is
//! caught too.

use raftkv_storage::{HardState, NodeId, RecoveredState, SnapshotMeta, WriteBatch};

use crate::sim::invariants::{LogMatching, Violation, VoteOnce};

/// One mirrored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    term: u64,
    prefix: u64,
}

/// The durable log of one node.
#[derive(Debug, Clone, Default)]
pub struct DurableLog {
    snapshot: SnapshotMeta,
    snapshot_prefix: u64,
    entries: Vec<Slot>,
    hard_state: HardState,
}

impl DurableLog {
    /// The mirror of freshly recovered storage; checks its entries against the
    /// log-matching history (they were all written before, so they must match).
    pub fn from_recovered(
        node: NodeId,
        rec: &RecoveredState,
        lm: &mut LogMatching,
    ) -> Result<Self, Violation> {
        let snapshot = rec.snapshot.unwrap_or_default();
        let snapshot_prefix = lm.prefix_of(snapshot.index, snapshot.term).ok_or_else(|| {
            Violation::new(
                "log matching",
                "Raft §5.3, §7",
                format!(
                    "node {node} recovered a snapshot at (index {}, term {}), an entry that no \
                     node ever made durable",
                    snapshot.index, snapshot.term
                ),
            )
        })?;
        let mut log = Self {
            snapshot,
            snapshot_prefix,
            entries: Vec::with_capacity(rec.entries.len()),
            hard_state: rec.hard_state,
        };
        for e in &rec.entries {
            log.push(node, e.index, e.term, &e.data, lm)?;
        }
        Ok(log)
    }

    fn push(
        &mut self,
        node: NodeId,
        index: u64,
        term: u64,
        data: &[u8],
        lm: &mut LogMatching,
    ) -> Result<(), Violation> {
        let expected = self.last_index() + 1;
        if index != expected {
            return Err(Violation::new(
                "durable log contract",
                "Persister::write",
                format!("node {node} appended entry {index} where {expected} was expected"),
            ));
        }
        let (prev_term, prev_prefix) = match self.entries.last() {
            Some(s) => (s.term, s.prefix),
            None => (self.snapshot.term, self.snapshot_prefix),
        };
        let prefix = LogMatching::entry_prefix(prev_prefix, index, term, data);
        lm.on_entry(node, index, term, prev_term, prefix)?;
        self.entries.push(Slot { term, prefix });
        Ok(())
    }

    /// Mirrors a batch that storage accepted; checks the new entries (log matching)
    /// and the new hard state (one vote per term).
    pub fn apply_batch(
        &mut self,
        node: NodeId,
        batch: &WriteBatch,
        lm: &mut LogMatching,
        votes: &mut VoteOnce,
    ) -> Result<(), Violation> {
        if let Some(from) = batch.truncate_from {
            let keep = from.saturating_sub(self.snapshot.index + 1);
            let keep = usize::try_from(keep)
                .unwrap_or(usize::MAX)
                .min(self.entries.len());
            self.entries.truncate(keep);
        }
        for e in &batch.entries {
            self.push(node, e.index, e.term, &e.data, lm)?;
        }
        if let Some(hs) = batch.hard_state {
            votes.on_hard_state(node, &hs)?;
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Mirrors a committed snapshot at `meta` (taken locally or installed from a
    /// leader).
    pub fn apply_snapshot(
        &mut self,
        node: NodeId,
        meta: SnapshotMeta,
        lm: &LogMatching,
    ) -> Result<(), Violation> {
        let prefix = match self.slot(meta.index) {
            Some(s) if s.term == meta.term => Some(s.prefix),
            _ => None,
        };
        let keep_suffix = prefix.is_some();
        let prefix = match prefix.or_else(|| lm.prefix_of(meta.index, meta.term)) {
            Some(p) => p,
            None => {
                return Err(Violation::new(
                    "log matching",
                    "Raft §5.3, §7",
                    format!(
                        "node {node} stored a snapshot at (index {}, term {}), an entry that no \
                         node ever made durable",
                        meta.index, meta.term
                    ),
                ));
            }
        };
        if keep_suffix {
            let drop_n = usize::try_from(meta.index - self.snapshot.index).unwrap_or(usize::MAX);
            self.entries.drain(..drop_n.min(self.entries.len()));
        } else {
            self.entries.clear();
        }
        self.snapshot = meta;
        self.snapshot_prefix = prefix;
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        Ok(())
    }

    fn slot(&self, index: u64) -> Option<Slot> {
        if index <= self.snapshot.index {
            return None;
        }
        let i = usize::try_from(index - self.snapshot.index - 1).ok()?;
        self.entries.get(i).copied()
    }

    /// The term of the entry at `index`, including the snapshot's last entry; `None`
    /// if the log does not hold it (compacted further back, or beyond the end).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.slot(index).map(|s| s.term)
    }

    /// The last index (the snapshot's if the log is empty).
    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    /// The current snapshot (index 0 when none).
    pub fn snapshot(&self) -> SnapshotMeta {
        self.snapshot
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Describes how the mirror differs from what storage recovered, if it does.
    pub fn diff(&self, rec: &RecoveredState) -> Option<String> {
        let snap = rec.snapshot.unwrap_or_default();
        if snap != self.snapshot {
            return Some(format!(
                "snapshot: storage has {:?}, mirror has {:?}",
                rec.snapshot, self.snapshot
            ));
        }
        let mut hs = self.hard_state;
        hs.commit = hs.commit.max(self.snapshot.index);
        if rec.hard_state != hs {
            return Some(format!(
                "hard state: storage has {:?}, mirror has {:?}",
                rec.hard_state, hs
            ));
        }
        if rec.entries.len() != self.entries.len() {
            return Some(format!(
                "log length: storage has {} entries after the snapshot, mirror has {}",
                rec.entries.len(),
                self.entries.len()
            ));
        }
        let mut prefix = self.snapshot_prefix;
        for (k, (e, s)) in rec.entries.iter().zip(&self.entries).enumerate() {
            let index = self.snapshot.index + 1 + k as u64;
            if e.index != index || e.term != s.term {
                return Some(format!(
                    "entry {index}: storage has (index {}, term {}), mirror has term {}",
                    e.index, e.term, s.term
                ));
            }
            prefix = LogMatching::entry_prefix(prefix, e.index, e.term, &e.data);
            if prefix != s.prefix {
                return Some(format!(
                    "entry {index}: storage holds a different payload (or prefix) than was written"
                ));
            }
        }
        None
    }
}
