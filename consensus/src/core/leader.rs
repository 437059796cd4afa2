//! The leader: taking office, replication with flow control, commit, heartbeats and
//! CheckQuorum, snapshots for lagging followers, ReadIndex rounds and leadership
//! transfer. Rationale in [`crate::docs::replication`], [`crate::docs::snapshots`],
//! [`crate::docs::read_index`] and [`crate::docs::leadership_transfer`].

use raftkv_storage::{Entry, NodeId, SnapshotMeta};

use super::invariant::raft_assert;
use super::progress::{Progress, ProgressState};
use super::{RaftCore, Role, Transfer, quorum};
use crate::message::MessageBody;
use crate::ready::{ReadState, SnapshotSend};

/// The fields of an AppendEntriesResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AppendAnswer {
    pub(super) success: bool,
    pub(super) match_index: u64,
    pub(super) conflict_index: u64,
    pub(super) conflict_term: Option<u64>,
    pub(super) read_ctx: u64,
}

impl RaftCore {
    /// Won the election: take office, append the no-op of the new term and send it to
    /// every follower at once (which is also the first heartbeat).
    pub(super) fn become_leader(&mut self) {
        raft_assert!(
            self,
            self.role == Role::Candidate,
            "only a candidate becomes leader, not a {:?}",
            self.role
        );
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.votes.reset();
        self.reads.clear();
        self.transfer = None;
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers()
            .into_iter()
            .map(|p| (p, Progress::new(next)))
            .collect();
        tracing::info!(
            node = self.id,
            term = self.term,
            last_index = next - 1,
            "became leader"
        );
        self.append_own_entry(Vec::new());
        self.broadcast_pending = false;
        for peer in self.peers() {
            self.send_appends(peer);
        }
    }

    /// Appends an entry of the current term to the leader's own log; followers get it
    /// at the next `ready`.
    pub(super) fn append_own_entry(&mut self, data: Vec<u8>) -> (u64, u64) {
        let index = self.log.last_index() + 1;
        let entry = Entry {
            index,
            term: self.term,
            data,
        };
        raft_assert!(self, ok: self.log.append(std::iter::once(entry)));
        self.broadcast_pending = !self.progress.is_empty();
        (index, self.term)
    }

    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        let election_ticks = self.config.election_ticks;
        if let Some(t) = &mut self.transfer {
            t.elapsed += 1;
            if t.elapsed >= election_ticks {
                tracing::info!(node = self.id, to = t.to, "leadership transfer timed out");
                self.transfer = None;
            }
        }
        self.tick_snapshot_retries();
        if self.election_elapsed >= election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum {
                let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
                if active < quorum::majority(self.voters.len()) {
                    tracing::warn!(
                        node = self.id,
                        term = self.term,
                        active,
                        "CheckQuorum: no quorum heard from; stepping down"
                    );
                    self.become_follower(self.term, None);
                    return;
                }
            }
            for pr in self.progress.values_mut() {
                pr.recent_active = false;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Re-offers the snapshot to followers that have not answered for
    /// `snapshot_retry_ticks`.
    fn tick_snapshot_retries(&mut self) {
        let snapshot = self.log.snapshot();
        let retry = self.config.snapshot_retry_ticks;
        for (&to, pr) in &mut self.progress {
            if pr.state != ProgressState::Snapshot {
                continue;
            }
            pr.snapshot_elapsed += 1;
            if pr.snapshot_elapsed >= retry {
                pr.snapshot_elapsed = 0;
                pr.pending_snapshot = snapshot.index;
                self.out.snapshot_sends.push(SnapshotSend {
                    to,
                    term: self.term,
                    meta: snapshot,
                });
            }
        }
    }

    /// Work deferred to `ready`: one AppendEntries per follower for all the proposals
    /// since the last `ready`, and a heartbeat round for queued reads.
    pub(super) fn flush(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if std::mem::take(&mut self.broadcast_pending) {
            for peer in self.peers() {
                self.send_appends(peer);
            }
        }
        if self.read_round_due() {
            let commit = self.log.commit();
            if self.voters.len() == 1 {
                let done = self.reads.take_pending();
                self.out
                    .read_states
                    .extend(done.into_iter().map(|ctx| ReadState { ctx, index: commit }));
            } else {
                self.reads.start_round(commit);
                self.broadcast_heartbeat();
            }
        }
    }

    /// Queued reads can start a round: the leader has committed an entry of its term.
    pub(super) fn read_round_due(&self) -> bool {
        self.role == Role::Leader && self.reads.has_pending() && self.committed_in_current_term()
    }

    /// Sends `to` as many AppendEntries as flow control allows (one in Probe, up to the
    /// window in Replicate), never an empty one.
    pub(super) fn send_appends(&mut self, to: NodeId) {
        while self.maybe_send_append(to, false) {}
    }

    /// Sends one AppendEntries from `to`'s next index, or starts a snapshot if the
    /// entries it needs were compacted. Returns whether a message went out.
    fn maybe_send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused(self.config.max_inflight_appends) {
            return false;
        }
        let next = pr.next;
        let snapshot = self.log.snapshot();
        if next <= snapshot.index {
            self.start_snapshot(to, snapshot);
            return false;
        }
        let prev = next - 1;
        let prev_term = self.log.term(prev);
        raft_assert!(
            self,
            prev_term.is_some(),
            "next index {next} of follower {to} is beyond the log"
        );
        let entries = self.log.entries_from(
            next,
            self.config.max_append_entries,
            self.config.max_append_bytes,
        );
        if entries.is_empty() && !allow_empty {
            return false;
        }
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.sent(entries.last().map(|e| e.index));
        }
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_log_index: prev,
                prev_log_term: prev_term.unwrap_or_default(),
                entries,
                leader_commit: self.log.commit(),
                read_ctx: self.reads.latest_round(),
            },
        );
        true
    }

    fn start_snapshot(&mut self, to: NodeId, snapshot: SnapshotMeta) {
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.become_snapshot(snapshot.index);
            tracing::info!(
                node = self.id,
                to,
                index = snapshot.index,
                "follower needs a snapshot"
            );
            self.out.snapshot_sends.push(SnapshotSend {
                to,
                term: self.term,
                meta: snapshot,
            });
        }
    }

    fn broadcast_heartbeat(&mut self) {
        for peer in self.peers() {
            self.send_heartbeat(peer);
        }
    }

    /// An empty AppendEntries at the follower's `next - 1`: it keeps leadership
    /// (election timers, CheckQuorum, ReadIndex rounds), carries the commit index, and
    /// its rejection reveals lost appends. A follower that needs a snapshot gets one
    /// (and a heartbeat at index 0, which always matches).
    fn send_heartbeat(&mut self, to: NodeId) {
        let snapshot = self.log.snapshot();
        let Some(pr) = self.progress.get(&to) else {
            return;
        };
        let (state, next) = (pr.state, pr.next);
        if state != ProgressState::Snapshot && next <= snapshot.index {
            self.start_snapshot(to, snapshot);
        }
        let (prev_log_index, prev_log_term) = match self.progress.get(&to).map(|p| p.state) {
            Some(ProgressState::Probe | ProgressState::Replicate) => {
                match self.log.term(next - 1) {
                    Some(t) => (next - 1, t),
                    None => (0, 0),
                }
            }
            _ => (0, 0),
        };
        if let Some(pr) = self.progress.get_mut(&to)
            && pr.state == ProgressState::Probe
        {
            pr.probe_sent = true;
        }
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries: Vec::new(),
                leader_commit: self.log.commit(),
                read_ctx: self.reads.latest_round(),
            },
        );
    }

    /// An AppendEntriesResponse in the current term.
    pub(super) fn handle_append_response(&mut self, from: NodeId, a: AppendAnswer) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let known_round = self.reads.is_known_round(a.read_ctx);
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if known_round {
            pr.read_ack = pr.read_ack.max(a.read_ctx);
        }
        if a.success {
            if a.match_index > last_index {
                tracing::debug!(
                    node = self.id,
                    from,
                    match_index = a.match_index,
                    "ignoring a success beyond our log"
                );
            } else {
                let probe_answered =
                    pr.state == ProgressState::Probe && a.match_index.saturating_add(1) >= pr.next;
                let moved = pr.update_match(a.match_index);
                match pr.state {
                    ProgressState::Probe if probe_answered => pr.become_replicate(),
                    ProgressState::Snapshot if pr.matched >= pr.pending_snapshot => {
                        pr.become_replicate()
                    }
                    _ => {}
                }
                if moved {
                    self.maybe_commit();
                }
                self.maybe_send_timeout_now(from);
                self.send_appends(from);
            }
        } else {
            let rejected = a.match_index;
            let answers_current = match pr.state {
                ProgressState::Snapshot => false,
                ProgressState::Replicate => rejected > pr.matched,
                ProgressState::Probe => rejected.saturating_add(1) == pr.next,
            };
            if answers_current {
                let matched = pr.matched;
                let next =
                    self.next_from_hint(matched, rejected, a.conflict_index, a.conflict_term);
                tracing::debug!(
                    node = self.id,
                    from,
                    rejected,
                    next,
                    "append rejected; probing"
                );
                if let Some(pr) = self.progress.get_mut(&from) {
                    pr.probe_from(next);
                }
                self.maybe_send_append(from, true);
            } else {
                tracing::debug!(node = self.id, from, rejected, "ignoring a stale rejection");
            }
        }
        self.advance_reads();
    }

    /// Where to probe after a rejection of `rejected` with the follower's hint: just
    /// past our last entry of the conflicting term if we have that term, else at the
    /// hint; never at or below what is known to match, never above `rejected`.
    fn next_from_hint(
        &self,
        matched: u64,
        rejected: u64,
        conflict_index: u64,
        conflict_term: Option<u64>,
    ) -> u64 {
        let hinted = conflict_term
            .and_then(|t| self.log.last_index_of_term(t, rejected))
            .map_or(conflict_index, |i| i + 1);
        hinted
            .min(rejected)
            .min(self.log.last_index() + 1)
            .max(matched + 1)
    }

    /// An InstallSnapshotResponse in the current term: either way the follower now
    /// matches through `meta.index`.
    pub(super) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        accepted: bool,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if meta.index > last_index {
            tracing::debug!(
                node = self.id,
                from,
                index = meta.index,
                "ignoring a snapshot answer beyond our log"
            );
            return;
        }
        let moved = pr.update_match(meta.index);
        if pr.state != ProgressState::Replicate {
            pr.become_replicate();
        }
        tracing::debug!(
            node = self.id,
            from,
            index = meta.index,
            accepted,
            "snapshot answered"
        );
        if moved {
            self.maybe_commit();
        }
        self.maybe_send_timeout_now(from);
        self.send_appends(from);
    }

    /// Commits the highest index a quorum holds, if it is of the current term (Raft
    /// §5.4.2, Figure 8); the leader counts its own log only as far as it is durable.
    pub(super) fn maybe_commit(&mut self) {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.log.persisted());
        let index = quorum::committed_index(&matched);
        if index > self.log.commit() && self.log.term(index) == Some(self.term) {
            raft_assert!(self, ok: self.log.commit_to(index));
            tracing::trace!(node = self.id, commit = index, "committed");
        }
    }

    /// Completes the ReadIndex rounds a quorum has confirmed.
    fn advance_reads(&mut self) {
        let majority = quorum::majority(self.voters.len());
        let progress = &self.progress;
        let done = self
            .reads
            .complete(|id| 1 + progress.values().filter(|p| p.read_ack >= id).count() >= majority);
        self.out.read_states.extend(done);
    }

    pub(super) fn start_transfer(&mut self, to: NodeId) {
        if to == self.id {
            self.transfer = None;
            return;
        }
        if self.transfer.is_some_and(|t| t.to == to) {
            return;
        }
        tracing::info!(
            node = self.id,
            to,
            term = self.term,
            "transferring leadership"
        );
        self.transfer = Some(Transfer {
            to,
            elapsed: 0,
            timeout_now_sent: false,
        });
        if !self.maybe_send_timeout_now(to) {
            self.send_appends(to);
        }
    }

    /// Sends TimeoutNow to the transfer target once it has every entry.
    fn maybe_send_timeout_now(&mut self, to: NodeId) -> bool {
        let last_index = self.log.last_index();
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == last_index);
        match &mut self.transfer {
            Some(t) if t.to == to && !t.timeout_now_sent && caught_up => {
                t.timeout_now_sent = true;
                self.send(to, MessageBody::TimeoutNow);
                true
            }
            _ => false,
        }
    }
}
