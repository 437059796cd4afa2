//! [`RaftCore`]: the IO-free Raft state machine.
//!
//! The core owns no thread, socket, clock or randomness of its own. Its inputs are
//! [`tick`](RaftCore::tick), [`step`](RaftCore::step),
//! [`propose`](RaftCore::propose), [`read_index`](RaftCore::read_index), the snapshot
//! notifications and [`on_persisted`](RaftCore::on_persisted); its only output is the
//! [`Ready`] drained by [`ready`](RaftCore::ready). The protocol rules it follows are
//! explained in [`crate::docs`].
//!
//! The code is split by concern: `election` (PreVote, votes, campaigns), `leader`
//! (replication, commit, heartbeats, snapshots to send, transfer), `follower`
//! (AppendEntries and InstallSnapshot handling), `read_index`, and the data
//! structures `raft_log`, `progress` and `quorum`; invariants are asserted with the
//! one `raft_assert!` macro of `invariant`.

mod election;
mod follower;
mod invariant;
mod leader;
mod progress;
mod quorum;
mod raft_log;
mod read_index;
mod status;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use raftkv_storage::{HardState, NodeId, RecoveredState, SnapshotMeta, WriteBatch};

use crate::config::Config;
use crate::error::{ConfigError, ProposeError};
use crate::message::{Message, MessageBody};
use crate::ready::{Apply, Persist, ReadState, Ready, SnapshotSend};

use self::election::VoteTracker;
use self::invariant::{InvariantContext, raft_assert};
use self::progress::Progress;
use self::raft_log::RaftLog;
use self::read_index::ReadIndex;
pub use self::status::{Role, Status};

/// A leadership transfer in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transfer {
    to: NodeId,
    /// Ticks since it started; aborted after an election timeout.
    elapsed: u32,
    /// TimeoutNow went out (once the target had caught up).
    timeout_now_sent: bool,
}

/// Output accumulated between two [`RaftCore::ready`] calls.
#[derive(Debug, Default)]
struct Output {
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    /// Only ever an `Apply::Snapshot` (commands are taken from the log at `ready`).
    apply: Vec<Apply>,
    read_states: Vec<ReadState>,
    snapshot_sends: Vec<SnapshotSend>,
}

impl Output {
    fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.apply.is_empty()
            && self.read_states.is_empty()
            && self.snapshot_sends.is_empty()
    }
}

/// The IO-free Raft core of one node. See the [module docs](self).
#[derive(Debug)]
pub struct RaftCore {
    id: NodeId,
    config: Config,
    /// The voters, sorted; messages are generated in this order.
    voters: Vec<NodeId>,
    role: Role,
    term: u64,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    log: RaftLog,
    rng: SmallRng,
    election_elapsed: u32,
    randomized_election_timeout: u32,
    heartbeat_elapsed: u32,
    votes: VoteTracker,
    /// Leader only: one entry per other voter.
    progress: BTreeMap<NodeId, Progress>,
    /// Leader only.
    reads: ReadIndex,
    /// Leader only.
    transfer: Option<Transfer>,
    /// Leader only: proposals were appended since the last `ready`.
    broadcast_pending: bool,
    /// The hard state as of the last persist batch handed out.
    staged_hard_state: HardState,
    next_persist_id: u64,
    out: Output,
}

impl RaftCore {
    /// A core recovered from durable state. It starts as a follower with no known
    /// leader; its first [`ready`](Self::ready) re-applies the entries from the
    /// snapshot's index + 1 through the recovered commit index. `rng_seed` is the only
    /// source of randomness (election timeouts).
    pub fn new(
        config: Config,
        recovered: &RecoveredState,
        rng_seed: u64,
    ) -> Result<RaftCore, ConfigError> {
        config.validate()?;
        let hs = recovered.hard_state;
        let log = RaftLog::recovered(recovered.snapshot, &recovered.entries, hs.commit)
            .map_err(|reason| ConfigError::Recovered { reason })?;
        if log.last_term() > hs.term {
            return Err(ConfigError::Recovered {
                reason: format!(
                    "the last entry's term {} is above the hard state's term {}",
                    log.last_term(),
                    hs.term
                ),
            });
        }
        if hs.term == u64::MAX {
            return Err(ConfigError::Recovered {
                reason: "the hard state's term is u64::MAX".into(),
            });
        }
        if hs.voted_for == Some(0) {
            return Err(ConfigError::Recovered {
                reason: "the hard state votes for node 0".into(),
            });
        }
        let mut voters = config.voters.clone();
        voters.sort_unstable();
        let mut core = RaftCore {
            id: config.id,
            voters,
            role: Role::Follower,
            term: hs.term,
            voted_for: hs.voted_for,
            leader: None,
            staged_hard_state: HardState {
                term: hs.term,
                voted_for: hs.voted_for,
                commit: log.commit(),
            },
            log,
            rng: SmallRng::seed_from_u64(rng_seed),
            election_elapsed: 0,
            randomized_election_timeout: config.election_ticks,
            heartbeat_elapsed: 0,
            votes: VoteTracker::default(),
            progress: BTreeMap::new(),
            reads: ReadIndex::default(),
            transfer: None,
            broadcast_pending: false,
            next_persist_id: 1,
            out: Output::default(),
            config,
        };
        core.reset_election_timer();
        tracing::debug!(
            node = core.id,
            term = core.term,
            last_index = core.log.last_index(),
            commit = core.log.commit(),
            "raft core recovered"
        );
        Ok(core)
    }

    /// Advances logical time by one tick: election timeouts for followers and
    /// candidates; heartbeats, CheckQuorum, snapshot retries and the transfer deadline
    /// for a leader.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                self.election_elapsed = self.election_elapsed.saturating_add(1);
                // A sole voter has no one to wait for: it campaigns on its first tick
                // (and wins at once), so a single-node store serves right after recovery.
                let sole_voter = self.voters == [self.id];
                if sole_voter || self.election_elapsed >= self.randomized_election_timeout {
                    self.campaign_on_timeout();
                }
            }
        }
    }

    /// Handles a message from a peer. Messages for another node, from a non-member or
    /// from a stale term are ignored (or answered, where the protocol says so); no
    /// input a peer can send makes the core panic.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.id {
            tracing::debug!(
                node = self.id,
                to = msg.to,
                from = msg.from,
                "ignoring a message for another node"
            );
            return;
        }
        if msg.term == u64::MAX {
            // No correct node ever reaches it (a candidate could not go beyond it).
            tracing::debug!(
                node = self.id,
                from = msg.from,
                "ignoring a message in term u64::MAX"
            );
            return;
        }
        if msg.from == self.id || !self.is_voter(msg.from) {
            tracing::debug!(
                node = self.id,
                from = msg.from,
                "ignoring a message from a non-member"
            );
            return;
        }
        if let MessageBody::InstallSnapshot { meta } = msg.body
            && (meta.term > msg.term || meta.index == 0 || meta.index == u64::MAX)
        {
            tracing::error!(
                node = self.id,
                from = msg.from,
                ?meta,
                term = msg.term,
                "ignoring an impossible snapshot"
            );
            return;
        }
        if msg.term > self.term {
            match msg.body {
                // A PreVote carries the term the pre-candidate would use, and a grant
                // echoes it: neither means that term exists yet.
                MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { granted: true } => {}
                ref body => {
                    let leader = matches!(
                        body,
                        MessageBody::AppendEntries { .. }
                            | MessageBody::InstallSnapshot { .. }
                            | MessageBody::TimeoutNow
                    )
                    .then_some(msg.from);
                    tracing::debug!(
                        node = self.id,
                        from = msg.from,
                        term = msg.term,
                        "higher term seen"
                    );
                    self.become_follower(msg.term, leader);
                }
            }
        } else if msg.term < self.term {
            self.step_stale(msg);
            return;
        }
        if let MessageBody::InstallSnapshot { meta } = msg.body
            && self.role == Role::Leader
        {
            tracing::error!(
                node = self.id,
                from = msg.from,
                index = meta.index,
                "a leader was handed a snapshot of its own term; ignored"
            );
            return;
        }
        let Message {
            from, term, body, ..
        } = msg;
        match body {
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            } => self.handle_pre_vote(from, term, last_log_index, last_log_term),
            MessageBody::PreVoteResponse { granted } => {
                self.handle_pre_vote_response(from, term, granted)
            }
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
            } => self.handle_request_vote(from, last_log_index, last_log_term),
            MessageBody::RequestVoteResponse { granted } => {
                self.handle_request_vote_response(from, granted)
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_ctx,
            } => self.handle_append_entries(
                from,
                follower::Append {
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                    read_ctx,
                },
            ),
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                conflict_index,
                conflict_term,
                read_ctx,
            } => self.handle_append_response(
                from,
                leader::AppendAnswer {
                    success,
                    match_index,
                    conflict_index,
                    conflict_term,
                    read_ctx,
                },
            ),
            MessageBody::InstallSnapshot { meta } => self.handle_install_snapshot(from, meta),
            MessageBody::InstallSnapshotResponse { meta, accepted } => {
                self.handle_snapshot_response(from, meta, accepted)
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
        }
    }

    /// A message from an older term. Requests are answered with the current term so
    /// that a stale leader or candidate learns it; everything else is dropped.
    fn step_stale(&mut self, msg: Message) {
        let from = msg.from;
        match msg.body {
            // With CheckQuorum or PreVote a node may be stuck in a higher term that
            // cannot win (its log is behind); answering the leader's appends with that
            // term makes the leader step down so that an election can start.
            MessageBody::AppendEntries {
                prev_log_index,
                read_ctx,
                ..
            } if self.config.check_quorum || self.config.pre_vote => {
                self.send(
                    from,
                    MessageBody::AppendEntriesResponse {
                        success: false,
                        match_index: prev_log_index,
                        conflict_index: 0,
                        conflict_term: None,
                        read_ctx,
                    },
                );
            }
            MessageBody::PreVote { .. } => {
                self.send(from, MessageBody::PreVoteResponse { granted: false });
            }
            MessageBody::RequestVote { .. } => {
                self.send(from, MessageBody::RequestVoteResponse { granted: false });
            }
            // The runtime has already committed this snapshot into the persister: the
            // log must follow it whatever the term.
            MessageBody::InstallSnapshot { meta } => self.install_snapshot(from, meta),
            _ => {
                tracing::debug!(
                    node = self.id,
                    from,
                    term = msg.term,
                    current = self.term,
                    "ignoring a stale message"
                );
            }
        }
    }

    /// Proposes `data` for the log. Returns its (index, term); it is sent to the
    /// followers in the very next [`Ready`]. Proposals made between two `ready` calls
    /// share one AppendEntries per follower.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64), ProposeError> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        if self.transfer.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        if data.is_empty() {
            return Err(ProposeError::Empty);
        }
        if data.len() as u64 > self.config.max_append_bytes {
            return Err(ProposeError::TooLarge {
                len: data.len(),
                max: self.config.max_append_bytes,
            });
        }
        Ok(self.append_own_entry(data))
    }

    /// Starts a linearizable read tagged `ctx`. It completes through
    /// [`Ready::read_states`] once a quorum has confirmed this node's leadership after
    /// the call (at once in a single-node cluster), and no earlier than the leader's
    /// first commit in its term. Reads still pending when leadership is lost are
    /// dropped without a result.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        if self.voters.len() == 1 && self.committed_in_current_term() {
            let index = self.log.commit();
            self.out.read_states.push(ReadState { ctx, index });
        } else {
            self.reads.queue(ctx);
        }
        Ok(())
    }

    /// The service committed a snapshot at `meta` into the persister: drop the
    /// in-memory log through `meta.index`. Snapshots not newer than the current one
    /// are ignored.
    ///
    /// # Panics
    ///
    /// If `meta.index` was not applied yet or the log holds another term there: the
    /// service can only snapshot what it applied.
    pub fn snapshot_taken(&mut self, meta: SnapshotMeta) {
        let compacted = raft_assert!(self, ok: self.log.compact(meta));
        if compacted {
            tracing::debug!(
                node = self.id,
                index = meta.index,
                term = meta.term,
                "log compacted"
            );
        }
    }

    /// Asked by the receiving runtime before it streams a snapshot in from `from`, the
    /// leader of `term`. Adopts `term` and `from` as leader (resetting the election
    /// timer) when `term` is not older than the current term, and returns true iff it
    /// did and the snapshot is above the commit index.
    pub fn snapshot_offer(&mut self, from: NodeId, term: u64, meta: SnapshotMeta) -> bool {
        if from == self.id || !self.is_voter(from) || term < self.term {
            return false;
        }
        if term > self.term {
            self.become_follower(term, Some(from));
        } else if self.role == Role::Leader {
            tracing::error!(
                node = self.id,
                from,
                term,
                "a snapshot offer from another leader of this term"
            );
            return false;
        } else if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        self.election_elapsed = 0;
        meta.index > self.log.commit() && meta.term <= term && meta.index < u64::MAX
    }

    /// Leader: streaming the snapshot to `to` failed. It is offered again after the
    /// next heartbeat.
    pub fn snapshot_send_failed(&mut self, to: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(pr) = self.progress.get_mut(&to)
            && pr.state == progress::ProgressState::Snapshot
        {
            pr.become_probe();
            pr.probe_sent = true;
        }
    }

    /// Hands leadership to `to` (Raft thesis §3.10): once `to` has every entry, it
    /// gets a TimeoutNow and campaigns at once. Proposals are refused meanwhile; the
    /// transfer is abandoned after an election timeout.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        if !self.is_voter(to) {
            return Err(ProposeError::UnknownNode { id: to });
        }
        self.start_transfer(to);
        Ok(())
    }

    /// Whether [`ready`](Self::ready) has anything to hand out.
    pub fn has_ready(&self) -> bool {
        !self.out.is_empty()
            || self.broadcast_pending
            || self.read_round_due()
            || self.hard_state() != self.staged_hard_state
            || self.log.has_unstable()
            || self.log.has_applicable()
    }

    /// Drains the pending output. See [`Ready`] for how to process it.
    pub fn ready(&mut self) -> Ready {
        self.flush();
        let hs = self.hard_state();
        let hs_changed = hs != self.staged_hard_state;
        let persist = if hs_changed || self.log.has_unstable() {
            let id = self.next_persist_id;
            self.next_persist_id += 1;
            let (truncate_from, entries) = self.log.stage(id);
            self.staged_hard_state = hs;
            Some(Persist {
                id,
                batch: WriteBatch {
                    hard_state: hs_changed.then_some(hs),
                    truncate_from,
                    entries,
                },
            })
        } else {
            None
        };
        let mut apply = std::mem::take(&mut self.out.apply);
        apply.extend(
            self.log
                .take_applicable()
                .into_iter()
                .map(|e| Apply::Command {
                    index: e.index,
                    term: e.term,
                    data: e.data,
                }),
        );
        self.check_invariants();
        Ready {
            persist,
            messages: std::mem::take(&mut self.out.messages),
            persisted_messages: std::mem::take(&mut self.out.persisted_messages),
            apply,
            read_states: std::mem::take(&mut self.out.read_states),
            snapshot_sends: std::mem::take(&mut self.out.snapshot_sends),
        }
    }

    /// The [`Persist`] with this id, and every earlier one, is durable.
    ///
    /// # Panics
    ///
    /// If no `Persist` with this id was handed out.
    pub fn on_persisted(&mut self, id: u64) {
        let moved = raft_assert!(self, ok: self.log.on_persisted(id));
        if moved && self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// A copy of the core's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.commit(),
            applied: self.log.applied(),
            persisted_index: self.log.persisted(),
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot().index,
            log_bytes: self.log.entry_bytes(),
        }
    }

    /// The current hard state (what the next persist batch would store).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit: self.log.commit(),
        }
    }

    /// The term of the entry at `index`, if the in-memory log (or its snapshot) still
    /// knows it.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }

    /// The election timeout drawn for the current follower or candidate period, in
    /// ticks: the node campaigns after this many ticks without hearing from a leader.
    #[cfg(any(test, feature = "testing"))]
    pub fn randomized_election_timeout(&self) -> u32 {
        self.randomized_election_timeout
    }

    // ---- helpers shared by the role modules ----

    fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// The other voters, in id order.
    fn peers(&self) -> Vec<NodeId> {
        self.voters
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect()
    }

    fn not_leader(&self) -> ProposeError {
        ProposeError::NotLeader {
            leader_hint: self.leader,
            term: self.term,
        }
    }

    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.commit()) == Some(self.term)
    }

    fn invariant_context(&self) -> InvariantContext {
        InvariantContext {
            id: self.id,
            term: self.term,
            last_index: self.log.last_index(),
            commit: self.log.commit(),
            applied: self.log.applied(),
            persisted: self.log.persisted(),
        }
    }

    /// Sends `body` in the current term.
    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_in_term(to, self.term, body);
    }

    /// Sends `body` with an explicit term (PreVote and its grants use the next term).
    /// Vote requests and every answer vouching for durable state wait for the
    /// persist; the rest may go at once.
    fn send_in_term(&mut self, to: NodeId, term: u64, body: MessageBody) {
        let after_persist = matches!(
            body,
            MessageBody::RequestVote { .. }
                | MessageBody::RequestVoteResponse { .. }
                | MessageBody::AppendEntriesResponse { .. }
                | MessageBody::InstallSnapshotResponse { .. }
        );
        let msg = Message {
            from: self.id,
            to,
            term,
            body,
        };
        if after_persist {
            self.out.persisted_messages.push(msg);
        } else {
            self.out.messages.push(msg);
        }
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let e = self.config.election_ticks;
        self.randomized_election_timeout = self.rng.gen_range(e..2 * e);
    }

    /// Becomes a follower in `term` (clearing the vote if the term is new), following
    /// `leader` if known.
    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        raft_assert!(
            self,
            term >= self.term,
            "term would move back from {} to {term}",
            self.term
        );
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        if self.role != Role::Follower || self.leader != leader {
            tracing::info!(node = self.id, term, ?leader, from_role = ?self.role, "became follower");
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.heartbeat_elapsed = 0;
        self.votes.reset();
        self.progress.clear();
        self.reads.clear();
        self.transfer = None;
        self.broadcast_pending = false;
        self.reset_election_timer();
    }

    /// Checks the bookkeeping invariants that hold between any two inputs.
    fn check_invariants(&self) {
        let log = &self.log;
        raft_assert!(
            self,
            log.commit() <= log.last_index(),
            "commit beyond the log"
        );
        raft_assert!(
            self,
            log.persisted() <= log.last_index(),
            "persisted beyond the log"
        );
        raft_assert!(
            self,
            log.applied() <= log.commit() && log.applied() <= log.persisted(),
            "applied beyond commit or persisted"
        );
        raft_assert!(
            self,
            log.snapshot().index <= log.applied(),
            "snapshot beyond applied"
        );
        raft_assert!(
            self,
            log.last_term() <= self.term,
            "an entry from a future term"
        );
        raft_assert!(
            self,
            self.staged_hard_state.commit <= log.commit(),
            "commit moved back after it was persisted"
        );
        if self.role == Role::Leader {
            raft_assert!(
                self,
                self.voted_for == Some(self.id),
                "leader did not vote for itself"
            );
            raft_assert!(
                self,
                log.last_term() == self.term,
                "leader's last entry is not of its term"
            );
        }
    }
}
