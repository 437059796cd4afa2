//! Snapshots through the runtime (the lab's 3D tests, adapted): the service snapshots
//! every 10 entries, the log stays small, a lagging follower is brought up to date by
//! a snapshot streamed in chunks through the transport, a stream cut off midway is
//! retried, and a restarted node's apply stream starts from its snapshot.

mod node_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use node_common::{Cluster, ClusterOptions, CountingPersister, lock, wait_until};
use raftkv_consensus::transport::SNAPSHOT_CHUNK_BYTES;

const PADDING: usize = 300 * 1024;

fn snapshot_cluster(seed: u64) -> ClusterOptions {
    let mut o = ClusterOptions::new(3, seed);
    o.snapshot_every = Some(10);
    o.snapshot_padding = PADDING;
    o
}

fn commit_many(c: &Cluster, prefix: &str, n: usize, expected: usize) -> u64 {
    let mut last = 0;
    for i in 0..n {
        last = c.one(format!("{prefix}-{i}").as_bytes(), expected, true);
    }
    last
}

#[test]
fn lagging_follower_installs_a_streamed_snapshot() {
    let mut c = Cluster::new(snapshot_cluster(41));
    c.one(b"first", 3, true);
    let leader = c.leader();
    let lagger = c.other_than(&[leader]);
    c.disconnect(lagger);
    let last = commit_many(&c, "while-away", 35, 2);

    // The leader snapshotted and dropped the entries the lagger misses.
    let lp = c.persister(leader);
    assert!(
        wait_until(Duration::from_secs(10), || lp
            .snapshot_meta()
            .is_some_and(|m| m.index >= 30)),
        "the leader did not snapshot"
    );
    assert!(c.status(leader).snapshot_index >= 30);

    c.reconnect(lagger);
    let end = c.one(b"after-reconnect", 3, true);
    assert!(end > last);
    let a = c.applied(lagger);
    {
        let a = lock(&a);
        assert!(
            !a.snapshots.is_empty(),
            "the lagger caught up without a snapshot (applied {:?})",
            a.commands.keys().collect::<Vec<_>>()
        );
        let (index, len) = a.snapshots[0];
        assert!(
            index >= 30 && len > PADDING,
            "snapshot at {index} of {len} bytes"
        );
        // Everything committed is there, from the snapshot and the entries after it.
        let got: Vec<_> = a.commands.values().cloned().collect();
        let mut want = vec![b"first".to_vec()];
        want.extend((0..35).map(|i| format!("while-away-{i}").into_bytes()));
        want.push(b"after-reconnect".to_vec());
        assert_eq!(got, want);
    }
    // It went through the transport as a chunked stream.
    let stats = c.net.stats(leader);
    assert!(stats.snapshots_completed >= 1, "{stats:?}");
    assert!(
        stats.snapshot_bytes as usize > 2 * SNAPSHOT_CHUNK_BYTES,
        "{stats:?}"
    );
    // The lagger's own persister holds the snapshot, and its log is small.
    let fp = c.persister(lagger);
    assert!(fp.snapshot_meta().is_some_and(|m| m.index >= 30));
    assert!(
        fp.raft_state_size() < 4096,
        "log of {} bytes",
        fp.raft_state_size()
    );

    // Restart the lagger: its new apply stream starts from the snapshot.
    c.restart(lagger);
    let a = c.applied(lagger);
    assert!(wait_until(Duration::from_secs(20), || lock(&a).last >= end));
    {
        let a = lock(&a);
        assert!(
            !a.snapshots.is_empty(),
            "restart did not start from the snapshot"
        );
        assert!(a.commands.values().any(|v| v == b"first"));
    }
    c.one(b"after-restart", 3, true);
    c.shutdown();
}

#[test]
fn snapshot_stream_cut_off_midway_is_retried() {
    let mut c = Cluster::new_stopped(snapshot_cluster(42));
    // Small chunks and a slow receiving disk: the stream takes a while, so the test
    // can cut it off in the middle.
    c.net.set_snapshot_chunk_bytes(4096);
    let slow: Arc<std::sync::Mutex<Option<Arc<CountingPersister>>>> = Arc::default();
    let s2 = Arc::clone(&slow);
    // Node 3 is the one that will lag.
    c.wrap = Some(Box::new(move |id, p| {
        if id == 3 {
            let mut cp = CountingPersister::new(p, Duration::ZERO);
            cp.snapshot_write_delay = Duration::from_millis(10);
            let cp = Arc::new(cp);
            *lock(&s2) = Some(Arc::clone(&cp));
            cp
        } else {
            p
        }
    }));
    for id in 1..=3 {
        c.start(id);
    }
    c.one(b"first", 3, true);
    // Make sure node 3 is not the leader.
    let leader = c.leader();
    if leader == 3 {
        c.handle(3).transfer_leadership(1).expect("transfer");
        assert!(wait_until(Duration::from_secs(10), || c.leader() != 3));
    }
    let leader = c.leader();
    c.disconnect(3);
    commit_many(&c, "away", 25, 2);
    let lp = c.persister(leader);
    assert!(wait_until(Duration::from_secs(10), || lp
        .snapshot_meta()
        .is_some_and(|m| m.index >= 20)));

    c.reconnect(3);
    // ~300 KiB in 4 KiB chunks at 10 ms each: most of a second per stream.
    assert!(
        wait_until(Duration::from_secs(20), || c
            .net
            .stats(leader)
            .snapshots_started
            >= 1),
        "no snapshot stream started"
    );
    c.disconnect(3);
    assert!(
        wait_until(Duration::from_secs(20), || c
            .net
            .stats(leader)
            .snapshots_failed
            >= 1),
        "the cut-off stream did not fail: {:?}",
        c.net.stats(leader)
    );
    let cp = lock(&slow).clone().expect("node 3 started");
    assert_eq!(
        cp.snapshot_commits.load(Ordering::SeqCst),
        0,
        "a partial snapshot was committed"
    );
    assert!(lock(&c.applied(3)).snapshots.is_empty());

    // Reconnected, the leader retries and the stream completes.
    c.reconnect(3);
    let end = c.one(b"end", 3, true);
    let a = c.applied(3);
    assert!(wait_until(Duration::from_secs(30), || lock(&a).last >= end));
    assert!(!lock(&a).snapshots.is_empty());
    assert!(c.net.stats(leader).snapshots_completed >= 1);
    assert!(cp.snapshot_commits.load(Ordering::SeqCst) >= 1);
    c.shutdown();
}

#[test]
fn log_stays_small_with_periodic_snapshots() {
    let mut c = Cluster::new(snapshot_cluster(43));
    for round in 0..3 {
        commit_many(&c, &format!("r{round}"), 12, 3);
        for id in c.ids() {
            let p = c.persister(id);
            assert!(
                wait_until(Duration::from_secs(10), || p.raft_state_size() < 2000),
                "node {id}: raft state of {} bytes",
                p.raft_state_size()
            );
        }
    }
    // Restart everybody: the state comes back from the snapshots plus the log tail.
    let before = c.one(b"before", 3, true);
    for id in c.ids() {
        c.crash(id);
    }
    for id in c.ids() {
        c.start(id);
    }
    let after = c.one(b"after", 3, true);
    assert!(after > before, "index decreased across a restart");
    c.shutdown();
}
