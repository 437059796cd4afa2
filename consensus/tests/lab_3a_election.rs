//! MIT 6.5840 Lab 3A (leader election), ported onto the deterministic simulator.
//!
//! Source: `src/raft1/raft_test.go` of the 2025 lab (catalogued in the team's
//! `lab-tests.md`, §2.2). Same scenarios, same thresholds; every sleep is virtual
//! time, and the lab's 120 s per-test limit is checked in virtual time. Servers are
//! numbered `1..=n` instead of `0..n`: the lab's `(leader + k) % servers` is
//! `sim.peer(leader, k)`.
//!
//! Each test runs on one fixed seed (derived from its name; set `RAFTKV_LAB_SEED` to
//! explore others). A failure message names the seed and the virtual time.
//!
//! Adaptation: none needed in 3A (no test here looks at log indices).

use raftkv_consensus::sim::harness::{RAFT_ELECTION_TIMEOUT, lab_seed};
use raftkv_consensus::sim::{SimConfig, Simulation};
use std::time::Duration;

fn make(test: &str, servers: usize, reliable: bool) -> Simulation {
    Simulation::new(SimConfig::lab(lab_seed(test), servers, reliable, false))
}

/// TestInitialElection3A: a leader appears, all agree on a term >= 1, and with no
/// failures the leader stays.
#[test]
fn initial_election_3a() {
    let mut ts = make("TestInitialElection3A", 3, true);
    let start = ts.now();

    ts.check_one_leader();

    // Sleep a bit to avoid racing with followers learning of the election, then check
    // that all peers agree on the term.
    ts.sleep(Duration::from_millis(50));
    let term1 = ts.check_terms();
    assert!(term1 >= 1, "term is {term1}, but should be at least 1");

    // Does the leader+term stay the same if there is no network failure?
    ts.sleep(2 * RAFT_ELECTION_TIMEOUT);
    let term2 = ts.check_terms();
    if term1 != term2 {
        eprintln!("warning: term changed even though there were no failures");
    }

    // There should still be a leader.
    ts.check_one_leader();
    ts.check_time_limit(start);
}

/// TestReElection3A: a new leader after the leader disconnects; the old leader rejoins
/// without disturbing it; no leader without a quorum; a leader again once a quorum is
/// back.
#[test]
fn re_election_3a() {
    let servers = 3;
    let mut ts = make("TestReElection3A", servers, true);
    let start = ts.now();

    let leader1 = ts.check_one_leader();

    // If the leader disconnects, a new one should be elected.
    ts.disconnect(leader1);
    ts.check_one_leader();

    // If the old leader rejoins, that shouldn't disturb the new leader, and the old
    // leader should switch to follower.
    ts.connect(leader1);
    let leader2 = ts.check_one_leader();

    // If there's no quorum, no new leader should be elected.
    ts.disconnect(leader2);
    ts.disconnect(ts.peer(leader2, 1));
    ts.sleep(2 * RAFT_ELECTION_TIMEOUT);

    // Check that the one connected server does not think it is the leader.
    ts.check_no_leader();

    // If a quorum arises, it should elect a leader.
    ts.connect(ts.peer(leader2, 1));
    ts.check_one_leader();

    // Re-join of last node shouldn't prevent leader from existing.
    ts.connect(leader2);
    ts.check_one_leader();
    ts.check_time_limit(start);
}

/// TestManyElections3A: 7 servers; 9 rounds of disconnecting 3 random servers (they
/// may repeat): a single leader every round and at the end.
#[test]
fn many_elections_3a() {
    let servers = 7;
    let mut ts = make("TestManyElection3A", servers, true);
    let start = ts.now();

    ts.check_one_leader();

    let iters = 10;
    for _ in 1..iters {
        // Disconnect three nodes.
        let i1 = ts.rng().below(servers as u64) + 1;
        let i2 = ts.rng().below(servers as u64) + 1;
        let i3 = ts.rng().below(servers as u64) + 1;
        ts.disconnect(i1);
        ts.disconnect(i2);
        ts.disconnect(i3);

        // Either the current leader should still be alive, or the remaining four
        // should elect a new one.
        ts.check_one_leader();

        ts.connect(i1);
        ts.connect(i2);
        ts.connect(i3);
    }
    ts.check_one_leader();
    ts.check_time_limit(start);
}
