//! Elections: PreVote, RequestVote, vote safety, taking office, CheckQuorum.

use super::*;
use crate::core::Role;
use crate::ready::Apply;

fn pre_vote(last_log_index: u64, last_log_term: u64) -> MessageBody {
    MessageBody::PreVote {
        last_log_index,
        last_log_term,
    }
}

fn request_vote(last_log_index: u64, last_log_term: u64) -> MessageBody {
    MessageBody::RequestVote {
        last_log_index,
        last_log_term,
    }
}

fn pre_vote_answer(granted: bool) -> MessageBody {
    MessageBody::PreVoteResponse { granted }
}

fn vote_answer(granted: bool) -> MessageBody {
    MessageBody::RequestVoteResponse { granted }
}

/// Node 1 of 3 in term 2 with log [1, 2], as a pre-candidate.
fn pre_candidate() -> RaftCore {
    let mut c = core(1, &[1, 2, 3], 2, &[1, 2]);
    fire_election_timer(&mut c);
    c.ready();
    c
}

#[test]
fn election_timeout_starts_prevote_without_changing_term() {
    let mut c = core(1, &[1, 2, 3], 2, &[1, 2]);
    let timeout = c.randomized_election_timeout();
    assert!(
        (10..20).contains(&timeout),
        "timeout {timeout} outside [10, 20)"
    );
    for _ in 1..timeout {
        c.tick();
    }
    assert!(!c.has_ready());
    assert_eq!(c.status().role, Role::Follower);
    c.tick();
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(1, 2, 3, pre_vote(2, 2)), msg(1, 3, 3, pre_vote(2, 2))],
            ..Ready::default()
        }
    );
    let s = c.status();
    assert_eq!((s.role, s.term, s.leader), (Role::PreCandidate, 2, None));
    assert_eq!(c.hard_state(), hs(2, None, 0));
}

#[test]
fn prevote_majority_starts_election_with_vote_persisted_before_requests() {
    let mut c = pre_candidate();
    c.step(msg(2, 1, 3, pre_vote_answer(true)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(3, Some(1), 0)), None, vec![]),
            persisted_messages: vec![
                msg(1, 2, 3, request_vote(2, 2)),
                msg(1, 3, 3, request_vote(2, 2))
            ],
            ..Ready::default()
        }
    );
    assert_eq!((c.status().role, c.status().term), (Role::Candidate, 3));
    // The third answer comes too late to matter.
    c.on_persisted(1);
    c.step(msg(3, 1, 3, pre_vote_answer(true)));
    assert!(!c.has_ready());
}

#[test]
fn prevote_lost_returns_to_follower_in_the_same_term() {
    let mut c = pre_candidate();
    c.step(msg(2, 1, 2, pre_vote_answer(false)));
    assert_eq!(c.status().role, Role::PreCandidate);
    c.step(msg(3, 1, 2, pre_vote_answer(false)));
    let s = c.status();
    assert_eq!((s.role, s.term), (Role::Follower, 2));
    assert!(!c.has_ready(), "losing a PreVote changes no durable state");
}

#[test]
fn prevote_refusal_with_higher_term_is_adopted() {
    let mut c = pre_candidate();
    c.step(msg(2, 1, 5, pre_vote_answer(false)));
    assert_eq!((c.status().role, c.status().term), (Role::Follower, 5));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(5, None, 0)), None, vec![]),
            ..Ready::default()
        }
    );
}

#[test]
fn grants_for_another_term_are_not_counted() {
    let mut c = pre_candidate();
    // A grant must echo the proposed term 3; a refusal from an older term is stale.
    c.step(msg(2, 1, 4, pre_vote_answer(true)));
    c.step(msg(3, 1, 1, pre_vote_answer(false)));
    assert_eq!((c.status().role, c.status().term), (Role::PreCandidate, 2));
    assert!(!c.has_ready());
}

#[test]
fn without_prevote_the_timeout_starts_an_election() {
    let mut cfg = config(1, &[1, 2, 3]);
    cfg.pre_vote = false;
    let mut c = core_with(cfg, hs(2, None, 0), log_of(&[1, 2]));
    fire_election_timer(&mut c);
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(3, Some(1), 0)), None, vec![]),
            persisted_messages: vec![
                msg(1, 2, 3, request_vote(2, 2)),
                msg(1, 3, 3, request_vote(2, 2))
            ],
            ..Ready::default()
        }
    );
}

#[test]
fn candidate_that_loses_the_vote_becomes_follower() {
    let mut c = pre_candidate();
    c.step(msg(2, 1, 3, pre_vote_answer(true)));
    drain(&mut c);
    c.step(msg(2, 1, 3, vote_answer(false)));
    c.step(msg(3, 1, 3, vote_answer(false)));
    let s = c.status();
    assert_eq!((s.role, s.term), (Role::Follower, 3));
    assert_eq!(c.hard_state(), hs(3, Some(1), 0), "the vote cast stays");
}

#[test]
fn single_node_elects_itself_and_applies_the_noop_after_persisting() {
    let mut c = core(1, &[1], 0, &[]);
    fire_election_timer(&mut c);
    assert_eq!((c.status().role, c.status().term), (Role::Leader, 1));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(1, Some(1), 0)), None, vec![noop(1, 1)]),
            ..Ready::default()
        }
    );
    assert!(!c.has_ready(), "nothing commits before the log is durable");
    c.on_persisted(1);
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(2, Some(hs(1, Some(1), 1)), None, vec![]),
            apply: vec![Apply::Command {
                index: 1,
                term: 1,
                data: vec![]
            }],
            ..Ready::default()
        }
    );
}

#[test]
fn a_sole_voter_campaigns_on_its_first_tick() {
    let mut c = core(1, &[1], 0, &[]);
    c.tick();
    assert_eq!((c.status().role, c.status().term), (Role::Leader, 1));
    let mut three = core(1, &[1, 2, 3], 0, &[]);
    three.tick();
    assert_eq!(
        three.status().role,
        Role::Follower,
        "others wait for a timeout"
    );
}

#[test]
fn vote_for_an_up_to_date_candidate_is_persisted_before_the_answer() {
    let mut c = core(2, &[1, 2, 3], 1, &[1]);
    c.step(msg(1, 2, 2, request_vote(1, 1)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(2, Some(1), 0)), None, vec![]),
            persisted_messages: vec![msg(2, 1, 2, vote_answer(true))],
            ..Ready::default()
        }
    );
}

#[test]
fn vote_refused_to_a_candidate_with_a_less_up_to_date_log() {
    // Same last term, shorter log.
    let mut c = core(2, &[1, 2, 3], 1, &[1, 1]);
    c.step(msg(1, 2, 2, request_vote(1, 1)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(2, None, 0)), None, vec![]),
            persisted_messages: vec![msg(2, 1, 2, vote_answer(false))],
            ..Ready::default()
        }
    );
    // Longer log, older last term.
    let mut c = core(2, &[1, 2, 3], 2, &[1, 2]);
    c.step(msg(3, 2, 3, request_vote(9, 1)));
    assert_eq!(
        c.ready().persisted_messages,
        vec![msg(2, 3, 3, vote_answer(false))]
    );
    assert_eq!(c.hard_state(), hs(3, None, 0));
}

#[test]
fn at_most_one_vote_per_term() {
    let mut c = core(2, &[1, 2, 3], 1, &[1]);
    c.step(msg(1, 2, 2, request_vote(1, 1)));
    drain(&mut c);
    c.step(msg(3, 2, 2, request_vote(1, 1)));
    assert_eq!(
        c.ready(),
        Ready {
            persisted_messages: vec![msg(2, 3, 2, vote_answer(false))],
            ..Ready::default()
        }
    );
    // Asking again is answered the same way, with nothing new to persist.
    c.step(msg(1, 2, 2, request_vote(1, 1)));
    assert_eq!(
        c.ready(),
        Ready {
            persisted_messages: vec![msg(2, 1, 2, vote_answer(true))],
            ..Ready::default()
        }
    );
    // A restart keeps the vote: the recovered node still refuses node 3.
    let mut restarted = core_with(config(2, &[1, 2, 3]), c.hard_state(), log_of(&[1]));
    restarted.step(msg(3, 2, 2, request_vote(1, 1)));
    assert_eq!(
        restarted.ready().persisted_messages,
        vec![msg(2, 3, 2, vote_answer(false))]
    );
}

#[test]
fn a_follower_of_a_leader_does_not_vote_in_that_term() {
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    c.step(msg(1, 2, 2, heartbeat(1, 1, 0)));
    drain(&mut c);
    c.step(msg(3, 2, 2, request_vote(5, 2)));
    assert_eq!(
        c.ready().persisted_messages,
        vec![msg(2, 3, 2, vote_answer(false))]
    );
    assert_eq!(c.hard_state(), hs(2, None, 0));
}

#[test]
fn prevote_refused_within_the_leader_lease_and_granted_after_it() {
    let mut c = core(2, &[1, 2, 3], 2, &[1, 2]);
    assert!(
        c.randomized_election_timeout() > 10,
        "the test needs a timeout above the lease"
    );
    c.step(msg(1, 2, 2, heartbeat(2, 2, 0)));
    drain(&mut c);
    c.step(msg(3, 2, 3, pre_vote(2, 2)));
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(2, 3, 2, pre_vote_answer(false))],
            ..Ready::default()
        }
    );
    for _ in 0..10 {
        c.tick();
    }
    assert_eq!(c.status().role, Role::Follower);
    c.step(msg(3, 2, 3, pre_vote(2, 2)));
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(2, 3, 3, pre_vote_answer(true))],
            ..Ready::default()
        }
    );
    assert_eq!(c.hard_state(), hs(2, None, 0), "a PreVote changes nothing");
}

#[test]
fn prevote_refused_to_a_less_up_to_date_log() {
    let mut c = core(2, &[1, 2, 3], 2, &[1, 2]);
    c.step(msg(3, 2, 3, pre_vote(5, 1)));
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(2, 3, 2, pre_vote_answer(false))],
            ..Ready::default()
        }
    );
}

#[test]
fn leader_takes_office_with_a_noop_sent_at_once() {
    let mut c = pre_candidate();
    c.step(msg(2, 1, 3, pre_vote_answer(true)));
    drain(&mut c);
    c.step(msg(2, 1, 3, vote_answer(true)));
    assert_eq!(c.status().role, Role::Leader);
    let probe = append(2, 2, vec![noop(3, 3)], 0, 0);
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(2, None, None, vec![noop(3, 3)]),
            messages: vec![msg(1, 2, 3, probe.clone()), msg(1, 3, 3, probe)],
            ..Ready::default()
        }
    );
    // The leader refuses PreVotes: it is its own lease.
    c.step(msg(3, 1, 4, pre_vote(9, 3)));
    assert_eq!(
        c.ready().messages,
        vec![msg(1, 3, 3, pre_vote_answer(false))]
    );
    assert_eq!(c.status().role, Role::Leader);
}

#[test]
fn check_quorum_leader_steps_down_without_hearing_from_a_quorum() {
    let mut c = core(1, &[1, 2, 3], 1, &[1]);
    elect(&mut c, &[2, 3]);
    // The first period counts everybody as active (they just voted).
    for _ in 0..19 {
        c.tick();
    }
    assert_eq!(c.status().role, Role::Leader);
    c.tick();
    let s = c.status();
    assert_eq!((s.role, s.term, s.leader), (Role::Follower, 2, None));
    assert_eq!(
        c.propose(b"x".to_vec()),
        Err(crate::ProposeError::NotLeader {
            leader_hint: None,
            term: 2
        })
    );
}

#[test]
fn check_quorum_leader_stays_while_one_follower_answers() {
    let mut c = core(1, &[1, 2, 3], 1, &[1]);
    elect(&mut c, &[2, 3]);
    for _ in 0..50 {
        c.tick();
        c.step(msg(2, 1, 2, append_ok(0)));
        drain(&mut c);
    }
    assert_eq!(c.status().role, Role::Leader);
}
