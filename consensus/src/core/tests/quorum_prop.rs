//! The quorum math against naive definitions.

use proptest::prelude::*;

use crate::core::quorum::{VoteResult, committed_index, majority, vote_result};

/// The highest index `i` such that more than half of the voters have reached `i`,
/// by trying every candidate index.
fn naive_committed_index(matched: &[u64]) -> u64 {
    let mut candidates: Vec<u64> = matched.to_vec();
    candidates.push(0);
    candidates
        .into_iter()
        .filter(|&i| 2 * matched.iter().filter(|&&m| m >= i).count() > matched.len())
        .max()
        .unwrap_or(0)
}

proptest! {
    #[test]
    fn committed_index_matches_the_naive_definition(
        matched in prop::collection::vec(prop_oneof![0..20u64, any::<u64>()], 1..10)
    ) {
        prop_assert_eq!(committed_index(&matched), naive_committed_index(&matched));
    }

    #[test]
    fn vote_result_matches_counting(voters in 1..10usize, answers in prop::collection::vec(any::<bool>(), 0..10)) {
        let answers = &answers[..answers.len().min(voters)];
        let granted = answers.iter().filter(|&&g| g).count();
        let rejected = answers.len() - granted;
        let expected = if 2 * granted > voters {
            VoteResult::Won
        } else if 2 * rejected > voters {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        };
        prop_assert_eq!(vote_result(voters, granted, rejected), expected);
        prop_assert!(2 * majority(voters) > voters && 2 * (majority(voters) - 1) <= voters);
    }
}
