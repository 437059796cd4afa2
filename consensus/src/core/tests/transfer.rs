//! Leadership transfer: TimeoutNow once the target is up to date, proposals refused
//! meanwhile, abandoned after an election timeout, and the target's election.

use super::replication::replicating_leader;
use super::*;
use crate::ProposeError;
use crate::core::Role;

#[test]
fn transfer_to_an_up_to_date_follower_sends_timeout_now_at_once() {
    let mut c = replicating_leader();
    c.transfer_leadership(2).expect("leader");
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(1, 2, 2, MessageBody::TimeoutNow)],
            ..Ready::default()
        }
    );
    assert_eq!(
        c.propose(b"x".to_vec()),
        Err(ProposeError::TransferInProgress)
    );
    // Asking again does not send a second TimeoutNow.
    c.transfer_leadership(2).expect("leader");
    assert!(!c.has_ready());
}

#[test]
fn transfer_waits_for_the_target_to_catch_up() {
    let mut c = core(1, &[1, 2, 3], 1, &[1]);
    elect(&mut c, &[2, 3]);
    c.step(msg(2, 1, 2, append_ok(2)));
    drain(&mut c);
    c.transfer_leadership(3).expect("leader");
    assert!(!c.has_ready(), "follower 3 has not answered its probe yet");
    c.step(msg(3, 1, 2, append_ok(2)));
    assert_eq!(
        c.ready().messages,
        vec![msg(1, 3, 2, MessageBody::TimeoutNow)]
    );
}

#[test]
fn a_transfer_is_abandoned_after_an_election_timeout() {
    let mut c = core(1, &[1, 2, 3], 1, &[1]);
    elect(&mut c, &[2, 3]);
    c.step(msg(2, 1, 2, append_ok(2)));
    drain(&mut c);
    c.transfer_leadership(3).expect("leader");
    for _ in 0..9 {
        c.tick();
    }
    assert_eq!(
        c.propose(b"x".to_vec()),
        Err(ProposeError::TransferInProgress)
    );
    c.tick();
    assert_eq!(c.status().role, Role::Leader);
    assert_eq!(c.propose(b"x".to_vec()), Ok((3, 2)));
}

#[test]
fn transfer_to_itself_is_a_no_op_and_to_a_stranger_an_error() {
    let mut c = replicating_leader();
    assert_eq!(c.transfer_leadership(1), Ok(()));
    assert!(!c.has_ready());
    assert_eq!(
        c.transfer_leadership(9),
        Err(ProposeError::UnknownNode { id: 9 })
    );
    let mut f = core(2, &[1, 2, 3], 1, &[]);
    assert_eq!(
        f.transfer_leadership(1),
        Err(ProposeError::NotLeader {
            leader_hint: None,
            term: 1
        })
    );
}

#[test]
fn timeout_now_makes_the_target_campaign_at_once_without_prevote() {
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    c.step(msg(1, 2, 2, heartbeat(1, 1, 0)));
    drain(&mut c);
    c.step(msg(1, 2, 2, MessageBody::TimeoutNow));
    let rv = MessageBody::RequestVote {
        last_log_index: 1,
        last_log_term: 1,
    };
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(3, Some(2), 0)), None, vec![]),
            persisted_messages: vec![msg(2, 1, 3, rv.clone()), msg(2, 3, 3, rv)],
            ..Ready::default()
        }
    );
    // TimeoutNow from a node that is not the leader is ignored.
    let mut f = core(3, &[1, 2, 3], 2, &[1]);
    f.step(msg(1, 3, 2, heartbeat(1, 1, 0)));
    drain(&mut f);
    f.step(msg(2, 3, 2, MessageBody::TimeoutNow));
    assert_eq!(f.status().role, Role::Follower);
    assert!(!f.has_ready());
}

#[test]
fn voters_inside_the_leader_lease_still_vote_in_a_transfer_election() {
    let mut f = core(3, &[1, 2, 3], 2, &[1]);
    f.step(msg(1, 3, 2, heartbeat(1, 1, 0)));
    drain(&mut f);
    f.step(msg(
        2,
        3,
        3,
        MessageBody::RequestVote {
            last_log_index: 1,
            last_log_term: 1,
        },
    ));
    assert_eq!(
        f.ready().persisted_messages,
        vec![msg(
            3,
            2,
            3,
            MessageBody::RequestVoteResponse { granted: true }
        )]
    );
}
