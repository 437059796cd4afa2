//! Elections: PreVote, RequestVote, vote counting and the campaigns themselves.
//! Rationale in [`crate::docs::election`].

use std::collections::BTreeMap;

use raftkv_storage::NodeId;

use super::invariant::raft_assert;
use super::quorum::{self, VoteResult};
use super::{RaftCore, Role};
use crate::message::MessageBody;

/// The answers received in one (pre-)vote round; the first answer of each voter
/// counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VoteTracker {
    votes: BTreeMap<NodeId, bool>,
}

impl VoteTracker {
    pub(crate) fn reset(&mut self) {
        self.votes.clear();
    }

    pub(crate) fn record(&mut self, voter: NodeId, granted: bool) {
        self.votes.entry(voter).or_insert(granted);
    }

    pub(crate) fn result(&self, voters: usize) -> VoteResult {
        let granted = self.votes.values().filter(|&&g| g).count();
        quorum::vote_result(voters, granted, self.votes.len() - granted)
    }
}

impl RaftCore {
    /// The election timer expired.
    pub(super) fn campaign_on_timeout(&mut self) {
        if self.term >= u64::MAX - 1 {
            // Only a corrupt or hostile input could bring the term here.
            tracing::error!(
                node = self.id,
                term = self.term,
                "term exhausted; not campaigning"
            );
            self.reset_election_timer();
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    /// Whether this node heard from a leader within the minimum election timeout (or is
    /// the leader): then it refuses PreVotes, so a node that was cut off cannot
    /// disturb a working leader when it comes back.
    fn in_lease(&self) -> bool {
        self.role == Role::Leader
            || (self.leader.is_some() && self.election_elapsed < self.config.election_ticks)
    }

    fn become_pre_candidate(&mut self) {
        raft_assert!(
            self,
            self.role != Role::Leader,
            "a leader cannot start a PreVote"
        );
        tracing::info!(
            node = self.id,
            term = self.term,
            "election timeout: starting PreVote"
        );
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.reset();
        self.reset_election_timer();
        self.votes.record(self.id, true);
        if self.votes.result(self.voters.len()) == VoteResult::Won {
            self.become_candidate();
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.peers() {
            self.send_in_term(
                peer,
                self.term + 1,
                MessageBody::PreVote {
                    last_log_index,
                    last_log_term,
                },
            );
        }
    }

    /// Starts an election in the next term, voting for itself (the vote and term are
    /// persisted before the RequestVotes leave).
    pub(super) fn become_candidate(&mut self) {
        raft_assert!(
            self,
            self.role != Role::Leader,
            "a leader cannot become a candidate"
        );
        self.term += 1;
        self.voted_for = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.reset();
        self.reset_election_timer();
        tracing::info!(node = self.id, term = self.term, "starting an election");
        self.votes.record(self.id, true);
        if self.votes.result(self.voters.len()) == VoteResult::Won {
            self.become_leader();
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.peers() {
            self.send(
                peer,
                MessageBody::RequestVote {
                    last_log_index,
                    last_log_term,
                },
            );
        }
    }

    /// A PreVote for `term` (the pre-candidate's current term + 1). Granted iff the
    /// term is above ours, this node is not in a leader's lease and the candidate's log
    /// is at least as up to date. Changes no state.
    pub(super) fn handle_pre_vote(
        &mut self,
        from: NodeId,
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
    ) {
        let granted = term > self.term
            && !self.in_lease()
            && self.log.is_up_to_date(last_log_index, last_log_term);
        tracing::debug!(node = self.id, from, term, granted, "PreVote");
        let answer_term = if granted { term } else { self.term };
        self.send_in_term(from, answer_term, MessageBody::PreVoteResponse { granted });
    }

    /// A RequestVote in the current term (a higher term was adopted by `step`).
    /// Granted iff this node has not voted for another candidate in this term, follows
    /// no leader in it, and the candidate's log is at least as up to date.
    pub(super) fn handle_request_vote(
        &mut self,
        from: NodeId,
        last_log_index: u64,
        last_log_term: u64,
    ) {
        let can_vote =
            self.voted_for == Some(from) || (self.voted_for.is_none() && self.leader.is_none());
        let granted = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        if granted {
            raft_assert!(
                self,
                self.voted_for.is_none() || self.voted_for == Some(from),
                "second vote in one term: already voted for {:?}, now {from}",
                self.voted_for
            );
            self.voted_for = Some(from);
            self.election_elapsed = 0;
        }
        tracing::debug!(
            node = self.id,
            from,
            term = self.term,
            granted,
            "RequestVote"
        );
        self.send(from, MessageBody::RequestVoteResponse { granted });
    }

    /// An answer to our PreVote: grants echo the proposed term, refusals carry the
    /// voter's (equal) term.
    pub(super) fn handle_pre_vote_response(&mut self, from: NodeId, term: u64, granted: bool) {
        if self.role != Role::PreCandidate {
            return;
        }
        let expected = if granted { self.term + 1 } else { self.term };
        if term != expected {
            return;
        }
        self.votes.record(from, granted);
        match self.votes.result(self.voters.len()) {
            VoteResult::Won => self.become_candidate(),
            VoteResult::Lost => {
                tracing::info!(node = self.id, term = self.term, "PreVote lost");
                self.become_follower(self.term, None);
            }
            VoteResult::Pending => {}
        }
    }

    /// An answer to our RequestVote, in the current term.
    pub(super) fn handle_request_vote_response(&mut self, from: NodeId, granted: bool) {
        if self.role != Role::Candidate {
            return;
        }
        self.votes.record(from, granted);
        match self.votes.result(self.voters.len()) {
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => {
                tracing::info!(node = self.id, term = self.term, "election lost");
                self.become_follower(self.term, None);
            }
            VoteResult::Pending => {}
        }
    }

    /// The leader asked this node to take over: campaign now, skipping PreVote.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role != Role::Follower || self.leader != Some(from) || self.term >= u64::MAX - 1 {
            tracing::debug!(
                node = self.id,
                from,
                "ignoring TimeoutNow from a node that is not our leader"
            );
            return;
        }
        tracing::info!(
            node = self.id,
            from,
            term = self.term,
            "TimeoutNow: campaigning for a leadership transfer"
        );
        self.become_candidate();
    }
}
