//! Snapshots: compaction, sending to a lagging follower (once, retried), installing
//! one, and ignoring stale ones.

use super::*;
use crate::core::Role;
use crate::ready::{Apply, SnapshotSend};

fn snapshot_answer(meta: SnapshotMeta, accepted: bool) -> MessageBody {
    MessageBody::InstallSnapshotResponse { meta, accepted }
}

/// Leader 1 of 3 in term 2 with log 1..=5 committed and applied, compacted through 5
/// (snapshot (5, 2)). Follower 2 matched 5 (Replicate); follower 3 never answered
/// (Probe at 2, its no-op probe outstanding).
fn leader_with_lagging_follower() -> RaftCore {
    let mut c = core(1, &[1, 2, 3], 1, &[1]);
    elect(&mut c, &[2, 3]);
    c.step(msg(2, 1, 2, append_ok(2)));
    drain(&mut c);
    for d in [b"a", b"b", b"c"] {
        c.propose(d.to_vec()).expect("leader");
    }
    drain(&mut c);
    c.step(msg(2, 1, 2, append_ok(5)));
    drain(&mut c);
    assert_eq!((c.status().commit, c.status().applied), (5, 5));
    c.snapshot_taken(snap(5, 2));
    c
}

#[test]
fn snapshot_taken_compacts_the_log() {
    let c = leader_with_lagging_follower();
    let s = c.status();
    assert_eq!((s.snapshot_index, s.last_index, s.log_bytes), (5, 5, 0));
    assert_eq!((c.term_at(5), c.term_at(4)), (Some(2), None));
}

#[test]
#[should_panic(
    expected = "raft invariant violated on node 2 at term 2 (last index 2, commit 0, applied 0, persisted 2): a snapshot at 2 covers entries not yet applied"
)]
fn a_snapshot_beyond_the_applied_index_is_a_broken_invariant() {
    let mut c = core(2, &[1, 2, 3], 2, &[1, 2]);
    c.snapshot_taken(snap(2, 2));
}

#[test]
fn a_follower_behind_the_snapshot_gets_one_snapshot_send_then_retries() {
    let mut c = leader_with_lagging_follower();
    c.tick();
    c.tick();
    let send = SnapshotSend {
        to: 3,
        term: 2,
        meta: snap(5, 2),
    };
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![
                msg(1, 2, 2, heartbeat(5, 2, 5)),
                msg(1, 3, 2, heartbeat(0, 0, 5))
            ],
            snapshot_sends: vec![send],
            ..Ready::default()
        },
        "follower 2 gets a heartbeat; follower 3 a snapshot and a heartbeat at index 0"
    );
    // Heartbeats go on, the snapshot is not offered again before the retry period.
    for _ in 0..19 {
        c.tick();
        c.step(msg(2, 1, 2, append_ok(5)));
        c.step(msg(3, 1, 2, append_ok(0)));
        assert!(drain(&mut c).snapshot_sends.is_empty());
    }
    c.tick();
    assert_eq!(c.ready().snapshot_sends, vec![send]);
}

#[test]
fn a_failed_snapshot_send_is_offered_again_at_the_next_heartbeat() {
    let mut c = leader_with_lagging_follower();
    c.tick();
    c.tick();
    assert_eq!(drain(&mut c).snapshot_sends.len(), 1);
    c.snapshot_send_failed(3);
    c.tick();
    assert!(drain(&mut c).snapshot_sends.is_empty());
    c.tick();
    assert_eq!(
        c.ready().snapshot_sends,
        vec![SnapshotSend {
            to: 3,
            term: 2,
            meta: snap(5, 2)
        }]
    );
}

#[test]
fn a_snapshot_answer_moves_the_follower_to_replicate() {
    let mut c = leader_with_lagging_follower();
    c.tick();
    c.tick();
    drain(&mut c);
    c.step(msg(3, 1, 2, snapshot_answer(snap(5, 2), true)));
    assert!(!c.has_ready(), "nothing newer to send yet");
    c.propose(b"d".to_vec()).expect("leader");
    let e6 = Entry {
        index: 6,
        term: 2,
        data: b"d".to_vec(),
    };
    let ae = append(5, 2, vec![e6], 5, 0);
    assert_eq!(
        c.ready().messages,
        vec![msg(1, 2, 2, ae.clone()), msg(1, 3, 2, ae)]
    );
}

#[test]
fn a_follower_installs_a_snapshot_above_its_commit_index() {
    let mut c = core_with(config(2, &[1, 2, 3]), hs(1, None, 1), log_of(&[1, 1]));
    assert!(c.snapshot_offer(1, 2, snap(5, 2)));
    assert_eq!((c.status().term, c.status().leader), (2, Some(1)));
    c.step(msg(
        1,
        2,
        2,
        MessageBody::InstallSnapshot { meta: snap(5, 2) },
    ));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(2, None, 5)), None, vec![]),
            persisted_messages: vec![msg(2, 1, 2, snapshot_answer(snap(5, 2), true))],
            apply: vec![Apply::Snapshot { meta: snap(5, 2) }],
            ..Ready::default()
        },
        "entry 1 (committed, not yet applied) is superseded by the snapshot"
    );
    let s = c.status();
    assert_eq!(
        (
            s.snapshot_index,
            s.last_index,
            s.commit,
            s.applied,
            s.persisted_index
        ),
        (5, 5, 5, 5, 5)
    );
}

#[test]
fn installing_a_snapshot_keeps_a_matching_suffix() {
    let mut c = core_with(
        config(2, &[1, 2, 3]),
        hs(2, None, 1),
        log_of(&[1, 1, 2, 2, 2]),
    );
    drain(&mut c);
    assert!(c.snapshot_offer(1, 2, snap(3, 2)));
    c.step(msg(
        1,
        2,
        2,
        MessageBody::InstallSnapshot { meta: snap(3, 2) },
    ));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(2, None, 3)), None, vec![]),
            persisted_messages: vec![msg(2, 1, 2, snapshot_answer(snap(3, 2), true))],
            apply: vec![Apply::Snapshot { meta: snap(3, 2) }],
            ..Ready::default()
        }
    );
    let s = c.status();
    assert_eq!((s.snapshot_index, s.last_index, s.commit), (3, 5, 3));
    assert_eq!(c.term_at(5), Some(2));
}

#[test]
fn a_snapshot_not_above_the_commit_index_is_refused_and_never_applied() {
    let mut c = core_with(config(2, &[1, 2, 3]), hs(1, None, 3), log_of(&[1, 1, 1]));
    drain(&mut c);
    assert!(!c.snapshot_offer(1, 1, snap(2, 1)));
    // Stepped anyway (the runtime had committed it): the log is compacted, the state
    // machine is left alone, and the leader hears that it was not needed.
    c.step(msg(
        1,
        2,
        1,
        MessageBody::InstallSnapshot { meta: snap(2, 1) },
    ));
    assert_eq!(
        c.ready(),
        Ready {
            persisted_messages: vec![msg(2, 1, 1, snapshot_answer(snap(2, 1), false))],
            ..Ready::default()
        }
    );
    assert_eq!((c.status().snapshot_index, c.status().applied), (2, 3));
    // Older than the core's own snapshot: nothing changes at all.
    c.step(msg(
        1,
        2,
        1,
        MessageBody::InstallSnapshot { meta: snap(1, 1) },
    ));
    assert_eq!(c.status().snapshot_index, 2);
    assert_eq!(
        c.ready().persisted_messages,
        vec![msg(2, 1, 1, snapshot_answer(snap(1, 1), false))]
    );
}

#[test]
fn snapshot_offers_from_old_terms_or_non_members_are_refused() {
    let mut c = core(2, &[1, 2, 3], 3, &[1]);
    assert!(!c.snapshot_offer(1, 2, snap(5, 2)), "older term");
    assert!(!c.snapshot_offer(9, 3, snap(5, 2)), "not a member");
    assert!(!c.snapshot_offer(2, 3, snap(5, 2)), "from itself");
    assert!(
        !c.snapshot_offer(1, 3, snap(5, 4)),
        "a snapshot term above the leader's"
    );
    assert_eq!((c.status().role, c.status().term), (Role::Follower, 3));
}
