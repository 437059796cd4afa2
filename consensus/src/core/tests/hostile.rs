//! No input a peer can send makes a core panic or break its invariants (which
//! `ready()` checks after every step): arbitrary terms, indices up to `u64::MAX`,
//! gapped or unordered entries, bogus answers, for followers, candidates and leaders.

use proptest::prelude::*;

use super::replication::replicating_leader;
use super::*;

fn any_index() -> impl Strategy<Value = u64> {
    prop_oneof![0..8u64, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()]
}

fn any_term() -> impl Strategy<Value = u64> {
    prop_oneof![0..6u64, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()]
}

fn entries() -> impl Strategy<Value = (u64, Vec<Entry>)> {
    (
        any_index(),
        prop::collection::vec((0..6u64, any::<bool>()), 0..4),
    )
        .prop_map(|(prev, spec)| {
            let mut index = prev;
            let entries = spec
                .into_iter()
                .map(|(term, contiguous)| {
                    index = if contiguous {
                        index.wrapping_add(1)
                    } else {
                        index.wrapping_add(3)
                    };
                    Entry {
                        index,
                        term,
                        data: vec![1],
                    }
                })
                .collect();
            (prev, entries)
        })
}

fn body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (any_index(), any_term()).prop_map(|(last_log_index, last_log_term)| {
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            }
        }),
        any::<bool>().prop_map(|granted| MessageBody::PreVoteResponse { granted }),
        (any_index(), any_term()).prop_map(|(last_log_index, last_log_term)| {
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
            }
        }),
        any::<bool>().prop_map(|granted| MessageBody::RequestVoteResponse { granted }),
        (entries(), any_term(), any_index(), 0..4u64).prop_map(
            |((prev, entries), prev_term, commit, read_ctx)| {
                MessageBody::AppendEntries {
                    prev_log_index: prev,
                    prev_log_term: prev_term,
                    entries,
                    leader_commit: commit,
                    read_ctx,
                }
            }
        ),
        (
            any::<bool>(),
            any_index(),
            any_index(),
            prop::option::of(any_term()),
            any_index()
        )
            .prop_map(
                |(success, match_index, conflict_index, conflict_term, read_ctx)| {
                    MessageBody::AppendEntriesResponse {
                        success,
                        match_index,
                        conflict_index,
                        conflict_term,
                        read_ctx,
                    }
                }
            ),
        (any_index(), any_term(), any::<bool>()).prop_map(|(index, term, accepted)| {
            MessageBody::InstallSnapshotResponse {
                meta: snap(index, term),
                accepted,
            }
        }),
        Just(MessageBody::TimeoutNow),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Step {
        from: NodeId,
        to: NodeId,
        term: u64,
        body: MessageBody,
    },
    Tick,
    Propose,
    Read,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        8 => (0..5u64, prop_oneof![4 => Just(1u64), 1 => 0..5u64], any_term(), body())
            .prop_map(|(from, to, term, body)| Input::Step { from, to, term, body }),
        2 => Just(Input::Tick),
        1 => Just(Input::Propose),
        1 => Just(Input::Read),
    ]
}

fn run(mut c: RaftCore, inputs: Vec<Input>) {
    let me = c.status().id;
    for input in inputs {
        match input {
            Input::Step {
                from,
                to,
                term,
                body,
            } => {
                let to = if to == 1 { me } else { to };
                c.step(msg(from, to, term, body));
            }
            Input::Tick => c.tick(),
            Input::Propose => {
                let _ = c.propose(vec![7]);
            }
            Input::Read => {
                let _ = c.read_index(1);
            }
        }
        drain(&mut c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_follower_survives_any_messages(inputs in prop::collection::vec(input(), 1..80)) {
        run(core(2, &[1, 2, 3], 2, &[1, 1, 2]), inputs);
    }

    #[test]
    fn a_leader_survives_any_messages(inputs in prop::collection::vec(input(), 1..80)) {
        run(replicating_leader(), inputs);
    }

    #[test]
    fn a_pre_candidate_survives_any_messages(inputs in prop::collection::vec(input(), 1..80)) {
        let mut c = core(3, &[1, 2, 3], 2, &[1, 2]);
        fire_election_timer(&mut c);
        drain(&mut c);
        run(c, inputs);
    }
}

#[test]
fn terms_and_indices_at_the_top_of_the_range_never_overflow() {
    let top = u64::MAX - 1;
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    c.step(msg(1, 2, u64::MAX, heartbeat(1, 1, 0)));
    assert_eq!(c.status().term, 2, "term u64::MAX is never adopted");
    c.step(msg(1, 2, top, heartbeat(1, 1, 0)));
    assert_eq!((c.status().term, c.status().leader), (top, Some(1)));
    drain(&mut c);
    c.step(msg(1, 2, top, MessageBody::TimeoutNow));
    fire_election_timer(&mut c);
    fire_election_timer(&mut c);
    assert_eq!(
        (c.status().role, c.status().term),
        (crate::core::Role::Follower, top)
    );
    // Entries whose successor index would not fit are refused before touching the log.
    c.step(msg(
        1,
        2,
        top,
        append(
            u64::MAX - 2,
            1,
            vec![Entry {
                index: top,
                term: 1,
                data: vec![1],
            }],
            0,
            0,
        ),
    ));
    c.step(msg(1, 2, top, heartbeat(u64::MAX, 1, u64::MAX)));
    let rd = drain(&mut c);
    assert_eq!(c.status().last_index, 1);
    assert_eq!(
        rd.persisted_messages,
        vec![msg(2, 1, top, append_reject(u64::MAX, 2, None))]
    );
}
