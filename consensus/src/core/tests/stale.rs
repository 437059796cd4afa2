//! Messages that must be ignored: for another node, from a non-member, from an older
//! term; and the answer that frees a node stuck in a higher term.

use super::replication::replicating_leader;
use super::*;
use crate::core::Role;

#[test]
fn messages_for_another_node_or_from_a_non_member_are_ignored() {
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    let before = c.status();
    c.step(msg(1, 9, 5, heartbeat(1, 1, 1)));
    c.step(msg(9, 2, 5, heartbeat(1, 1, 1)));
    c.step(msg(2, 2, 5, heartbeat(1, 1, 1)));
    assert_eq!(c.status(), before);
    assert!(!c.has_ready());
}

#[test]
fn a_stale_append_is_answered_with_the_current_term_and_deposes_its_sender() {
    let mut f = core(2, &[1, 2, 3], 3, &[1]);
    f.step(msg(1, 2, 2, append(1, 1, vec![ent(2, 2)], 1, 4)));
    let answer = MessageBody::AppendEntriesResponse {
        success: false,
        match_index: 1,
        conflict_index: 0,
        conflict_term: None,
        read_ctx: 4,
    };
    assert_eq!(
        f.ready(),
        Ready {
            persisted_messages: vec![msg(2, 1, 3, answer.clone())],
            ..Ready::default()
        }
    );
    assert_eq!(f.status().last_index, 1, "nothing appended");
    // The stale leader learns the term and steps down.
    let mut leader = replicating_leader();
    leader.step(msg(2, 1, 3, answer));
    let s = leader.status();
    assert_eq!((s.role, s.term, s.leader), (Role::Follower, 3, None));
    assert_eq!(
        leader.ready().persist,
        persist(4, Some(hs(3, None, 2)), None, vec![])
    );
}

#[test]
fn stale_vote_requests_are_refused_in_the_current_term() {
    let mut c = core(2, &[1, 2, 3], 3, &[1]);
    c.step(msg(
        1,
        2,
        2,
        MessageBody::RequestVote {
            last_log_index: 9,
            last_log_term: 2,
        },
    ));
    c.step(msg(
        3,
        2,
        3,
        MessageBody::PreVote {
            last_log_index: 9,
            last_log_term: 2,
        },
    ));
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(
                2,
                3,
                3,
                MessageBody::PreVoteResponse { granted: false }
            )],
            persisted_messages: vec![msg(
                2,
                1,
                3,
                MessageBody::RequestVoteResponse { granted: false }
            )],
            ..Ready::default()
        }
    );
    assert_eq!(c.hard_state(), hs(3, None, 0));
}

#[test]
fn stale_answers_change_nothing() {
    let mut c = replicating_leader();
    let before = c.status();
    c.step(msg(2, 1, 1, append_ok(2)));
    c.step(msg(
        2,
        1,
        1,
        MessageBody::RequestVoteResponse { granted: true },
    ));
    c.step(msg(3, 1, 1, MessageBody::TimeoutNow));
    assert_eq!(c.status(), before);
    assert!(!c.has_ready());
}

#[test]
fn without_check_quorum_or_prevote_stale_appends_are_dropped() {
    let mut cfg = config(2, &[1, 2, 3]);
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    let mut f = core_with(cfg, hs(3, None, 0), log_of(&[1]));
    f.step(msg(1, 2, 2, heartbeat(1, 1, 0)));
    assert!(!f.has_ready());
}
