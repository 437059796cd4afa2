//! Commit: quorum counting in the current term only (Figure 8), the leader's own
//! durability, the persisted commit index, apply only after persist.

use super::replication::replicating_leader;
use super::*;
use crate::ready::Apply;

fn cmd(e: &Entry) -> Apply {
    Apply::Command {
        index: e.index,
        term: e.term,
        data: e.data.clone(),
    }
}

#[test]
fn figure_8_an_earlier_term_entry_on_a_quorum_is_not_committed_by_counting() {
    // Leader of term 4 with entry 2 from term 2 (uncommitted) and its no-op at 3.
    let mut c = core(1, &[1, 2, 3], 3, &[1, 2]);
    elect(&mut c, &[2, 3]);
    assert_eq!(c.status().term, 4);
    // Follower 2 holds entry 2: entries 1..2 are on a quorum, but 2 is of term 2.
    c.step(msg(2, 1, 4, append_ok(2)));
    assert_eq!(
        c.ready(),
        Ready {
            messages: vec![msg(1, 2, 4, append(2, 2, vec![noop(3, 4)], 0, 0))],
            ..Ready::default()
        }
    );
    assert_eq!(c.status().commit, 0);
    // Once the no-op of term 4 is on a quorum, everything up to it commits.
    c.step(msg(2, 1, 4, append_ok(3)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(3, Some(hs(4, Some(1), 3)), None, vec![]),
            apply: vec![cmd(&ent(1, 1)), cmd(&ent(2, 2)), cmd(&noop(3, 4))],
            ..Ready::default()
        }
    );
}

#[test]
fn the_leader_counts_its_own_log_only_once_durable() {
    let mut c = replicating_leader();
    let e3 = Entry {
        index: 3,
        term: 2,
        data: b"a".to_vec(),
    };
    c.propose(b"a".to_vec()).expect("leader");
    let rd = c.ready(); // not yet durable on the leader
    c.step(msg(2, 1, 2, append_ok(3)));
    assert_eq!(c.status().commit, 2, "one follower alone is no quorum");
    c.on_persisted(rd.persist.expect("the entry is persisted").id);
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(5, Some(hs(2, Some(1), 3)), None, vec![]),
            apply: vec![cmd(&e3)],
            ..Ready::default()
        }
    );
}

#[test]
fn a_quorum_of_followers_commits_but_the_leader_applies_only_once_durable() {
    let mut c = replicating_leader();
    c.propose(b"a".to_vec()).expect("leader");
    let rd = c.ready();
    c.step(msg(2, 1, 2, append_ok(3)));
    c.step(msg(3, 1, 2, append_ok(3)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(5, Some(hs(2, Some(1), 3)), None, vec![]),
            ..Ready::default()
        },
        "committed, but not applied before the leader's own write is durable"
    );
    c.on_persisted(rd.persist.expect("persisted").id);
    c.on_persisted(5);
    assert_eq!(c.ready().apply.len(), 1);
}

#[test]
fn a_follower_persists_its_commit_and_applies_only_durable_entries() {
    let mut c = core(2, &[1, 2, 3], 2, &[1]);
    c.step(msg(1, 2, 2, append(1, 1, vec![ent(2, 2), ent(3, 2)], 3, 0)));
    assert_eq!(
        c.ready(),
        Ready {
            persist: persist(1, Some(hs(2, None, 3)), None, vec![ent(2, 2), ent(3, 2)]),
            persisted_messages: vec![msg(2, 1, 2, append_ok(3))],
            apply: vec![cmd(&ent(1, 1))],
            ..Ready::default()
        },
        "entry 1 was durable already; 2 and 3 are not yet"
    );
    c.on_persisted(1);
    assert_eq!(
        c.ready(),
        Ready {
            apply: vec![cmd(&ent(2, 2)), cmd(&ent(3, 2))],
            ..Ready::default()
        }
    );
}

#[test]
fn a_follower_commits_no_further_than_the_entries_it_verified() {
    let mut c = core(2, &[1, 2, 3], 2, &[1, 1, 1, 1]);
    // The leader has committed 9, but this message only proves entries through 2.
    c.step(msg(1, 2, 2, heartbeat(2, 1, 9)));
    assert_eq!(c.status().commit, 2);
    // A stale message with a lower leader commit never lowers it.
    c.step(msg(1, 2, 2, heartbeat(1, 1, 0)));
    assert_eq!(c.status().commit, 2);
    assert_eq!(
        c.ready().persist,
        persist(1, Some(hs(2, None, 2)), None, vec![])
    );
}

#[test]
fn a_restarted_node_reapplies_through_its_persisted_commit() {
    let mut c = core_with(config(2, &[1, 2, 3]), hs(2, None, 2), log_of(&[1, 1, 2]));
    assert!(c.has_ready());
    assert_eq!(
        c.ready(),
        Ready {
            apply: vec![cmd(&ent(1, 1)), cmd(&ent(2, 1))],
            ..Ready::default()
        }
    );
    assert_eq!(c.status().applied, 2);
    assert!(!c.has_ready());
}
