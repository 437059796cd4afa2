//! A deliberately naive model of the [`Persister`](crate::Persister) contract, written
//! independently of the backends (it does not use their shared rules), that property
//! tests compare every backend with.

use crate::error::StorageError;
use crate::persister::Result;
use crate::types::{
    Entry, HARD_STATE_ACCOUNTED_SIZE, HardState, RecoveredState, SnapshotMeta, WriteBatch,
};

/// How a call ended, reduced to what the contract specifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// [`StorageError::LogGap`] with these indexes.
    LogGap {
        /// The index that would continue the log.
        expected: u64,
        /// The index given.
        got: u64,
    },
    /// [`StorageError::InvalidArgument`].
    Invalid,
    /// [`StorageError::StaleSnapshot`].
    Stale {
        /// The rejected snapshot's index.
        index: u64,
        /// The current snapshot's index.
        current: u64,
    },
    /// Any other error (never expected by the model), with its message.
    Other(String),
}

impl Outcome {
    /// Classifies a backend's result.
    pub fn of<T>(result: &Result<T>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(StorageError::LogGap { expected, got, .. }) => Self::LogGap {
                expected: *expected,
                got: *got,
            },
            Err(StorageError::InvalidArgument { .. }) => Self::Invalid,
            Err(StorageError::StaleSnapshot { index, current }) => Self::Stale {
                index: *index,
                current: *current,
            },
            Err(e) => Self::Other(e.to_string()),
        }
    }
}

/// The durable state as a plain value: hard state, current snapshot with its payload, and
/// the log after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    hard_state: HardState,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    entries: Vec<Entry>,
}

impl Model {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot's index, 0 without one.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(m, _)| m.index)
    }

    /// The last index in the log, or the snapshot index if the log is empty.
    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or_else(|| self.snapshot_index(), |e| e.index)
    }

    /// The term of the log entry at `index`, if the log (after the snapshot) holds it.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.entries
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.term)
    }

    /// The current snapshot's payload.
    pub fn snapshot_payload(&self) -> Option<&[u8]> {
        self.snapshot.as_ref().map(|(_, p)| p.as_slice())
    }

    /// The current hard state, as stored.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// [`Persister::write`](crate::Persister::write).
    pub fn write(&mut self, batch: &WriteBatch) -> Outcome {
        let mut last = self.last_index();
        if let Some(from) = batch.truncate_from {
            if from <= self.snapshot_index() {
                return Outcome::Invalid;
            }
            last = last.min(from - 1);
        }
        for (i, e) in batch.entries.iter().enumerate() {
            let expected = last + 1 + i as u64;
            if e.index != expected {
                return Outcome::LogGap {
                    expected,
                    got: e.index,
                };
            }
            if e.term == 0 {
                return Outcome::Invalid;
            }
        }
        if batch.hard_state.is_some_and(|hs| hs.voted_for == Some(0)) {
            return Outcome::Invalid;
        }
        self.entries.retain(|e| e.index <= last);
        self.entries.extend(batch.entries.iter().cloned());
        if let Some(hs) = batch.hard_state {
            self.hard_state = hs;
        }
        Outcome::Ok
    }

    /// A snapshot written with [`Persister::begin_snapshot`](crate::Persister::begin_snapshot)
    /// and committed.
    pub fn install_snapshot(&mut self, meta: SnapshotMeta, payload: Vec<u8>) -> Outcome {
        if let Some((current, _)) = &self.snapshot
            && meta.index <= current.index
        {
            return Outcome::Stale {
                index: meta.index,
                current: current.index,
            };
        }
        if self.term_at(meta.index) == Some(meta.term) {
            self.entries.retain(|e| e.index > meta.index);
        } else {
            self.entries.clear();
        }
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.snapshot = Some((meta, payload));
        Outcome::Ok
    }

    /// [`Persister::compact`](crate::Persister::compact): never changes the state.
    pub fn compact(&self, through: u64) -> Outcome {
        if through > self.snapshot_index() {
            Outcome::Invalid
        } else {
            Outcome::Ok
        }
    }

    /// What [`Persister::recover`](crate::Persister::recover) must return.
    pub fn recovered(&self) -> RecoveredState {
        let mut hard_state = self.hard_state;
        hard_state.commit = hard_state.commit.max(self.snapshot_index());
        RecoveredState {
            hard_state,
            snapshot: self.snapshot.as_ref().map(|(m, _)| *m),
            entries: self.entries.clone(),
            skipped_snapshots: Vec::new(),
        }
    }

    /// What [`Persister::raft_state_size`](crate::Persister::raft_state_size) must return.
    pub fn raft_state_size(&self) -> u64 {
        HARD_STATE_ACCOUNTED_SIZE + self.entries.iter().map(Entry::accounted_size).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 3],
        }
    }

    #[test]
    fn model_follows_the_contract() {
        let mut m = Model::new();
        assert_eq!(
            m.write(&WriteBatch::new().append([e(2, 1)])),
            Outcome::LogGap {
                expected: 1,
                got: 2
            }
        );
        assert_eq!(
            m.write(&WriteBatch::new().append((1..=5).map(|i| e(i, 1)))),
            Outcome::Ok
        );
        assert_eq!(
            m.write(&WriteBatch::new().truncate_from(4).append([e(4, 2)])),
            Outcome::Ok
        );
        assert_eq!(m.last_index(), 4);
        assert_eq!(m.term_at(4), Some(2));
        assert_eq!(
            m.install_snapshot(SnapshotMeta { index: 3, term: 1 }, vec![1]),
            Outcome::Ok
        );
        assert_eq!(m.recovered().entries, vec![e(4, 2)]);
        assert_eq!(m.recovered().hard_state.commit, 3);
        assert_eq!(m.raft_state_size(), HARD_STATE_ACCOUNTED_SIZE + 19);
        assert_eq!(
            m.write(&WriteBatch::new().truncate_from(3)),
            Outcome::Invalid
        );
        assert_eq!(
            m.install_snapshot(SnapshotMeta { index: 3, term: 1 }, vec![]),
            Outcome::Stale {
                index: 3,
                current: 3
            }
        );
        assert_eq!(
            m.install_snapshot(SnapshotMeta { index: 4, term: 9 }, vec![]),
            Outcome::Ok
        );
        assert!(m.recovered().entries.is_empty());
        assert_eq!(m.compact(5), Outcome::Invalid);
        assert_eq!(m.compact(4), Outcome::Ok);
    }
}
