//! Log agreement through the runtime: proposals commit on every node in order,
//! followers refuse proposals fast, concurrent proposals share writes (group commit),
//! ReadIndex and leadership transfer work end to end.

mod node_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use node_common::{Cluster, ClusterOptions, CountingPersister, lock, wait_until};
use raftkv_consensus::Role;
use raftkv_consensus::node::NodeError;

#[test]
fn basic_agreement() {
    let mut c = Cluster::new(ClusterOptions::new(3, 11));
    let mut last = 0;
    for i in 1..=3u8 {
        let (n, _) = c.n_committed(last + 1);
        assert!(n == 0 || last == 0, "something committed before Start");
        let index = c.one(&[b'x', i], 3, false);
        assert!(index > last, "index {index} did not grow past {last}");
        if last > 0 {
            assert_eq!(index, last + 1, "consecutive proposals got a gap");
        }
        last = index;
    }
    // Every node applied the same commands at the same indexes.
    for id in c.ids() {
        let a = c.applied(id);
        let a = lock(&a);
        assert!(a.last >= last);
        let cmds: Vec<_> = a.commands.values().cloned().collect();
        assert_eq!(
            cmds,
            vec![b"x\x01".to_vec(), b"x\x02".to_vec(), b"x\x03".to_vec()]
        );
    }
    c.shutdown();
}

#[test]
fn followers_refuse_proposals_with_a_leader_hint() {
    let mut c = Cluster::new(ClusterOptions::new(3, 12));
    let leader = c.leader();
    // Wait until every follower knows who leads.
    assert!(wait_until(Duration::from_secs(10), || c
        .ids()
        .iter()
        .all(|&id| c.status(id).leader == Some(leader))));
    for id in c.ids().into_iter().filter(|&id| id != leader) {
        let err = c
            .handle(id)
            .propose(b"no".to_vec())
            .expect_err("a follower refuses");
        assert!(err.is_not_leader(), "{err}");
        assert_eq!(err.leader_hint(), Some(leader), "{err}");
    }
    // Empty data is reserved for no-ops.
    let err = c.handle(leader).propose(Vec::new()).expect_err("empty");
    assert!(matches!(err, NodeError::Rejected(_)), "{err}");
    assert!(!err.is_not_leader());
    c.shutdown();
}

#[test]
fn concurrent_proposals_share_persister_writes() {
    // Each write takes 5 ms, like an fsync: proposals that arrive meanwhile must go
    // into the next write together.
    let mut c = Cluster::new_stopped(ClusterOptions::new(3, 13));
    let counters: Arc<std::sync::Mutex<Vec<Arc<CountingPersister>>>> = Arc::default();
    let cs = Arc::clone(&counters);
    c.wrap = Some(Box::new(move |_, p| {
        let cp = Arc::new(CountingPersister::new(p, Duration::from_millis(5)));
        lock(&cs).push(Arc::clone(&cp));
        cp
    }));
    for id in 1..=3 {
        c.start(id);
    }
    let leader = c.leader();
    let base = c.one(b"warm-up", 3, true);
    let lp = Arc::clone(&lock(&counters)[(leader - 1) as usize]);
    let writes_before = lp.writes.load(Ordering::SeqCst);
    let entries_before = lp.entries.load(Ordering::SeqCst);

    const THREADS: usize = 8;
    const PER_THREAD: usize = 40;
    let h = c.handle(leader).clone();
    let proposers: Vec<_> = (0..THREADS)
        .map(|t| {
            let h = h.clone();
            thread::spawn(move || {
                let mut last = 0;
                for i in 0..PER_THREAD {
                    let (index, _) = h
                        .propose(format!("{t}-{i}").into_bytes())
                        .expect("leader accepts");
                    assert!(index > last, "one proposer's indexes must grow");
                    last = index;
                }
                last
            })
        })
        .collect();
    let max_index = proposers
        .into_iter()
        .map(|p| p.join().expect("proposer"))
        .max()
        .expect("proposers ran");
    let total = (THREADS * PER_THREAD) as u64;
    assert!(max_index >= base + total);
    assert!(
        wait_until(Duration::from_secs(30), || c.n_committed(max_index).0 == 3),
        "proposals did not commit everywhere"
    );
    let writes = lp.writes.load(Ordering::SeqCst) - writes_before;
    let entries = lp.entries.load(Ordering::SeqCst) - entries_before;
    assert_eq!(
        entries, total,
        "each proposal is written exactly once by the leader"
    );
    assert!(
        writes * 2 <= total,
        "{total} concurrent proposals took {writes} leader writes: no group commit"
    );
    // A batch proposal is one round trip and lands in one write.
    let w0 = lp.writes.load(Ordering::SeqCst);
    let batch: Vec<Vec<u8>> = (0..100).map(|i| format!("b{i}").into_bytes()).collect();
    let results = h.propose_batch(batch);
    let indexes: Vec<u64> = results
        .into_iter()
        .map(|r| r.expect("accepted").0)
        .collect();
    assert!(
        indexes.windows(2).all(|w| w[1] == w[0] + 1),
        "a batch gets consecutive indexes"
    );
    let last = *indexes.last().expect("a non-empty batch");
    assert!(wait_until(Duration::from_secs(30), || c
        .n_committed(last)
        .0
        == 3));
    let batch_writes = lp.writes.load(Ordering::SeqCst) - w0;
    assert!(
        batch_writes <= 10,
        "a 100-entry batch took {batch_writes} writes"
    );
    c.shutdown();
}

#[test]
fn read_index_on_leader_and_follower() {
    let mut c = Cluster::new(ClusterOptions::new(3, 14));
    let index = c.one(b"before-read", 3, true);
    let leader = c.leader();
    let read = c
        .handle(leader)
        .read_index(Duration::from_secs(10))
        .expect("leader reads");
    assert!(
        read >= index,
        "read index {read} is below the committed write {index}"
    );
    let follower = c.other_than(&[leader]);
    let err = c
        .handle(follower)
        .read_index(Duration::from_secs(10))
        .expect_err("a follower refuses reads");
    assert!(err.is_not_leader(), "{err}");

    // A leader cut off from its quorum cannot confirm a read.
    c.disconnect(leader);
    let err = c
        .handle(leader)
        .read_index(Duration::from_secs(2))
        .expect_err("no quorum, no read");
    assert!(
        matches!(
            err,
            NodeError::Timeout { .. } | NodeError::LeadershipLost { .. }
        ) || err.is_not_leader(),
        "{err}"
    );
    c.reconnect(leader);
    c.shutdown();
}

#[test]
fn leadership_transfer() {
    let mut c = Cluster::new(ClusterOptions::new(3, 15));
    c.one(b"t", 3, true);
    let leader = c.leader();
    let target = c.other_than(&[leader]);
    c.handle(leader)
        .transfer_leadership(target)
        .expect("transfer starts");
    assert!(
        wait_until(Duration::from_secs(10), || c.status(target).role
            == Role::Leader),
        "node {target} did not take over"
    );
    assert_eq!(c.leader(), target);
    c.one(b"after-transfer", 3, true);
    c.shutdown();
}
