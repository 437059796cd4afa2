//! [`ProposalLimit`]: how many client writes a member has proposed and not yet seen
//! answered, with a ceiling. A write over the ceiling is refused at once
//! ([`KvError::Busy`]) instead of queueing behind the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::KvError;

/// Default ceiling on a member's pending proposals.
pub const DEFAULT_MAX_PENDING_PROPOSALS: usize = 10_000;

/// Counts pending proposals; cheap to clone (the clones share the count).
#[derive(Debug, Clone)]
pub struct ProposalLimit {
    pending: Arc<AtomicUsize>,
    max: usize,
}

/// One admitted proposal; dropping it (answered, failed or abandoned) frees its place.
#[derive(Debug)]
#[must_use = "the proposal stays admitted only while the permit lives"]
pub struct ProposalPermit {
    pending: Arc<AtomicUsize>,
}

impl ProposalLimit {
    /// A limit of `max` pending proposals (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            pending: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
        }
    }

    /// Admits one more proposal, or refuses it with [`KvError::Busy`] when `max` are
    /// pending already.
    pub fn admit(&self) -> Result<ProposalPermit, KvError> {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| KvError::Busy { max: self.max })?;
        Ok(ProposalPermit {
            pending: Arc::clone(&self.pending),
        })
    }

    /// Proposals admitted and not yet released.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// The ceiling.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for ProposalPermit {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_ceiling_and_frees_a_place_per_dropped_permit() {
        let limit = ProposalLimit::new(2);
        let a = limit.admit().expect("first");
        let b = limit.clone().admit().expect("second, through a clone");
        assert_eq!(limit.pending(), 2);
        match limit.admit() {
            Err(KvError::Busy { max: 2 }) => {}
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(a);
        assert_eq!(limit.pending(), 1);
        let _c = limit.admit().expect("a place was freed");
        drop(b);
        assert_eq!(limit.pending(), 1);
        assert_eq!(
            ProposalLimit::new(0).max(),
            1,
            "a ceiling of 0 would refuse all"
        );
    }
}
