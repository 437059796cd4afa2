//! Regression scenario: **a leader must not commit an entry of an earlier term by
//! counting its replicas** (Raft §5.4.2, Figure 8).
//!
//! Failure mode: a leader of term c finds an entry X of an older term a in its log,
//! replicates it to a majority and marks it committed, although no entry of its own
//! term has reached a majority. It then crashes; a node holding a *different* entry at
//! X's index with a term b > a wins the next election (the nodes holding X consider
//! its log more up to date) and overwrites X everywhere. A server that already applied
//! X now disagrees with everyone else at that index.
//!
//! The script forces exactly that interleaving with crashes, disconnections and a
//! message filter (`max_append_entries = 1`, so that X and the leader's own no-op
//! travel in separate AppendEntries and the filter can let X through alone). A correct
//! core never commits X at step 5 (checked directly), and the state machine safety
//! invariant checks the rest.

use std::sync::Arc;

use raftkv_storage::NodeId;

use crate::sim::{MS, SECOND, SimConfig, Simulation};
use crate::{Config, MessageBody, Role};

fn wait_leader(sim: &mut Simulation, among: &[NodeId], what: &str) -> NodeId {
    let deadline = sim.now() + 20 * SECOND;
    while sim.now() < deadline {
        sim.run_for(5 * MS);
        let leader = sim
            .ids()
            .filter_map(|id| sim.status(id).map(|s| (s.term, id, s.role)))
            .filter(|(_, _, r)| matches!(r, Role::Leader))
            .map(|(t, id, _)| (t, id))
            .max();
        if let Some((_, id)) = leader
            && among.contains(&id)
        {
            return id;
        }
    }
    sim.fatal(format_args!("no leader among {among:?} ({what})"))
}

fn last_index(sim: &Simulation, id: NodeId) -> u64 {
    sim.status(id).map_or(0, |s| s.last_index)
}

fn scenario(seed: u64) {
    let mut config = SimConfig::lab(seed, 5, true, false);
    config.raft = Some(Arc::new(|c: &mut Config| c.max_append_entries = 1));
    let mut sim = Simulation::new(config);

    // 1. A leader L1 in term a, everyone in sync.
    sim.one(b"warm-up".to_vec(), 5, true);
    let l1 = sim.check_one_leader();
    let [s2, s3, s4, s5] = [1, 2, 3, 4].map(|k| sim.peer(l1, k));

    // 2. L1 appends X at index i and replicates it to S2 only.
    sim.set_drop_filter(Some(Box::new(move |m| {
        m.from == l1
            && m.to != s2
            && matches!(&m.body, MessageBody::AppendEntries { entries, .. } if !entries.is_empty())
    })));
    let Some((i, term_a)) = sim.start(l1, b"X".to_vec()) else {
        sim.fatal("L1 refused X");
    };
    sim.run_for(100 * MS);
    assert!(last_index(&sim, s2) >= i, "S2 did not get X");
    for s in [s3, s4, s5] {
        assert!(last_index(&sim, s) < i, "node {s} got X too early");
    }

    // 3. L1 crashes; S2 is cut off; one of S3..S5 becomes leader L2 (term b) and
    //    appends its no-op at index i, which goes nowhere.
    sim.crash(l1);
    sim.disconnect(s2);
    sim.set_drop_filter(Some(Box::new(
        |m| matches!(&m.body, MessageBody::AppendEntries { entries, .. } if !entries.is_empty()),
    )));
    let l2 = wait_leader(&mut sim, &[s3, s4, s5], "step 3");
    sim.run_for(20 * MS);
    assert_eq!(last_index(&sim, l2), i, "L2's no-op is not at index {i}");
    sim.crash(l2);

    // 4. L1 restarts and S2 reconnects; one of them (both hold X) becomes leader L3
    //    in term c.
    sim.set_drop_filter(Some(Box::new(move |m| {
        matches!(&m.body, MessageBody::AppendEntries { entries, .. }
            if entries.iter().any(|e| e.term > term_a))
    })));
    sim.start_server(l1);
    sim.connect(s2);
    let l3 = wait_leader(&mut sim, &[l1, s2], "step 4");

    // 5. L3 replicates X (term a) to a majority, but none of its own term-c entries.
    //    Counting replicas, X would look committed; it must not be.
    sim.run_for(500 * MS);
    let followers: Vec<NodeId> = [s3, s4, s5].into_iter().filter(|&s| s != l2).collect();
    for &s in &followers {
        assert!(last_index(&sim, s) >= i, "node {s} did not get X from L3");
    }
    let commit = sim.status(l3).map_or(0, |s| s.commit);
    assert!(
        commit < i,
        "seed={seed}: leader {l3} committed index {i} (an entry of term {term_a}) by counting \
         replicas, before any entry of its own term reached a majority (Raft §5.4.2)"
    );

    // 6. L3 and the other X holder crash; L2 restarts and wins with its term-b entry
    //    at index i, overwriting X on the followers.
    sim.crash(l1);
    sim.crash(s2);
    sim.set_drop_filter(None);
    sim.start_server(l2);
    wait_leader(&mut sim, &[l2], "step 6");
    sim.run_for(SECOND);

    // 7. Everyone back; the cluster converges and index i holds L2's no-op.
    for id in sim.ids() {
        if !sim.is_alive(id) {
            sim.start_server(id);
        }
    }
    sim.connect_all();
    sim.one(b"after".to_vec(), 5, true);
    let at_i = sim.committed_value(i).expect("index i committed");
    assert!(at_i.is_empty(), "X survived at index {i}, seed={seed}");
}

#[test]
fn old_term_entry_is_not_committed_by_counting_replicas() {
    for seed in 1..=5 {
        scenario(seed);
    }
}
