//! Log replication: immediate sends, batching, pipelining, the follower's checks and
//! hints, the leader's fast backtracking, loss recovery.

use super::*;
use crate::core::Role;
use crate::ready::Apply;

fn data_entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec(),
    }
}

fn cmd(e: &Entry) -> Apply {
    Apply::Command {
        index: e.index,
        term: e.term,
        data: e.data.clone(),
    }
}

/// Leader 1 of 3 in term 2, log [1: t1, 2: no-op t2], both followers matched at 2
/// (Replicate, next 3), commit 2. Persist ids 1..=3 are used.
pub(super) fn replicating_leader_with(cfg: Config) -> RaftCore {
    let mut c = core_with(cfg, hs(1, None, 0), log_of(&[1]));
    elect(&mut c, &[2, 3]);
    ack_all(&mut c, &[2, 3]);
    let s = c.status();
    assert_eq!(
        (s.role, s.term, s.commit, s.last_index),
        (Role::Leader, 2, 2, 2)
    );
    c
}

pub(super) fn replicating_leader() -> RaftCore {
    replicating_leader_with(config(1, &[1, 2, 3]))
}

#[test]
fn a_proposal_is_sent_in_the_very_next_ready() {
    let mut c = replicating_leader();
    assert_eq!(c.propose(b"a".to_vec()), Ok((3, 2)));
    let e3 = data_entry(3, 2, b"a");
    let ae = append(2, 2, vec![e3.clone()], 2, 0);
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(4, None, None, vec![e3]),
            messages: vec![msg(1, 2, 2, ae.clone()), msg(1, 3, 2, ae)],
            ..Ready::default()
        }
    );
}

#[test]
fn proposals_between_two_readys_share_one_append_per_follower() {
    let mut c = replicating_leader();
    for d in [b"a", b"b", b"c"] {
        c.propose(d.to_vec()).expect("leader accepts");
    }
    let es = vec![
        data_entry(3, 2, b"a"),
        data_entry(4, 2, b"b"),
        data_entry(5, 2, b"c"),
    ];
    let ae = append(2, 2, es.clone(), 2, 0);
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(4, None, None, es),
            messages: vec![msg(1, 2, 2, ae.clone()), msg(1, 3, 2, ae)],
            ..Ready::default()
        }
    );
}

#[test]
fn appends_are_split_by_the_entry_and_byte_limits() {
    let mut cfg = config(1, &[1, 2]);
    cfg.max_append_entries = 2;
    cfg.max_append_bytes = 3;
    let mut c = core_with(cfg, hs(1, None, 0), log_of(&[1]));
    elect(&mut c, &[2]);
    c.step(msg(2, 1, 2, append_ok(2)));
    drain(&mut c);
    for d in [&b"aa"[..], b"b", b"c", b"d", b"eee"] {
        c.propose(d.to_vec()).expect("leader accepts");
    }
    let rd = c.ready();
    let sizes: Vec<Vec<u64>> = rd
        .messages
        .iter()
        .map(|m| match &m.body {
            MessageBody::AppendEntries { entries, .. } => entries.iter().map(|e| e.index).collect(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // [aa, b] reaches 3 bytes; [c, d] reaches 2 entries; eee would exceed 3 bytes.
    assert_eq!(sizes, vec![vec![3, 4], vec![5, 6], vec![7]]);
    assert_eq!(
        c.propose(b"toolarge".to_vec()),
        Err(crate::ProposeError::TooLarge { len: 8, max: 3 })
    );
    assert_eq!(c.propose(Vec::new()), Err(crate::ProposeError::Empty));
}

#[test]
fn the_pipelining_window_limits_unacknowledged_appends() {
    let mut cfg = config(1, &[1, 2, 3]);
    cfg.max_inflight_appends = 2;
    let mut c = replicating_leader_with(cfg);
    let (e3, e4, e5) = (
        data_entry(3, 2, b"a"),
        data_entry(4, 2, b"b"),
        data_entry(5, 2, b"c"),
    );
    c.propose(b"a".to_vec()).expect("leader");
    assert_eq!(drain(&mut c).messages.len(), 2);
    c.propose(b"b".to_vec()).expect("leader");
    assert_eq!(
        drain(&mut c).messages,
        vec![
            msg(1, 2, 2, append(3, 2, vec![e4.clone()], 2, 0)),
            msg(1, 3, 2, append(3, 2, vec![e4], 2, 0))
        ]
    );
    c.propose(b"c".to_vec()).expect("leader");
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(6, None, None, vec![e5.clone()]),
            ..Ready::default()
        },
        "two appends are in flight to each follower: the window is full"
    );
    c.on_persisted(6);
    // An acknowledgement of the first append opens the window (and commits it).
    c.step(msg(2, 1, 2, append_ok(3)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(7, Some(hs(2, Some(1), 3)), None, vec![]),
            messages: vec![msg(1, 2, 2, append(4, 2, vec![e5], 3, 0))],
            apply: vec![cmd(&e3)],
            ..Ready::default()
        }
    );
}

#[test]
fn a_probing_follower_gets_one_append_until_it_answers() {
    let mut c = core(1, &[1, 2, 3], 1, &[1]);
    elect(&mut c, &[2, 3]);
    let e3 = data_entry(3, 2, b"a");
    c.propose(b"a".to_vec()).expect("leader");
    assert_eq!(
        drain(&mut c),
        Ready {
            persist: persist(3, None, None, vec![e3.clone()]),
            ..Ready::default()
        },
        "both followers still have the no-op probe outstanding"
    );
    c.step(msg(2, 1, 2, append_ok(2)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(4, Some(hs(2, Some(1), 2)), None, vec![]),
            messages: vec![msg(1, 2, 2, append(2, 2, vec![e3], 2, 0))],
            apply: vec![cmd(&ent(1, 1)), cmd(&noop(2, 2))],
            ..Ready::default()
        }
    );
}

#[test]
fn a_follower_appends_and_acknowledges_once_durable() {
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    c.step(msg(1, 2, 2, append(1, 1, vec![ent(2, 2), ent(3, 2)], 0, 0)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, None, None, vec![ent(2, 2), ent(3, 2)]),
            persisted_messages: vec![msg(2, 1, 2, append_ok(3))],
            ..Ready::default()
        }
    );
    assert_eq!(c.status().leader, Some(1));
}

#[test]
fn a_follower_with_a_short_log_hints_its_length() {
    let mut c = core(2, &[1, 2, 3], 2, &[1, 1]);
    c.step(msg(1, 2, 2, append(5, 2, vec![ent(6, 2)], 0, 0)));
    assert_eq!(
        c.ready(),
        Ready {
            persisted_messages: vec![msg(2, 1, 2, append_reject(5, 3, None))],
            ..Ready::default()
        }
    );
}

#[test]
fn a_follower_with_a_conflicting_term_hints_where_the_term_starts() {
    let mut c = core(2, &[1, 2, 3], 3, &[1, 2, 2, 2]);
    c.step(msg(1, 2, 3, append(4, 3, vec![ent(5, 3)], 0, 0)));
    assert_eq!(
        c.ready(),
        Ready {
            persisted_messages: vec![msg(2, 1, 3, append_reject(4, 2, Some(2)))],
            ..Ready::default()
        }
    );
    assert_eq!(c.status().last_index, 4, "a rejection truncates nothing");
}

#[test]
fn a_follower_truncates_only_at_a_real_conflict() {
    let mut c = core(2, &[1, 2, 3], 3, &[1, 1, 2, 2]);
    c.step(msg(1, 2, 3, append(2, 1, vec![ent(3, 3), ent(4, 3)], 0, 0)));
    assert_eq!(
        drain(&mut c),
        Ready {
            persist: persist(1, None, Some(3), vec![ent(3, 3), ent(4, 3)]),
            persisted_messages: vec![msg(2, 1, 3, append_ok(4))],
            ..Ready::default()
        }
    );
    // A stale, shorter copy of the same append arrives late: nothing is removed.
    c.step(msg(1, 2, 3, append(2, 1, vec![ent(3, 3)], 0, 0)));
    assert_eq!(
        c.ready(),
        Ready {
            persisted_messages: vec![msg(2, 1, 3, append_ok(3))],
            ..Ready::default()
        }
    );
    assert_eq!((c.status().last_index, c.term_at(4)), (4, Some(3)));
}

#[test]
fn the_leader_skips_a_whole_divergent_term_per_round_trip() {
    // Leader log terms [1,1,1,4,4,5,5] + no-op (8, 6); follower 2 has [1,1,1,2,2,2].
    let mut c = core(1, &[1, 2, 3], 5, &[1, 1, 1, 4, 4, 5, 5]);
    let first = elect(&mut c, &[2, 3]);
    assert_eq!(
        first.messages[0],
        msg(1, 2, 6, append(7, 5, vec![noop(8, 6)], 0, 0))
    );
    c.step(msg(2, 1, 6, append_reject(7, 7, None)));
    assert_eq!(
        drain(&mut c).messages,
        vec![msg(
            1,
            2,
            6,
            append(6, 5, vec![ent(7, 5), noop(8, 6)], 0, 0)
        )]
    );
    // The follower's entry 6 has term 2, which starts at its index 4; the leader has
    // no term 2, so it jumps straight to 4.
    c.step(msg(2, 1, 6, append_reject(6, 4, Some(2))));
    assert_eq!(
        drain(&mut c).messages,
        vec![msg(
            1,
            2,
            6,
            append(
                3,
                1,
                vec![ent(4, 4), ent(5, 4), ent(6, 5), ent(7, 5), noop(8, 6)],
                0,
                0
            )
        )]
    );
    c.step(msg(2, 1, 6, append_ok(8)));
    assert_eq!(c.status().commit, 8);
}

#[test]
fn the_leader_jumps_past_its_own_last_entry_of_the_conflicting_term() {
    // Leader [1,1,2,2,3] + no-op (6, 4); follower 2 has [1,1,2,2,2,2,2].
    let mut c = core(1, &[1, 2, 3], 3, &[1, 1, 2, 2, 3]);
    elect(&mut c, &[2, 3]);
    c.step(msg(2, 1, 4, append_reject(5, 3, Some(2))));
    assert_eq!(
        drain(&mut c).messages,
        vec![msg(
            1,
            2,
            4,
            append(4, 2, vec![ent(5, 3), noop(6, 4)], 0, 0)
        )]
    );
    // The follower then truncates its divergent suffix from index 5.
    let mut f = core(2, &[1, 2, 3], 4, &[1, 1, 2, 2, 2, 2, 2]);
    f.step(msg(
        1,
        2,
        4,
        append(4, 2, vec![ent(5, 3), noop(6, 4)], 0, 0),
    ));
    assert_eq!(
        f.ready().persist,
        persist(1, None, Some(5), vec![ent(5, 3), noop(6, 4)])
    );
    assert_eq!(f.status().last_index, 6);
}

#[test]
fn stale_rejections_are_ignored() {
    let mut c = replicating_leader();
    // Index 1 is at or below what follower 2 is known to match.
    c.step(msg(2, 1, 2, append_reject(1, 1, None)));
    assert!(!c.has_ready());
    c.propose(b"a".to_vec()).expect("leader");
    assert_eq!(drain(&mut c).messages.len(), 2, "still replicating to both");
}

#[test]
fn a_lost_append_is_resent_once_the_heartbeat_is_refused() {
    let mut c = replicating_leader();
    let e3 = data_entry(3, 2, b"a");
    c.propose(b"a".to_vec()).expect("leader");
    drain(&mut c); // the appends are lost
    c.tick();
    assert!(!c.has_ready());
    c.tick();
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![
                msg(1, 2, 2, heartbeat(3, 2, 2)),
                msg(1, 3, 2, heartbeat(3, 2, 2))
            ],
            ..Ready::default()
        }
    );
    c.step(msg(2, 1, 2, append_reject(3, 3, None)));
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(1, 2, 2, append(2, 2, vec![e3], 2, 0))],
            ..Ready::default()
        }
    );
}

#[test]
fn an_idle_leader_sends_one_heartbeat_per_follower_per_interval() {
    let mut c = replicating_leader();
    let mut sent = 0;
    for _ in 0..20 {
        c.tick();
        // Followers answer every heartbeat.
        let rd = drain(&mut c);
        for m in &rd.messages {
            assert_eq!(m.body, heartbeat(2, 2, 2));
            c.step(msg(m.to, 1, 2, append_ok(2)));
        }
        sent += rd.messages.len();
        assert!(
            drain(&mut c).is_empty(),
            "answers to heartbeats trigger nothing"
        );
    }
    assert_eq!(sent, 20, "10 intervals of 2 ticks, 2 followers");
}

#[test]
fn an_ack_for_entries_truncated_before_they_were_persisted_is_withdrawn() {
    // Inputs are batched before `ready`: an append from the leader of term 2 is
    // acknowledged, then, in the same batch, the leader of term 3 overwrites those
    // entries. The first acknowledgement must not leave: the entries never reach disk.
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    c.step(msg(1, 2, 2, append(1, 1, vec![ent(2, 2), ent(3, 2)], 0, 0)));
    c.step(msg(3, 2, 3, append(1, 1, vec![ent(2, 3)], 0, 0)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(3, None, 0)), None, vec![ent(2, 3)]),
            persisted_messages: vec![msg(2, 3, 3, append_ok(2))],
            ..Ready::default()
        }
    );
}
