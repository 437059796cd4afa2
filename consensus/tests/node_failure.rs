//! Failures on real threads (the lab's 3B tests, adapted): a follower leaves and
//! rejoins, a leader fails, a minority cannot commit, and a deposed leader's
//! uncommitted entries are overwritten.

mod node_common;

use std::time::Duration;

use node_common::{Cluster, ClusterOptions, lock, wait_until};

#[test]
fn follower_failure_and_rejoin() {
    let mut c = Cluster::new(ClusterOptions::new(3, 21));
    c.one(b"101", 3, false);

    // One follower leaves: the other two still commit.
    let leader = c.leader();
    let f1 = c.other_than(&[leader]);
    c.disconnect(f1);
    c.one(b"102", 2, false);
    c.one(b"103", 2, false);

    // The follower rejoins and catches up.
    c.reconnect(f1);
    let i = c.one(b"104", 3, true);
    assert!(wait_until(Duration::from_secs(20), || {
        let a = c.applied(f1);
        let a = lock(&a);
        a.last >= i
            && a.commands.values().any(|v| v == b"102")
            && a.commands.values().any(|v| v == b"103")
    }));

    // Both followers leave: the leader accepts but cannot commit.
    let leader = c.leader();
    let others: Vec<_> = c.ids().into_iter().filter(|&id| id != leader).collect();
    for &id in &others {
        c.disconnect(id);
    }
    let (index, _) = c
        .handle(leader)
        .propose(b"105".to_vec())
        .expect("still leader for now");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        c.n_committed(index).0,
        0,
        "an entry committed without a quorum"
    );
    for &id in &others {
        c.reconnect(id);
    }
    c.one(b"106", 3, true);
    c.shutdown();
}

#[test]
fn leader_failure() {
    let mut c = Cluster::new(ClusterOptions::new(3, 22));
    c.one(b"101", 3, false);
    let leader1 = c.leader();
    c.disconnect(leader1);
    // The remaining two elect a leader and commit.
    c.one(b"102", 2, true);
    c.one(b"103", 2, true);
    // The new leader fails too: nothing commits on the lone node.
    let leader2 = c.leader();
    c.disconnect(leader2);
    let mut started = Vec::new();
    for id in c.ids() {
        if let Ok((i, _)) = c.handle(id).propose(b"104".to_vec()) {
            started.push(i);
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    for i in started {
        let (n, cmd) = c.n_committed(i);
        assert!(
            n == 0 || cmd.as_deref() != Some(b"104".as_slice()),
            "104 committed without a quorum"
        );
    }
    c.reconnect(leader1);
    c.reconnect(leader2);
    c.one(b"105", 3, true);
    c.shutdown();
}

#[test]
fn deposed_leader_entries_are_overwritten() {
    let mut c = Cluster::new(ClusterOptions::new(3, 23));
    c.one(b"101", 3, true);

    // Leader 1 is cut off and takes proposals that can never commit.
    let leader1 = c.leader();
    c.disconnect(leader1);
    for cmd in [b"102", b"103", b"104"] {
        let _ = c.handle(leader1).propose(cmd.to_vec());
    }
    // The other two commit 103.
    c.one(b"103", 2, true);

    // Leader 2 is cut off; leader 1 comes back and commits 104 with the third node.
    let leader2 = c.leader();
    c.disconnect(leader2);
    c.reconnect(leader1);
    c.one(b"104", 2, true);

    // Everyone together: 105 commits on all three and nobody applied 102.
    c.reconnect(leader2);
    let last = c.one(b"105", 3, true);
    assert!(wait_until(Duration::from_secs(20), || c
        .n_committed(last)
        .0
        == 3));
    for id in c.ids() {
        let a = c.applied(id);
        let a = lock(&a);
        assert!(
            !a.commands.values().any(|v| v == b"102"),
            "node {id} applied the deposed leader's uncommitted entry"
        );
    }
    c.shutdown();
}

#[test]
fn lagging_followers_are_backed_up_quickly() {
    // The lab's Backup test, smaller: a stale leader and a follower take 50
    // uncommittable entries; the majority commits 50 others; then everyone converges.
    let mut c = Cluster::new(ClusterOptions::new(5, 24));
    c.one(b"start", 5, true);
    let leader1 = c.leader();
    let ids = c.ids();
    let others: Vec<_> = ids.iter().copied().filter(|&id| id != leader1).collect();
    // Leader 1 keeps one follower; the other three are cut off.
    for &id in &others[1..] {
        c.disconnect(id);
    }
    let batch: Vec<Vec<u8>> = (0..50).map(|i| format!("lost-{i}").into_bytes()).collect();
    let _ = c.handle(leader1).propose_batch(batch);
    std::thread::sleep(Duration::from_millis(300));
    c.disconnect(leader1);
    c.disconnect(others[0]);
    for &id in &others[1..] {
        c.reconnect(id);
    }
    for i in 0..50 {
        c.one(format!("kept-{i}").as_bytes(), 3, true);
    }
    for id in ids {
        c.reconnect(id);
    }
    let last = c.one(b"end", 5, true);
    assert!(wait_until(Duration::from_secs(20), || c
        .n_committed(last)
        .0
        == 5));
    c.shutdown();
}
