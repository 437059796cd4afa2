//! The follower: AppendEntries (consistency check, conflict truncation, fast
//! backtracking hints, commit) and InstallSnapshot. Rationale in
//! [`crate::docs::replication`] and [`crate::docs::snapshots`].

use raftkv_storage::{Entry, NodeId, SnapshotMeta};

use super::invariant::raft_assert;
use super::raft_log::Installed;
use super::{RaftCore, Role};
use crate::message::MessageBody;
use crate::ready::Apply;

/// The fields of an AppendEntries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Append {
    pub(super) prev_log_index: u64,
    pub(super) prev_log_term: u64,
    pub(super) entries: Vec<Entry>,
    pub(super) leader_commit: u64,
    pub(super) read_ctx: u64,
}

impl Append {
    /// Why the message cannot come from a correct leader of `term`, if it cannot.
    fn malformed(&self, term: u64) -> Option<&'static str> {
        if self.prev_log_term > term {
            return Some("prev_log_term above the message's term");
        }
        let mut expected = self.prev_log_index.checked_add(1);
        let mut prev_term = self.prev_log_term;
        for e in &self.entries {
            if Some(e.index) != expected {
                return Some("entries not consecutive after prev_log_index");
            }
            if e.term < prev_term || e.term > term || e.term == 0 {
                return Some("entry terms out of order");
            }
            expected = e.index.checked_add(1);
            prev_term = e.term;
        }
        if !self.entries.is_empty() && expected.is_none_or(|next| next == u64::MAX) {
            return Some("entries reach the largest index");
        }
        None
    }
}

impl RaftCore {
    /// An AppendEntries from the leader of the current term.
    pub(super) fn handle_append_entries(&mut self, from: NodeId, mut m: Append) {
        if self.role == Role::Leader {
            tracing::error!(
                node = self.id,
                from,
                term = self.term,
                "AppendEntries from another leader of our term; ignored"
            );
            return;
        }
        if let Some(why) = m.malformed(self.term) {
            tracing::debug!(
                node = self.id,
                from,
                why,
                "ignoring a malformed AppendEntries"
            );
            return;
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;

        let commit = self.log.commit();
        if m.prev_log_index < commit {
            // Entries through our commit index are committed, so they are in the
            // leader's log too: skip them and check the rest from the commit index.
            let skip = usize::try_from(commit - m.prev_log_index).unwrap_or(usize::MAX);
            if skip >= m.entries.len() {
                self.reply_append(from, true, commit, 0, None, m.read_ctx);
                return;
            }
            let boundary_term = m.entries[skip - 1].term;
            if self.log.term(commit) != Some(boundary_term) {
                tracing::error!(
                    node = self.id,
                    from,
                    commit,
                    "AppendEntries disagrees with a committed entry; ignored"
                );
                return;
            }
            m.entries.drain(..skip);
            m.prev_log_index = commit;
            m.prev_log_term = boundary_term;
        }

        if self.log.term(m.prev_log_index) != Some(m.prev_log_term) {
            let (conflict_index, conflict_term) = self.log.conflict_hint(m.prev_log_index);
            tracing::debug!(
                node = self.id,
                from,
                prev = m.prev_log_index,
                conflict_index,
                ?conflict_term,
                "AppendEntries rejected"
            );
            self.reply_append(
                from,
                false,
                m.prev_log_index,
                conflict_index,
                conflict_term,
                m.read_ctx,
            );
            return;
        }

        let last_new = m.prev_log_index + m.entries.len() as u64;
        // Skip the entries we already hold; truncate only at a real conflict, so a
        // stale or duplicated AppendEntries never removes entries.
        let first_new = m
            .entries
            .iter()
            .position(|e| self.log.term(e.index) != Some(e.term));
        if let Some(pos) = first_new {
            let at = m.entries[pos].index;
            if at <= self.log.last_index() {
                raft_assert!(
                    self,
                    at > commit,
                    "conflict at {at}, at or below commit {commit}"
                );
                raft_assert!(
                    self,
                    self.role != Role::Leader,
                    "a leader never truncates its own log"
                );
                tracing::info!(
                    node = self.id,
                    from,
                    at,
                    "truncating a conflicting log suffix"
                );
                raft_assert!(self, ok: self.log.truncate_from(at));
                self.retract_acks_from(at);
            }
            let new = m.entries.split_off(pos);
            raft_assert!(self, ok: self.log.append(new));
        }
        let to = m.leader_commit.min(last_new);
        if to > self.log.commit() {
            raft_assert!(self, ok: self.log.commit_to(to));
        }
        self.reply_append(from, true, last_new, 0, None, m.read_ctx);
    }

    /// Entries from `index` on were removed before the batch that would have made
    /// them durable: acknowledgements of them that have not left yet (answers to an
    /// older leader, from the same batch of inputs) are withdrawn, as if lost. Otherwise
    /// they would vouch for entries that never reach the disk.
    fn retract_acks_from(&mut self, index: u64) {
        self.out.persisted_messages.retain(|m| {
            !matches!(
                m.body,
                MessageBody::AppendEntriesResponse {
                    success: true,
                    match_index,
                    ..
                } if match_index >= index
            )
        });
    }

    fn reply_append(
        &mut self,
        to: NodeId,
        success: bool,
        match_index: u64,
        conflict_index: u64,
        conflict_term: Option<u64>,
        read_ctx: u64,
    ) {
        self.send(
            to,
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                conflict_index,
                conflict_term,
                read_ctx,
            },
        );
    }

    /// The runtime committed a snapshot from the leader of the current (or a newer)
    /// term into the persister.
    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, meta: SnapshotMeta) {
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        self.install_snapshot(from, meta);
    }

    /// Mirrors a snapshot the persister committed (Raft §7) and answers `from`. A
    /// snapshot above the applied index is handed to the state machine.
    pub(super) fn install_snapshot(&mut self, from: NodeId, meta: SnapshotMeta) {
        if self.role == Role::Leader {
            // `snapshot_offer` refuses every snapshot while leader, so the runtime
            // never commits one; a leader's log is never replaced.
            tracing::error!(
                node = self.id,
                from,
                index = meta.index,
                "a leader was handed a snapshot; ignored"
            );
            return;
        }
        let commit_before = self.log.commit();
        let keeps_suffix = self.log.term(meta.index) == Some(meta.term);
        let outcome = self.log.install_snapshot(meta);
        if outcome != Installed::Stale && !keeps_suffix {
            self.retract_acks_from(meta.index + 1);
        }
        tracing::info!(
            node = self.id,
            from,
            index = meta.index,
            term = meta.term,
            ?outcome,
            "snapshot installed"
        );
        if outcome == Installed::Restored {
            // A snapshot not yet handed out is superseded by this one.
            self.out.apply.clear();
            self.out.apply.push(Apply::Snapshot { meta });
        }
        self.send(
            from,
            MessageBody::InstallSnapshotResponse {
                meta,
                accepted: outcome == Installed::Restored && meta.index > commit_before,
            },
        );
    }
}
