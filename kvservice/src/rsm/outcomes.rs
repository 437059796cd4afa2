//! [`ProposalStats`]: how the client commands this member proposed ended.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::command::Reply;
use crate::error::KvError;

/// Client commands submitted through this member's [`Rsm`](super::Rsm), by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProposalStats {
    /// Commands that applied and were answered with their reply (an error reply of
    /// the state machine, such as a failed compare-and-set, still committed).
    pub committed: u64,
    /// Commands that ended in an error: not proposed (too large, shut down, not
    /// leader), their slot taken by another command, leadership lost, or the commit
    /// timeout passed. Some of these may still commit later.
    pub failed: u64,
}

/// The counters behind [`ProposalStats`], bumped once per command when its caller gets
/// the answer.
#[derive(Debug, Default)]
pub(crate) struct ProposalOutcomes {
    committed: AtomicU64,
    failed: AtomicU64,
}

impl ProposalOutcomes {
    pub(crate) fn record(&self, answers: &[Result<Reply, KvError>]) {
        let ok = answers.iter().filter(|a| a.is_ok()).count() as u64;
        let failed = answers.len() as u64 - ok;
        self.committed.fetch_add(ok, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> ProposalStats {
        ProposalStats {
            committed: self.committed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
