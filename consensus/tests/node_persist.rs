//! Persistence across restarts (the lab's 3C tests, adapted): every node is crashed
//! and restarted on what was durable at the crash, with the memory backend (crash
//! images) and with the file backend (a directory per node), and the cluster keeps its
//! committed log, replays it into the new apply streams and goes on committing.

mod node_common;

use std::time::Duration;

use node_common::{Cluster, ClusterOptions, lock, wait_until};

/// The lab's Persist1 sequence plus a full replay check.
fn persist_sequence(c: &mut Cluster) {
    let i1 = c.one(b"11", 3, true);

    // Crash and restart everybody.
    for id in c.ids() {
        c.crash(id);
    }
    for id in c.ids() {
        c.start(id);
    }
    // The restarted nodes replay the committed log into their fresh apply streams.
    assert!(
        wait_until(Duration::from_secs(20), || c.n_committed(i1).0 == 3),
        "restarted nodes did not replay index {i1}"
    );
    c.one(b"12", 3, true);

    // Restart the leader.
    let leader1 = c.leader();
    c.restart(leader1);
    c.one(b"13", 3, true);

    // Crash the leader, commit without it, bring it back.
    let leader2 = c.leader();
    c.crash(leader2);
    c.one(b"14", 2, true);
    c.start(leader2);
    let i4 = c.one(b"14b", 3, true);
    assert!(wait_until(Duration::from_secs(20), || c.n_committed(i4).0 == 3));

    // Crash a follower, commit, restart it.
    let leader3 = c.leader();
    let f = c.other_than(&[leader3]);
    c.crash(f);
    c.one(b"15", 2, true);
    c.start(f);
    let last = c.one(b"16", 3, true);
    assert!(wait_until(Duration::from_secs(20), || c
        .n_committed(last)
        .0
        == 3));

    // Every node, after all this, applied every command in order.
    let expected: Vec<&[u8]> = vec![b"11", b"12", b"13", b"14", b"14b", b"15", b"16"];
    for id in c.ids() {
        let a = c.applied(id);
        let a = lock(&a);
        let got: Vec<&[u8]> = a.commands.values().map(|v| v.as_slice()).collect();
        assert_eq!(got, expected, "node {id} applied a different log");
    }
}

#[test]
fn restart_all_nodes_memory_backend() {
    let mut c = Cluster::new(ClusterOptions::new(3, 31));
    persist_sequence(&mut c);
    c.shutdown();
}

#[test]
fn restart_all_nodes_file_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = ClusterOptions::new(3, 32);
    opts.file_dir = Some(dir.path().to_path_buf());
    let mut c = Cluster::new(opts);
    persist_sequence(&mut c);
    c.shutdown();
}

#[test]
fn crash_in_the_middle_of_a_write_burst() {
    // The lab's Figure8-style churn, smaller and on the memory backend: proposals keep
    // arriving while nodes crash and restart; at the end everyone agrees.
    let mut c = Cluster::new(ClusterOptions::new(3, 33));
    c.one(b"start", 3, true);
    for round in 0..4u64 {
        let leader = c.leader();
        let batch: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("r{round}-{i}").into_bytes())
            .collect();
        let _ = c.handle(leader).propose_batch(batch);
        c.crash(leader);
        c.one(format!("after-{round}").as_bytes(), 2, true);
        c.start(leader);
    }
    let last = c.one(b"end", 3, true);
    assert!(wait_until(Duration::from_secs(20), || c
        .n_committed(last)
        .0
        == 3));
    c.shutdown();
}
