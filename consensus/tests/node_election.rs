//! Leader election on real threads and a real clock (the lab's 3A tests, adapted):
//! a leader appears and stays, a new one replaces a disconnected leader, and a node
//! without a quorum never believes it leads.

mod node_common;

use std::time::Duration;

use node_common::{Cluster, ClusterOptions, wait_until};

#[test]
fn initial_election_three_nodes() {
    let mut c = Cluster::new(ClusterOptions::new(3, 1));
    let leader = c.leader();
    // Every node learns the leader's term (≥ 1) and follows it.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s: Vec<_> = c.ids().iter().map(|&id| c.status(id)).collect();
            s[0].term >= 1
                && s.iter()
                    .all(|x| x.term == s[0].term && x.leader == Some(leader))
        }),
        "nodes do not agree on the term and leader"
    );
    let term = c.status(leader).term;
    // With no failures the leadership is stable: over a second of heartbeats (about
    // 30 heartbeat intervals, 3 to 6 election timeouts) no new election happens.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(c.leader(), leader);
    assert_eq!(c.status(leader).term, term, "a stable cluster changed term");
    c.shutdown();
}

#[test]
fn re_election_after_leader_disconnects() {
    let mut c = Cluster::new(ClusterOptions::new(3, 2));
    let leader1 = c.leader();

    // The leader goes away: the two others elect a new one.
    c.disconnect(leader1);
    let leader2 = c.leader();
    assert_ne!(leader2, leader1);

    // The old leader rejoins: it must not disturb the new leader's term (it steps
    // down), and there is still exactly one leader.
    c.reconnect(leader1);
    let leader3 = c.leader();
    assert!(
        wait_until(Duration::from_secs(10), || c.status(leader1).term
            >= c.status(leader3).term
            && c.status(leader1).leader == Some(leader3)),
        "the old leader did not follow the new one"
    );

    // No quorum: the lone connected node must not become (or stay) leader.
    let other = c.other_than(&[leader3, leader1]);
    c.disconnect(leader3);
    c.disconnect(other);
    let lone = leader1;
    assert!(
        wait_until(Duration::from_secs(5), || c.no_leader()),
        "node {lone} leads without a quorum"
    );
    // It stays that way for a while (several election timeouts).
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        assert!(c.no_leader(), "node {lone} became leader without a quorum");
    }

    // A quorum comes back: a leader again.
    c.reconnect(other);
    c.leader();
    c.reconnect(leader3);
    c.leader();
    c.shutdown();
}

#[test]
fn many_elections_five_nodes() {
    let mut c = Cluster::new(ClusterOptions::new(5, 3));
    c.leader();
    // Deterministic "random" choices: three rounds, each cutting two nodes off.
    let rounds = [[1, 2], [3, 5], [2, 4]];
    for cut in rounds {
        for id in cut {
            c.disconnect(id);
        }
        let l = c.leader();
        assert!(!cut.contains(&l));
        for id in cut {
            c.reconnect(id);
        }
    }
    c.leader();
    c.shutdown();
}
