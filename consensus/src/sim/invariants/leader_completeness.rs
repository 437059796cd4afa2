//! **Leader Completeness** (Raft §5.4, §5.4.1 and Figure 3): if a log entry is
//! committed in a given term, then that entry will be present in the logs of the
//! leaders for all higher-numbered terms.
//!
//! The property is about the term in which an entry was *committed*, not the entry's
//! own term: an entry of term 1 that only got committed in term 5 need not be in the
//! log of a (stale) leader of term 2. So the checker records, for every committed
//! index, an upper bound of the term it was committed in: the term of the first node
//! seen with a commit index covering it (the committing leader itself, or a node that
//! learned the commit from a leader of a term no higher than its own). Then:
//!
//! * when a node is first seen as leader of term T, its durable log must hold every
//!   entry whose commit-term bound is below T (an entry covered by its snapshot counts
//!   as held, and the snapshot's own index and term must agree with what was
//!   committed);
//! * when an index becomes committed, every current leader of a term above its bound
//!   must hold it.
//!
//! Also checked: a committed entry never changes — the entry a node applies at a
//! committed index has the term of the entry that was committed there.

use std::collections::BTreeMap;

use raftkv_storage::NodeId;

use super::Violation;
use crate::sim::durable_log::DurableLog;

const NAME: &str = "leader completeness";
const SECTION: &str = "Raft §5.4.1, Figure 3";

/// One committed index: the entry's term (0 while unknown) and the bound on the term
/// it was committed in.
#[derive(Debug, Clone, Copy)]
struct Committed {
    entry_term: u64,
    commit_term: u64,
}

/// Committed indices and the leaders already checked.
#[derive(Debug, Default)]
pub struct LeaderCompleteness {
    checked: BTreeMap<NodeId, (u64, u64)>,
    committed: Vec<Committed>,
}

impl LeaderCompleteness {
    /// The highest index seen committed.
    pub fn known_commit(&self) -> u64 {
        self.committed.len() as u64
    }

    /// Called after every event with a node's term, commit index and durable log;
    /// records newly committed indices and checks the current `leaders`
    /// ((id, term, log)) against them.
    pub fn on_commit<'a>(
        &mut self,
        node: NodeId,
        term: u64,
        commit: u64,
        log: &DurableLog,
        leaders: impl IntoIterator<Item = (NodeId, u64, &'a DurableLog)> + Clone,
    ) -> Result<(), Violation> {
        let known = self.known_commit();
        if commit <= known {
            return Ok(());
        }
        for index in known + 1..=commit {
            let entry_term = log.term_at(index).unwrap_or(0);
            self.committed.push(Committed {
                entry_term,
                commit_term: term,
            });
            if entry_term == 0 {
                continue;
            }
            for (leader, lterm, llog) in leaders.clone() {
                if lterm > term && index > llog.snapshot().index {
                    Self::holds(leader, lterm, index, entry_term, llog).map_err(|mut v| {
                        v.detail.push_str(&format!(
                            " (committed no later than term {term}, as seen on node {node})"
                        ));
                        v
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Called when an index is applied for the first time, with the applied entry's
    /// term: fills in an unknown entry term, and checks that the committed entry did
    /// not change.
    pub fn on_applied(&mut self, node: NodeId, index: u64, term: u64) -> Result<(), Violation> {
        let Some(c) = index
            .checked_sub(1)
            .and_then(|i| self.committed.get_mut(usize::try_from(i).ok()?))
        else {
            return Ok(());
        };
        if c.entry_term == 0 {
            c.entry_term = term;
        } else if c.entry_term != term {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} applied an entry of term {term} at index {index}, where an entry \
                     of term {} had been committed",
                    c.entry_term
                ),
            ));
        }
        Ok(())
    }

    /// Called whenever `node` (instance `incarnation`) is seen as leader of `term`;
    /// checks its log the first time.
    pub fn on_leader(
        &mut self,
        node: NodeId,
        incarnation: u64,
        term: u64,
        log: &DurableLog,
    ) -> Result<(), Violation> {
        if self.checked.get(&node) == Some(&(incarnation, term)) {
            return Ok(());
        }
        self.checked.insert(node, (incarnation, term));
        let snap = log.snapshot();
        if snap.index > 0
            && let Some(c) = self.committed.get((snap.index - 1) as usize)
            && c.entry_term != 0
            && c.entry_term != snap.term
        {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} became leader of term {term} with a snapshot at (index {}, term \
                     {}), but the entry committed there has term {}",
                    snap.index, snap.term, c.entry_term
                ),
            ));
        }
        for (k, c) in self.committed.iter().enumerate().skip(snap.index as usize) {
            if c.commit_term < term && c.entry_term != 0 {
                Self::holds(node, term, k as u64 + 1, c.entry_term, log)?;
            }
        }
        Ok(())
    }

    fn holds(
        node: NodeId,
        term: u64,
        index: u64,
        entry_term: u64,
        log: &DurableLog,
    ) -> Result<(), Violation> {
        match log.term_at(index) {
            Some(t) if t == entry_term => Ok(()),
            found => Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} is leader of term {term} but its log holds {} at index {index}, \
                     where an entry of term {entry_term} was committed in an earlier term",
                    found.map_or("nothing".to_string(), |t| format!("an entry of term {t}"))
                ),
            )),
        }
    }
}
