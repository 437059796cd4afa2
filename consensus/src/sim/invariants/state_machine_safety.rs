//! **State Machine Safety** (Raft §5.4.3, Figure 3): if a server has applied a log
//! entry at a given index to its state machine, no other server will ever apply a
//! different log entry for the same index.
//!
//! The first application of each index defines the *canonical* history: the command,
//! its term, and a digest of the whole state (every command up to it, in order). Each
//! later application of that index, by any node or incarnation, must match; and a
//! snapshot a node installs or loads must carry the canonical digest of its index, so
//! that state received wholesale is checked as strictly as state built entry by entry.
//!
//! The canonical history is also what the lab-style helpers read: `nCommitted(i)` needs
//! the value committed at `i`.

use std::sync::Arc;

use raftkv_storage::{NodeId, SnapshotMeta};

use super::Violation;
use crate::sim::rng::{chain, hash_bytes};

const NAME: &str = "state machine safety";
const SECTION: &str = "Raft §5.4.3, Figure 3";

/// One index of the canonical history.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Term of the entry.
    pub term: u64,
    /// The command (empty for a leader's no-op).
    pub data: Arc<[u8]>,
    /// Digest of the state after applying every command up to and including this one.
    pub digest: u64,
    /// The node that applied it first.
    pub first_by: NodeId,
}

/// The canonical applied history.
#[derive(Debug, Default)]
pub struct StateMachineSafety {
    history: Vec<Applied>,
}

impl StateMachineSafety {
    /// The state digest after applying `data` at `index` to a state with digest `prev`.
    pub fn next_digest(prev: u64, index: u64, data: &[u8]) -> u64 {
        chain(chain(prev, index), hash_bytes(data))
    }

    /// Checks that `node` applies `(index, term, data)` to a state whose digest is
    /// `prev_digest`; returns the new digest. The first node to apply an index defines
    /// it, provided it applies right after the canonical history's end.
    pub fn on_apply(
        &mut self,
        node: NodeId,
        index: u64,
        term: u64,
        data: &[u8],
        prev_digest: u64,
    ) -> Result<u64, Violation> {
        let digest = Self::next_digest(prev_digest, index, data);
        let known = self.history.len() as u64;
        if index <= known {
            let c = &self.history[(index - 1) as usize];
            if c.term != term || *c.data != *data {
                return Err(Violation::new(
                    NAME,
                    SECTION,
                    format!(
                        "node {node} applied (term {term}, {}) at index {index}, but node {} \
                         applied (term {}, {}) there",
                        show(data),
                        c.first_by,
                        c.term,
                        show(&c.data)
                    ),
                ));
            }
            if c.digest != digest {
                return Err(Violation::new(
                    NAME,
                    SECTION,
                    format!(
                        "node {node} applied the same command as node {} at index {index}, but \
                         from a different state: an earlier index was applied differently",
                        c.first_by
                    ),
                ));
            }
        } else if index == known + 1 {
            let expected_prev = self.digest_at(index - 1).unwrap_or(0);
            if expected_prev != prev_digest {
                return Err(Violation::new(
                    NAME,
                    SECTION,
                    format!(
                        "node {node} applied index {index} to a state that differs from the canonical one at index {}",
                        index - 1
                    ),
                ));
            }
            self.history.push(Applied {
                term,
                data: Arc::from(data),
                digest,
                first_by: node,
            });
        } else {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} applied index {index} although no node ever applied index {} \
                     (it must have skipped entries)",
                    known + 1
                ),
            ));
        }
        Ok(digest)
    }

    /// Checks a snapshot that `node` installs or loads: its state digest must be the
    /// canonical one for `meta.index`.
    pub fn on_snapshot(
        &self,
        node: NodeId,
        meta: SnapshotMeta,
        digest: u64,
    ) -> Result<(), Violation> {
        match self.history.get((meta.index.max(1) - 1) as usize) {
            _ if meta.index == 0 => Ok(()),
            Some(c) if c.term == meta.term && c.digest == digest => Ok(()),
            Some(c) => Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} got a snapshot at (index {}, term {}) whose state differs from \
                     the state applied there by node {} (term {})",
                    meta.index, meta.term, c.first_by, c.term
                ),
            )),
            None => Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} got a snapshot at index {} that no node ever applied",
                    meta.index
                ),
            )),
        }
    }

    /// The canonical entry at `index`.
    pub fn get(&self, index: u64) -> Option<&Applied> {
        index
            .checked_sub(1)
            .and_then(|i| self.history.get(usize::try_from(i).ok()?))
    }

    /// The canonical digest after `index` (0 for index 0).
    pub fn digest_at(&self, index: u64) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        self.get(index).map(|a| a.digest)
    }

    /// The highest index any node applied.
    pub fn max_index(&self) -> u64 {
        self.history.len() as u64
    }
}

fn show(data: &[u8]) -> String {
    if data.is_empty() {
        return "no-op".into();
    }
    let s = String::from_utf8_lossy(&data[..data.len().min(24)]).into_owned();
    if data.len() > 24 {
        format!("{s:?}… ({} bytes)", data.len())
    } else {
        format!("{s:?}")
    }
}
