//! Unit tests of the core: exact outputs for each protocol rule (in the style of
//! openraft's engine tests), an in-test network of cores, and property tests.
//!
//! Cores are built only through [`RaftCore::new`] from a [`RecoveredState`] and driven
//! only through their public inputs; tests read state through [`RaftCore::status`].

mod commit;
mod election;
mod hostile;
mod network;
mod quorum_prop;
mod read_index;
mod replication;
mod snapshot;
mod stale;
mod transfer;

use raftkv_storage::{Entry, HardState, NodeId, RecoveredState, SnapshotMeta};

use super::RaftCore;
use crate::config::Config;
use crate::message::{Message, MessageBody};
use crate::ready::{Persist, Ready};

/// The RNG seed of every test core.
pub(super) const SEED: u64 = 7;

/// Small timeouts: election 10 ticks (10–19 randomized), heartbeat 2, snapshot retry 20.
pub(super) fn config(id: NodeId, voters: &[NodeId]) -> Config {
    Config {
        election_ticks: 10,
        heartbeat_ticks: 2,
        max_append_entries: 64,
        max_append_bytes: 1 << 20,
        max_inflight_appends: 4,
        snapshot_retry_ticks: 20,
        ..Config::new(id, voters.to_vec())
    }
}

/// Entry `index` of `term` with a one-byte payload (never a no-op).
pub(super) fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8],
    }
}

/// A leader's no-op.
pub(super) fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: Vec::new(),
    }
}

/// Entries 1.. with the given terms.
pub(super) fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| ent(i as u64 + 1, t))
        .collect()
}

/// A core recovered with `hs` and `entries` (no snapshot).
pub(super) fn core_with(config: Config, hs: HardState, entries: Vec<Entry>) -> RaftCore {
    let recovered = RecoveredState {
        hard_state: hs,
        snapshot: None,
        entries,
        skipped_snapshots: Vec::new(),
    };
    RaftCore::new(config, &recovered, SEED).expect("valid test core")
}

/// Node `id` of `voters` in `term`, not voted, with a log of `terms`, nothing committed.
pub(super) fn core(id: NodeId, voters: &[NodeId], term: u64, terms: &[u64]) -> RaftCore {
    core_with(
        config(id, voters),
        HardState {
            term,
            voted_for: None,
            commit: 0,
        },
        log_of(terms),
    )
}

pub(super) fn msg(from: NodeId, to: NodeId, term: u64, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

pub(super) fn append(
    prev_log_index: u64,
    prev_log_term: u64,
    entries: Vec<Entry>,
    leader_commit: u64,
    read_ctx: u64,
) -> MessageBody {
    MessageBody::AppendEntries {
        prev_log_index,
        prev_log_term,
        entries,
        leader_commit,
        read_ctx,
    }
}

pub(super) fn heartbeat(
    prev_log_index: u64,
    prev_log_term: u64,
    leader_commit: u64,
) -> MessageBody {
    append(prev_log_index, prev_log_term, Vec::new(), leader_commit, 0)
}

pub(super) fn append_ok(match_index: u64) -> MessageBody {
    MessageBody::AppendEntriesResponse {
        success: true,
        match_index,
        conflict_index: 0,
        conflict_term: None,
        read_ctx: 0,
    }
}

pub(super) fn append_reject(
    rejected: u64,
    conflict_index: u64,
    conflict_term: Option<u64>,
) -> MessageBody {
    MessageBody::AppendEntriesResponse {
        success: false,
        match_index: rejected,
        conflict_index,
        conflict_term,
        read_ctx: 0,
    }
}

pub(super) fn hs(term: u64, voted_for: Option<NodeId>, commit: u64) -> HardState {
    HardState {
        term,
        voted_for,
        commit,
    }
}

pub(super) fn snap(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta { index, term }
}

/// A persist batch.
pub(super) fn persist(
    id: u64,
    hard_state: Option<HardState>,
    truncate_from: Option<u64>,
    entries: Vec<Entry>,
) -> Option<Persist> {
    Some(Persist {
        id,
        batch: raftkv_storage::WriteBatch {
            hard_state,
            truncate_from,
            entries,
        },
    })
}

/// Takes the Ready and reports its persist batch durable, as a runtime would.
pub(super) fn drain(core: &mut RaftCore) -> Ready {
    let rd = core.ready();
    if let Some(p) = &rd.persist {
        core.on_persisted(p.id);
    }
    rd
}

/// Ticks until the election timer fires.
pub(super) fn fire_election_timer(core: &mut RaftCore) {
    for _ in 0..core.randomized_election_timeout() {
        core.tick();
    }
}

/// Makes `core` leader of the next term: timeout, PreVote grants, RequestVote grants
/// from every peer, draining (and persisting) each Ready. Returns the Ready with the
/// leader's first AppendEntries (the no-op probes).
pub(super) fn elect(core: &mut RaftCore, peers: &[NodeId]) -> Ready {
    let id = core.status().id;
    fire_election_timer(core);
    drain(core);
    let next_term = core.status().term + 1;
    for &p in peers {
        core.step(msg(
            p,
            id,
            next_term,
            MessageBody::PreVoteResponse { granted: true },
        ));
    }
    drain(core);
    for &p in peers {
        core.step(msg(
            p,
            id,
            next_term,
            MessageBody::RequestVoteResponse { granted: true },
        ));
    }
    assert_eq!(
        core.status().role,
        super::Role::Leader,
        "elect() did not elect"
    );
    drain(core)
}

/// Every peer acknowledges the leader's whole log; drains the result.
pub(super) fn ack_all(core: &mut RaftCore, peers: &[NodeId]) -> Ready {
    let (id, term, last) = {
        let s = core.status();
        (s.id, s.term, s.last_index)
    };
    for &p in peers {
        core.step(msg(p, id, term, append_ok(last)));
    }
    drain(core)
}
