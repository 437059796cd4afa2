//! A failed `Persister::write` is fatal for the node: it stops at once, never retries
//! the write, refuses every request with the cause, ends its apply stream, and the
//! rest of the cluster carries on.

mod node_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use node_common::{Cluster, ClusterOptions, CountingPersister, wait_until};
use raftkv_consensus::node::{FatalError, NodeError};
use raftkv_storage::fault::FaultPlan;
use raftkv_storage::{MemoryPersister, NodeId, StorageError};

fn faulty_cluster(seed: u64, faulty: NodeId) -> (Cluster, Arc<FaultPlan>, Arc<CountingPersister>) {
    let mut c = Cluster::new_stopped(ClusterOptions::new(3, seed));
    let plan = Arc::new(FaultPlan::new());
    let cp = Arc::new(CountingPersister::new(
        Arc::new(MemoryPersister::with_faults(Arc::clone(&plan))),
        Duration::ZERO,
    ));
    for id in 1..=3 {
        if id == faulty {
            c.start_with(id, Arc::clone(&cp) as _);
        } else {
            c.start(id);
        }
    }
    (c, plan, cp)
}

fn assert_stopped_by_injected_write(c: &Cluster, id: NodeId) {
    let h = c.handle(id);
    assert!(
        wait_until(Duration::from_secs(20), || !h.is_running()),
        "node {id} keeps running after a failed write"
    );
    let fatal = h.fatal_error().expect("a fatal error is recorded");
    assert!(
        matches!(&*fatal, FatalError::Persist(StorageError::Injected { .. })),
        "{fatal}"
    );
    match h.propose(b"refused".to_vec()) {
        Err(NodeError::Stopped {
            id: got,
            cause: Some(cause),
        }) => {
            assert_eq!(got, id);
            assert!(matches!(&*cause, FatalError::Persist(_)), "{cause}");
        }
        other => panic!("a stopped node accepted or misreported a proposal: {other:?}"),
    }
    assert!(matches!(
        h.read_index(Duration::from_secs(1)),
        Err(NodeError::Stopped { .. })
    ));
    assert!(matches!(
        h.transfer_leadership(1),
        Err(NodeError::Stopped { .. })
    ));
    assert!(matches!(
        h.snapshot_taken(Default::default()),
        Err(NodeError::Stopped { .. })
    ));
    // Its apply stream ended.
    let applier = c.applier(id);
    assert!(
        wait_until(Duration::from_secs(10), || applier.is_finished()),
        "the apply stream of node {id} did not end"
    );
}

#[test]
fn follower_write_failure_stops_the_follower_only() {
    let (mut c, plan, cp) = faulty_cluster(51, 3);
    // Make sure node 3 follows, then let it fail on its next write.
    let leader = c.leader();
    if leader == 3 {
        c.handle(3).transfer_leadership(1).expect("transfer");
        assert!(wait_until(Duration::from_secs(10), || c.leader() != 3));
    }
    c.one(b"before", 3, true);
    plan.fail_at("memory.write", 1);
    // Appending the next entry fails on node 3.
    c.one(b"trigger", 2, true);
    assert_stopped_by_injected_write(&c, 3);

    // It never retries the failed write, whatever the leader sends it.
    let writes = cp.writes.load(Ordering::SeqCst);
    for i in 0..5 {
        c.one(format!("after-{i}").as_bytes(), 2, true);
    }
    assert_eq!(
        cp.writes.load(Ordering::SeqCst),
        writes,
        "a stopped node wrote again"
    );
    assert!(
        c.handle(3).dropped_messages() > 0,
        "the leader kept sending to node 3"
    );

    // Shutdown of a stopped node is prompt and clean.
    c.handle(3).shutdown().expect("shutdown");
    c.shutdown();
}

#[test]
fn leader_write_failure_hands_over_to_a_new_leader() {
    let (mut c, plan, cp) = faulty_cluster(52, 2);
    c.one(b"before", 3, true);
    // Make node 2 the leader.
    let leader = c.leader();
    if leader != 2 {
        c.handle(leader).transfer_leadership(2).expect("transfer");
        assert!(wait_until(Duration::from_secs(10), || c.leader() == 2));
    }
    plan.fail_at("memory.write", 1);
    // The leader's next write (this proposal's entry) fails: it stops before it sends
    // anything that write should have made durable.
    let _ = c.handle(2).propose(b"lost-or-kept".to_vec());
    assert_stopped_by_injected_write(&c, 2);
    let writes = cp.writes.load(Ordering::SeqCst);

    // The others elect a new leader and go on.
    let l = c.leader();
    assert_ne!(l, 2);
    c.one(b"after", 2, true);
    assert_eq!(cp.writes.load(Ordering::SeqCst), writes);
    c.shutdown();
}
