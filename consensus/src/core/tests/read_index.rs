//! ReadIndex: wait for the term's first commit, one heartbeat round per batch of
//! reads, quorum confirmation, the single-node fast path.

use super::replication::replicating_leader;
use super::*;
use crate::ready::ReadState;

fn ack(match_index: u64, read_ctx: u64) -> MessageBody {
    MessageBody::AppendEntriesResponse {
        success: true,
        match_index,
        conflict_index: 0,
        conflict_term: None,
        read_ctx,
    }
}

#[test]
fn a_read_waits_for_the_leaders_first_commit_then_runs_one_heartbeat_round() {
    let mut c = core(1, &[1, 2, 3], 1, &[1]);
    elect(&mut c, &[2, 3]);
    c.read_index(7).expect("leader");
    assert!(!c.has_ready(), "the no-op of term 2 is not committed yet");
    // Follower 2 acknowledges the no-op: it commits, and the read round starts with
    // the new commit index. Follower 3 still probes at 1.
    c.step(msg(2, 1, 2, append_ok(2)));
    let rd = drain(&mut c);
    assert_eq!(
        rd.messages,
        vec![
            msg(1, 2, 2, append(2, 2, vec![], 2, 1)),
            msg(1, 3, 2, append(1, 1, vec![], 2, 1))
        ]
    );
    assert!(rd.read_states.is_empty());
    c.step(msg(2, 1, 2, ack(2, 1)));
    assert_eq!(
        c.ready(),
        Ready {
            read_states: vec![ReadState { ctx: 7, index: 2 }],
            ..Ready::default()
        }
    );
}

#[test]
fn reads_between_two_readys_share_one_round_and_need_a_quorum() {
    let mut c = core_with(config(1, &[1, 2, 3, 4, 5]), hs(1, None, 0), log_of(&[1]));
    elect(&mut c, &[2, 3, 4, 5]);
    ack_all(&mut c, &[2, 3, 4, 5]);
    c.read_index(10).expect("leader");
    c.read_index(11).expect("leader");
    let rd = drain(&mut c);
    assert_eq!(
        rd.messages.len(),
        4,
        "one heartbeat per follower for both reads"
    );
    assert!(
        rd.messages
            .iter()
            .all(|m| m.body == append(2, 2, vec![], 2, 1))
    );
    c.step(msg(2, 1, 2, ack(2, 1)));
    assert!(!c.has_ready(), "leader + 1 of 5 is no quorum");
    // A refusal in the current term confirms leadership too.
    c.step(msg(
        3,
        1,
        2,
        MessageBody::AppendEntriesResponse {
            success: false,
            match_index: 2,
            conflict_index: 2,
            conflict_term: None,
            read_ctx: 1,
        },
    ));
    assert_eq!(
        drain(&mut c).read_states,
        vec![
            ReadState { ctx: 10, index: 2 },
            ReadState { ctx: 11, index: 2 }
        ]
    );
}

#[test]
fn an_answer_to_a_later_round_confirms_earlier_rounds() {
    let mut c = replicating_leader();
    c.read_index(1).expect("leader");
    drain(&mut c);
    c.read_index(2).expect("leader");
    drain(&mut c);
    c.step(msg(3, 1, 2, ack(2, 2)));
    assert_eq!(
        c.ready().read_states,
        vec![
            ReadState { ctx: 1, index: 2 },
            ReadState { ctx: 2, index: 2 }
        ]
    );
}

#[test]
fn answers_from_an_older_term_or_for_unknown_rounds_confirm_nothing() {
    let mut c = replicating_leader();
    c.read_index(1).expect("leader");
    drain(&mut c);
    c.step(msg(2, 1, 1, ack(2, 1)));
    c.step(msg(3, 1, 2, ack(2, 99)));
    assert!(c.ready().read_states.is_empty());
}

#[test]
fn a_single_node_completes_reads_at_once_after_its_first_commit() {
    let mut c = core(1, &[1], 0, &[]);
    fire_election_timer(&mut c);
    c.read_index(5).expect("leader");
    let rd = c.ready();
    assert!(rd.read_states.is_empty(), "the no-op is not committed yet");
    c.on_persisted(rd.persist.expect("no-op").id);
    assert_eq!(
        drain(&mut c).read_states,
        vec![ReadState { ctx: 5, index: 1 }]
    );
    c.read_index(6).expect("leader");
    assert_eq!(
        c.ready(),
        Ready {
            read_states: vec![ReadState { ctx: 6, index: 1 }],
            ..Ready::default()
        }
    );
}

#[test]
fn a_follower_refuses_reads_and_names_its_leader() {
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    c.step(msg(1, 2, 2, heartbeat(1, 1, 0)));
    assert_eq!(
        c.read_index(1),
        Err(crate::ProposeError::NotLeader {
            leader_hint: Some(1),
            term: 2
        })
    );
}

#[test]
fn pending_reads_are_dropped_when_leadership_is_lost() {
    let mut c = replicating_leader();
    c.read_index(1).expect("leader");
    drain(&mut c);
    c.step(msg(2, 1, 3, heartbeat(2, 2, 2)));
    assert_eq!(c.status().role, crate::core::Role::Follower);
    c.step(msg(3, 1, 2, ack(2, 1)));
    assert!(c.ready().read_states.is_empty());
}
