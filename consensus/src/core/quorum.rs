//! Majority-quorum math: how many voters make a quorum, the highest index a quorum
//! holds, and the outcome of a vote. Pure functions, checked against naive versions by
//! a property test (`core::tests::quorum_prop`).

/// The smallest majority of `voters` voters.
pub(crate) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index that at least a majority of `match_indices` (one per voter) have
/// reached. 0 for an empty slice.
pub(crate) fn committed_index(match_indices: &[u64]) -> u64 {
    if match_indices.is_empty() {
        return 0;
    }
    let mut sorted = match_indices.to_vec();
    // Descending: the majority-th largest is held by a majority.
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted[majority(sorted.len()) - 1]
}

/// The outcome of a (pre-)vote so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused: the election cannot be won any more.
    Lost,
    /// Neither yet.
    Pending,
}

/// The outcome of a vote among `voters` voters with `granted` grants and `rejected`
/// refusals so far.
pub(crate) fn vote_result(voters: usize, granted: usize, rejected: usize) -> VoteResult {
    let q = majority(voters);
    if granted >= q {
        VoteResult::Won
    } else if rejected >= q {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majorities() {
        assert_eq!(
            (1..=7).map(majority).collect::<Vec<_>>(),
            vec![1, 2, 2, 3, 3, 4, 4]
        );
    }

    #[test]
    fn committed_index_examples() {
        assert_eq!(committed_index(&[]), 0);
        assert_eq!(committed_index(&[5]), 5);
        assert_eq!(committed_index(&[5, 3]), 3);
        assert_eq!(committed_index(&[5, 3, 1]), 3);
        assert_eq!(committed_index(&[1, 5, 3, 9]), 3);
        assert_eq!(committed_index(&[9, 9, 1, 1, 2]), 2);
    }

    #[test]
    fn vote_result_examples() {
        assert_eq!(vote_result(3, 2, 0), VoteResult::Won);
        assert_eq!(vote_result(3, 1, 1), VoteResult::Pending);
        assert_eq!(vote_result(3, 1, 2), VoteResult::Lost);
        assert_eq!(vote_result(4, 2, 2), VoteResult::Pending);
        assert_eq!(vote_result(1, 1, 0), VoteResult::Won);
    }
}
