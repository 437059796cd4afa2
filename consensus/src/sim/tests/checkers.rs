//! Each invariant checker, fed a history that breaks its property, reports it (and
//! accepts the corresponding correct history). These are what make a clean
//! simulation run mean something.

use raftkv_storage::{Entry, HardState, RecoveredState, SnapshotMeta, WriteBatch};

use crate::sim::durable_log::DurableLog;
use crate::sim::invariants::{
    AppliedMonotonic, DurableReplies, ElectionSafety, LeaderCompleteness, LogMatching,
    ReadIndexSafety, StateMachineSafety, VoteOnce,
};
use crate::{Message, MessageBody, ReadState, Role, Status};

fn status(id: u64, role: Role, term: u64) -> Status {
    Status {
        id,
        role,
        term,
        leader: None,
        commit: 0,
        applied: 0,
        persisted_index: 0,
        last_index: 0,
        snapshot_index: 0,
        log_bytes: 0,
    }
}

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec(),
    }
}

/// A durable log holding `entries` (terms), written through the checkers.
fn log_of(node: u64, terms: &[u64], lm: &mut LogMatching) -> DurableLog {
    let mut log = DurableLog::default();
    let entries = terms
        .iter()
        .enumerate()
        .map(|(k, &t)| entry(k as u64 + 1, t, format!("{k}@{t}").as_bytes()));
    let batch = WriteBatch::new().append(entries);
    log.apply_batch(node, &batch, lm, &mut VoteOnce::default())
        .expect("a valid log");
    log
}

#[test]
fn election_safety_rejects_two_leaders_in_one_term_even_at_different_times() {
    let mut c = ElectionSafety::default();
    c.observe(1, &status(1, Role::Leader, 3))
        .expect("first leader");
    c.observe(2, &status(2, Role::Follower, 3))
        .expect("follower");
    c.observe(1, &status(1, Role::Leader, 3))
        .expect("same leader again");
    c.observe(2, &status(2, Role::Leader, 4))
        .expect("next term");
    let v = c
        .observe(3, &status(3, Role::Leader, 3))
        .expect_err("second leader of term 3");
    assert_eq!(v.invariant, "election safety");
}

#[test]
fn vote_once_rejects_a_changed_or_forgotten_vote_and_a_term_going_back() {
    let hs = |term, voted_for| HardState {
        term,
        voted_for,
        commit: 0,
    };
    let mut c = VoteOnce::default();
    c.on_hard_state(1, &hs(2, None)).expect("no vote");
    c.on_hard_state(1, &hs(2, Some(3))).expect("a vote");
    c.on_hard_state(1, &hs(2, Some(3)))
        .expect("the same vote again");
    assert!(c.on_hard_state(1, &hs(2, Some(2))).is_err(), "changed vote");
    assert!(c.on_hard_state(1, &hs(2, None)).is_err(), "forgotten vote");
    c.on_hard_state(1, &hs(5, Some(1))).expect("next term");
    assert!(c.on_hard_state(1, &hs(4, None)).is_err(), "term went back");
    c.on_hard_state(2, &hs(2, Some(2)))
        .expect("another node's vote");
}

#[test]
fn log_matching_rejects_same_index_and_term_with_different_content_or_prefix() {
    let mut lm = LogMatching::default();
    let _a = log_of(1, &[1, 1, 2], &mut lm);
    let _b = log_of(2, &[1, 1, 2, 2], &mut lm);
    // Same (index 3, term 2) but a different payload.
    let mut c = DurableLog::default();
    let bad = WriteBatch::new().append([
        entry(1, 1, b"0@1"),
        entry(2, 1, b"1@1"),
        entry(3, 2, b"different"),
    ]);
    let v = c
        .apply_batch(3, &bad, &mut lm, &mut VoteOnce::default())
        .expect_err("different payload at (3, 2)");
    assert_eq!(v.invariant, "log matching");
    // Same (index 2, term 1) but a different entry before it.
    let mut d = DurableLog::default();
    let bad = WriteBatch::new().append([entry(1, 1, b"other"), entry(2, 1, b"1@1")]);
    assert!(
        d.apply_batch(4, &bad, &mut lm, &mut VoteOnce::default())
            .is_err()
    );
    // Terms must not decrease along a log.
    let mut e = DurableLog::default();
    let bad = WriteBatch::new().append([entry(1, 3, b"x"), entry(2, 2, b"y")]);
    assert!(
        e.apply_batch(5, &bad, &mut lm, &mut VoteOnce::default())
            .is_err()
    );
}

#[test]
fn durable_log_follows_truncation_and_snapshot_rules() {
    let mut lm = LogMatching::default();
    let mut log = log_of(1, &[1, 1, 1, 1], &mut lm);
    let batch = WriteBatch::new()
        .truncate_from(3)
        .append([entry(3, 2, b"n3")]);
    log.apply_batch(1, &batch, &mut lm, &mut VoteOnce::default())
        .expect("truncate and append");
    assert_eq!(log.last_index(), 3);
    assert_eq!(log.term_at(3), Some(2));
    // A snapshot at an entry the log holds keeps the suffix.
    log.apply_snapshot(1, SnapshotMeta { index: 2, term: 1 }, &lm)
        .expect("snapshot");
    assert_eq!((log.snapshot().index, log.last_index()), (2, 3));
    assert_eq!(log.term_at(1), None);
    // A snapshot at an entry the log does not hold discards the log (a fresh history,
    // since (3, 2) above held another payload).
    let mut lm = LogMatching::default();
    let mut other = log_of(2, &[1, 1, 2, 2, 2], &mut lm);
    other
        .apply_snapshot(2, SnapshotMeta { index: 3, term: 2 }, &lm)
        .expect("known entry");
    assert_eq!(other.last_index(), 5);
    let mut third = log_of(3, &[1, 1, 1, 1], &mut lm);
    third
        .apply_snapshot(3, SnapshotMeta { index: 3, term: 2 }, &lm)
        .expect("snapshot over a conflicting log");
    assert_eq!((third.snapshot().index, third.last_index()), (3, 3));
    // A snapshot of an entry nobody ever wrote is impossible.
    assert!(
        third
            .apply_snapshot(3, SnapshotMeta { index: 9, term: 9 }, &lm)
            .is_err()
    );
    // The mirror compares itself with recovered storage, payloads included.
    let rec = RecoveredState {
        hard_state: HardState {
            term: 0,
            voted_for: None,
            commit: 3,
        },
        snapshot: Some(SnapshotMeta { index: 3, term: 2 }),
        entries: vec![],
        skipped_snapshots: vec![],
    };
    assert_eq!(third.diff(&rec), None);
    let mut rec2 = rec.clone();
    rec2.entries.push(entry(4, 2, b"extra"));
    assert!(third.diff(&rec2).is_some());
}

#[test]
fn state_machine_safety_rejects_a_different_command_a_gap_and_a_wrong_snapshot() {
    let mut c = StateMachineSafety::default();
    let d1 = c.on_apply(1, 1, 1, b"a", 0).expect("first");
    let d2 = c.on_apply(1, 2, 1, b"b", d1).expect("second");
    assert_eq!(c.on_apply(2, 1, 1, b"a", 0).expect("same"), d1);
    let v = c
        .on_apply(2, 2, 1, b"c", d1)
        .expect_err("different command");
    assert_eq!(v.invariant, "state machine safety");
    assert!(c.on_apply(3, 4, 1, b"d", d2).is_err(), "skipped index 3");
    c.on_snapshot(3, SnapshotMeta { index: 2, term: 1 }, d2)
        .expect("right snapshot");
    assert!(
        c.on_snapshot(3, SnapshotMeta { index: 2, term: 1 }, d1)
            .is_err()
    );
    assert!(
        c.on_snapshot(3, SnapshotMeta { index: 2, term: 2 }, d2)
            .is_err()
    );
    assert!(
        c.on_snapshot(3, SnapshotMeta { index: 7, term: 1 }, d2)
            .is_err()
    );
}

#[test]
fn leader_completeness_rejects_a_leader_missing_an_entry_committed_in_an_earlier_term() {
    let mut lm = LogMatching::default();
    let committer = log_of(1, &[1, 1, 1], &mut lm);
    let good = log_of(2, &[1, 1, 1, 3], &mut lm);
    let bad = log_of(3, &[1, 2], &mut lm);
    let mut c = LeaderCompleteness::default();
    // Indices 1 and 2 committed in term 1 (seen on node 1, a term-1 node).
    c.on_commit(1, 1, 2, &committer, []).expect("commit");
    c.on_leader(2, 1, 3, &good).expect("complete leader");
    let v = c
        .on_leader(3, 1, 3, &bad)
        .expect_err("leader of term 3 without entry 2 of term 1");
    assert_eq!(v.invariant, "leader completeness");
    // Index 3 (an entry of term 1) is first seen committed by a node in term 5: a
    // stale leader of term 2 may lack it, a current leader of term 6 may not.
    let stale = log_of(4, &[1, 1, 2], &mut lm);
    c.on_commit(1, 5, 3, &committer, [(4, 2, &stale)])
        .expect("a stale leader of an earlier term need not hold it");
    let mut c2 = LeaderCompleteness::default();
    c2.on_commit(1, 1, 2, &committer, []).expect("commit");
    assert!(
        c2.on_commit(1, 5, 3, &committer, [(4, 6, &stale)]).is_err(),
        "a leader of a later term must hold it"
    );
    // A committed entry never changes.
    c.on_applied(5, 3, 1).expect("the committed entry");
    assert!(
        c.on_applied(5, 2, 7).is_err(),
        "another entry at a committed index"
    );
}

#[test]
fn applied_monotonic_rejects_a_commit_not_durable_and_a_slow_replay() {
    let mut c = AppliedMonotonic::default();
    c.on_applied(1, 7);
    let v = c.on_restart(1, 5).expect_err("applied 7, durable commit 5");
    assert_eq!(v.invariant, "applied index never goes backwards");
    c.on_restart(1, 9).expect("durable commit 9");
    assert!(
        c.after_first_round(1, 8).is_err(),
        "replayed only through 8"
    );
    c.on_restart(1, 9).expect("again");
    c.after_first_round(1, 9).expect("replayed through 9");
}

#[test]
fn read_index_rejects_a_stale_or_unrequested_read() {
    let mut c = ReadIndexSafety::default();
    c.on_request(1, 1, 10, 5);
    c.on_request(1, 1, 11, 5);
    c.on_read_state(1, 1, &ReadState { ctx: 10, index: 5 })
        .expect("fresh");
    assert!(
        c.on_read_state(1, 1, &ReadState { ctx: 11, index: 4 })
            .is_err(),
        "stale"
    );
    assert!(
        c.on_read_state(1, 1, &ReadState { ctx: 10, index: 9 })
            .is_err(),
        "twice"
    );
    assert!(
        c.on_read_state(1, 2, &ReadState { ctx: 12, index: 9 })
            .is_err(),
        "never requested"
    );
}

#[test]
fn durable_replies_reject_a_vote_or_ack_that_is_not_durable() {
    let mut lm = LogMatching::default();
    let mut votes = VoteOnce::default();
    let mut log = DurableLog::default();
    let batch = WriteBatch::new()
        .hard_state(HardState {
            term: 4,
            voted_for: Some(2),
            commit: 0,
        })
        .append([entry(1, 4, b"a")]);
    log.apply_batch(1, &batch, &mut lm, &mut votes)
        .expect("write");
    let msg = |to, term, body| Message {
        from: 1,
        to,
        term,
        body,
    };
    let mut c = DurableReplies::default();
    let grant = MessageBody::RequestVoteResponse { granted: true };
    c.on_send(1, &msg(2, 4, grant.clone()), &log)
        .expect("durable vote");
    assert!(c.on_send(1, &msg(3, 4, grant.clone()), &log).is_err());
    assert!(c.on_send(1, &msg(2, 5, grant), &log).is_err());
    let ack = |m| MessageBody::AppendEntriesResponse {
        success: true,
        match_index: m,
        conflict_index: 0,
        conflict_term: None,
        read_ctx: 0,
    };
    c.on_send(1, &msg(2, 4, ack(1)), &log)
        .expect("durable entry");
    assert!(c.on_send(1, &msg(2, 4, ack(2)), &log).is_err());
    assert_eq!(c.checked(), 5);
}
