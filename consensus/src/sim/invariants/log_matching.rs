//! **Log Matching** (Raft §5.3, Figure 3): if two logs contain an entry with the same
//! index and term, then the logs are identical in all entries up through that index.
//!
//! Every entry a node makes durable gets a *prefix hash*: a hash chained over the
//! (index, term, payload) of every entry up to it. The first prefix hash seen for an
//! `(index, term)` pair is remembered for the whole run; any node that later holds the
//! same pair with a different prefix (a different payload, or a different history
//! before it) breaks the property. Because a pair is remembered forever, this checks
//! the property across time and across crashes, which is stronger than comparing the
//! logs alive at one instant and is what the paper's induction actually guarantees.
//!
//! Also checked here, as part of the same section's reasoning: terms never decrease
//! along a log.

use std::collections::BTreeMap;

use raftkv_storage::NodeId;

use super::Violation;
use crate::sim::rng::{chain, hash_bytes};

const NAME: &str = "log matching";
const SECTION: &str = "Raft §5.3, Figure 3";

/// The prefix hash of every `(index, term)` ever made durable.
#[derive(Debug, Default)]
pub struct LogMatching {
    prefixes: BTreeMap<(u64, u64), u64>,
}

impl LogMatching {
    /// The prefix hash of the entry `(index, term, data)` that follows a prefix whose
    /// hash is `prev`.
    pub fn entry_prefix(prev: u64, index: u64, term: u64, data: &[u8]) -> u64 {
        chain(chain(chain(prev, index), term), hash_bytes(data))
    }

    /// Checks an entry that `node` made durable at `index` with `term`, whose prefix
    /// hash is `prefix` and whose predecessor has term `prev_term` (0 for none).
    pub fn on_entry(
        &mut self,
        node: NodeId,
        index: u64,
        term: u64,
        prev_term: u64,
        prefix: u64,
    ) -> Result<(), Violation> {
        if term < prev_term {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} holds entry {index} with term {term} after an entry with term \
                     {prev_term}: terms must not decrease along a log"
                ),
            ));
        }
        let first = *self.prefixes.entry((index, term)).or_insert(prefix);
        if first != prefix {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} holds entry (index {index}, term {term}) with a different \
                     payload or prefix than another log that held the same index and term"
                ),
            ));
        }
        Ok(())
    }

    /// The prefix hash recorded for `(index, term)`; `Some(0)` for index 0.
    pub fn prefix_of(&self, index: u64, term: u64) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        self.prefixes.get(&(index, term)).copied()
    }
}
