//! The callback forms of the node's requests: `propose_batch_with`, `read_index_with`
//! and `watch_status`.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicU64;

use raftkv_storage::{
    MemoryPersister, RecoveredState, Result as StorageResult, SnapshotReader, SnapshotWriter,
    WriteBatch,
};

use super::*;
use crate::transport::InProcessNetwork;
use crate::{ProposeError, Role};

const WAIT: Duration = Duration::from_secs(20);

fn config(id: NodeId, n: u64) -> Config {
    let mut c = Config::new(id, (1..=n).collect());
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c
}

fn options(seed: u64) -> NodeOptions {
    NodeOptions {
        tick: Duration::from_millis(5),
        ..NodeOptions::with_seed(seed)
    }
}

/// Starts nodes `ids` of an `n`-member cluster on `net`.
fn start(net: &InProcessNetwork, n: u64, ids: &[NodeId]) -> Vec<(NodeHandle, ApplyStream)> {
    ids.iter()
        .map(|&id| {
            start_with(
                net,
                n,
                id,
                Arc::new(MemoryPersister::new()),
                options(id * 31 + n),
            )
        })
        .collect()
}

fn start_with(
    net: &InProcessNetwork,
    n: u64,
    id: NodeId,
    persister: Arc<dyn Persister>,
    options: NodeOptions,
) -> (NodeHandle, ApplyStream) {
    let (h, s) = Node::start(config(id, n), persister, net.transport(id), options).expect("start");
    net.register(&h);
    (h, s)
}

/// A memory persister whose writes take `delay` (like a sync), counting them.
#[derive(Debug)]
struct SlowPersister {
    inner: MemoryPersister,
    delay: Duration,
    writes: AtomicU64,
}

impl Persister for SlowPersister {
    fn recover(&self) -> StorageResult<RecoveredState> {
        self.inner.recover()
    }
    fn write(&self, batch: &WriteBatch) -> StorageResult<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        thread::sleep(self.delay);
        self.inner.write(batch)
    }
    fn begin_snapshot(&self, meta: SnapshotMeta) -> StorageResult<Box<dyn SnapshotWriter>> {
        self.inner.begin_snapshot(meta)
    }
    fn open_snapshot(&self) -> StorageResult<Option<Box<dyn SnapshotReader>>> {
        self.inner.open_snapshot()
    }
    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.inner.snapshot_meta()
    }
    fn compact(&self, through: u64) -> StorageResult<()> {
        self.inner.compact(through)
    }
    fn raft_state_size(&self) -> u64 {
        self.inner.raft_state_size()
    }
    fn snapshot_size(&self) -> u64 {
        self.inner.snapshot_size()
    }
    fn backend_name(&self) -> &'static str {
        "slow-memory"
    }
}

fn wait_leader(nodes: &[(NodeHandle, ApplyStream)]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(i) = nodes
            .iter()
            .position(|(h, _)| h.status().role == Role::Leader)
        {
            return i;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Takes apply items until `index` is reached; returns the non-empty commands.
fn applied_through(stream: &ApplyStream, index: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let item = stream.recv_timeout(WAIT).expect("apply stream");
        if let ApplyItem::Command { index: i, data, .. } = &item
            && !data.is_empty()
        {
            out.push((*i, data.clone()));
        }
        if item.index() >= index {
            return out;
        }
    }
}

#[test]
fn propose_batch_with_answers_on_the_driver_thread_before_the_entries_apply() {
    let net = InProcessNetwork::new(1);
    let nodes = start(&net, 1, &[1]);
    wait_leader(&nodes);
    let (h, stream) = &nodes[0];
    let (tx, rx) = mpsc::channel();
    h.propose_batch_with(vec![b"a".to_vec(), b"b".to_vec()], move |results| {
        let thread = thread::current().name().map(str::to_owned);
        tx.send((results, thread)).expect("send");
    });
    let (results, thread) = rx.recv_timeout(WAIT).expect("answered");
    assert_eq!(thread.as_deref(), Some("raft-node-1"));
    let slots: Vec<(u64, u64)> = results.into_iter().map(|r| r.expect("ok")).collect();
    assert_eq!(slots.len(), 2);
    assert_eq!(slots[1].0, slots[0].0 + 1, "consecutive indexes");
    let applied = applied_through(stream, slots[1].0);
    assert_eq!(
        applied,
        vec![(slots[0].0, b"a".to_vec()), (slots[1].0, b"b".to_vec())]
    );

    // ReadIndex through a callback: at least the commit index of the entries above.
    let (tx, rx) = mpsc::channel();
    h.read_index_with(WAIT, move |r| tx.send(r).expect("send"));
    let index = rx
        .recv_timeout(WAIT)
        .expect("answered")
        .expect("read index");
    assert!(index >= slots[1].0);

    // Refusals come through the callback too, one per entry.
    let (tx, rx) = mpsc::channel();
    h.propose_batch_with(vec![b"c".to_vec(), Vec::new()], move |results| {
        tx.send(results).expect("send");
    });
    let results = rx.recv_timeout(WAIT).expect("answered");
    assert!(results[0].is_ok());
    assert!(matches!(
        results[1],
        Err(NodeError::Rejected(ProposeError::Empty))
    ));
    h.shutdown().expect("shutdown");
}

#[test]
fn callbacks_on_a_stopped_node_run_at_once_with_stopped() {
    let net = InProcessNetwork::new(2);
    let nodes = start(&net, 1, &[1]);
    let (h, _stream) = &nodes[0];
    h.shutdown().expect("shutdown");
    let (tx, rx) = mpsc::channel();
    h.propose_batch_with(vec![b"a".to_vec(); 3], move |results| {
        tx.send(results).expect("send");
    });
    // Called on this thread, before propose_batch_with returned.
    let results = rx.try_recv().expect("called inline");
    assert_eq!(results.len(), 3);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(NodeError::Stopped { id: 1, .. })))
    );
    let (tx, rx) = mpsc::channel();
    h.read_index_with(WAIT, move |r| tx.send(r).expect("send"));
    assert!(matches!(rx.try_recv(), Ok(Err(NodeError::Stopped { .. }))));
    assert!(matches!(
        h.propose(b"x".to_vec()),
        Err(NodeError::Stopped { .. })
    ));
}

#[test]
fn queued_callbacks_are_answered_when_the_node_shuts_down() {
    // Many proposals race with a shutdown: each callback runs exactly once, with an
    // answer or with Stopped.
    let net = InProcessNetwork::new(3);
    let nodes = start(&net, 1, &[1]);
    wait_leader(&nodes);
    let (h, _stream) = &nodes[0];
    let (tx, rx) = mpsc::channel();
    let n = 2000;
    let proposer = {
        let h = h.clone();
        thread::spawn(move || {
            for i in 0..n {
                let tx = tx.clone();
                h.propose_batch_with(vec![vec![1u8, i as u8]], move |r| {
                    tx.send(r).expect("send");
                });
            }
        })
    };
    thread::sleep(Duration::from_millis(2));
    h.shutdown().expect("shutdown");
    proposer.join().expect("proposer");
    let mut answered = 0;
    while let Ok(results) = rx.recv_timeout(WAIT) {
        assert_eq!(results.len(), 1);
        if let Err(e) = &results[0] {
            assert!(matches!(e, NodeError::Stopped { .. }), "{e}");
        }
        answered += 1;
    }
    assert_eq!(answered, n, "every callback ran exactly once");
}

#[test]
fn read_index_with_fails_fast_on_a_follower_and_times_out_without_a_quorum() {
    let net = InProcessNetwork::new(4);
    let nodes = start(&net, 3, &[1, 2, 3]);
    let leader = wait_leader(&nodes);
    let follower = (leader + 1) % 3;
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    nodes[follower]
        .0
        .read_index_with(WAIT, move |r| t.send(r).expect("send"));
    let e = rx
        .recv_timeout(WAIT)
        .expect("answered")
        .expect_err("follower");
    assert!(e.is_not_leader(), "{e}");

    // Cut the leader off: its read cannot be confirmed; the short timeout ends it
    // before check-quorum would (election timeout: 50-100 ms).
    let leader_id = nodes[leader].0.id();
    net.disconnect(leader_id);
    let t = tx.clone();
    nodes[leader]
        .0
        .read_index_with(Duration::from_millis(1), move |r| t.send(r).expect("send"));
    let e = rx
        .recv_timeout(WAIT)
        .expect("answered")
        .expect_err("no quorum");
    assert!(
        matches!(
            e,
            NodeError::Timeout {
                op: "read_index",
                ..
            } | NodeError::LeadershipLost { .. }
        ),
        "{e}"
    );
    // A long one ends when check-quorum deposes the leader.
    nodes[leader]
        .0
        .read_index_with(WAIT, move |r| tx.send(r).expect("send"));
    let e = rx
        .recv_timeout(WAIT)
        .expect("answered")
        .expect_err("deposed");
    assert!(matches!(e, NodeError::LeadershipLost { .. }), "{e}");
    for (h, _) in &nodes {
        h.shutdown().expect("shutdown");
    }
}

#[test]
fn status_watchers_see_every_leadership_change_in_order() {
    let net = InProcessNetwork::new(5);
    let nodes = start(&net, 3, &[1, 2, 3]);
    type Seen = Arc<Mutex<Vec<(Role, u64)>>>;
    let seen: Vec<Seen> = nodes
        .iter()
        .map(|(h, _)| {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = Arc::clone(&seen);
            h.watch_status(move |st| s.lock().expect("lock").push((st.role, st.term)));
            seen
        })
        .collect();
    let leader = wait_leader(&nodes);
    let term = nodes[leader].0.status().term;
    // Depose it: it must report the end of its leadership.
    net.disconnect(nodes[leader].0.id());
    let deadline = Instant::now() + WAIT;
    while nodes[leader].0.status().role == Role::Leader {
        assert!(Instant::now() < deadline, "never deposed");
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(20));
    let log = seen[leader].lock().expect("lock").clone();
    let led = log
        .iter()
        .position(|&(r, t)| r == Role::Leader && t == term)
        .expect("the watcher saw the leadership");
    assert!(
        log[led + 1..].iter().any(|&(r, _)| r != Role::Leader),
        "the watcher saw it end: {log:?}"
    );
    assert!(
        log.windows(2).all(|w| w[0].1 <= w[1].1),
        "terms never go back: {log:?}"
    );
    for (h, _) in &nodes {
        h.shutdown().expect("shutdown");
    }
}

/// Proposes `per_thread` entries from each of 4 threads through the callback API, waits
/// until every node applied all of them, and checks that every node applied the same
/// entries in the same order. Returns how many entries were proposed.
fn replicate_concurrently(nodes: &[(NodeHandle, ApplyStream)], per_thread: u32) -> u64 {
    let leader = wait_leader(nodes);
    let h = nodes[leader].0.clone();
    let last = Arc::new(AtomicU64::new(0));
    let proposers: Vec<_> = (0..4u8)
        .map(|t| {
            let h = h.clone();
            let last = Arc::clone(&last);
            thread::spawn(move || {
                for i in 0..per_thread {
                    let (tx, rx) = mpsc::channel();
                    h.propose_batch_with(vec![vec![t, (i >> 8) as u8, i as u8]], move |r| {
                        tx.send(r).expect("send");
                    });
                    let (index, _) = rx.recv_timeout(WAIT).expect("answered")[0]
                        .as_ref()
                        .map(|&slot| slot)
                        .expect("accepted");
                    last.fetch_max(index, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for p in proposers {
        p.join().expect("proposer");
    }
    let last = last.load(Ordering::SeqCst);
    let logs: Vec<_> = nodes
        .iter()
        .map(|(_, stream)| applied_through(stream, last))
        .collect();
    for log in &logs[1..] {
        assert_eq!(log, &logs[0], "the nodes applied the same entries");
    }
    assert_eq!(logs[0].len(), 4 * per_thread as usize);
    u64::from(4 * per_thread)
}

#[test]
fn background_writes_replicate_and_share_syncs() {
    let net = InProcessNetwork::new(6);
    let persisters: Vec<Arc<SlowPersister>> = (0..3)
        .map(|_| {
            Arc::new(SlowPersister {
                inner: MemoryPersister::new(),
                delay: Duration::from_millis(3),
                writes: AtomicU64::new(0),
            })
        })
        .collect();
    let nodes: Vec<_> = (1..=3u64)
        .map(|id| {
            let p = Arc::clone(&persisters[id as usize - 1]) as Arc<dyn Persister>;
            start_with(&net, 3, id, p, options(id * 7))
        })
        .collect();
    let before: u64 = persisters
        .iter()
        .map(|p| p.writes.load(Ordering::SeqCst))
        .sum();
    let proposed = replicate_concurrently(&nodes, 100);
    let writes: u64 = persisters
        .iter()
        .map(|p| p.writes.load(Ordering::SeqCst))
        .sum::<u64>()
        - before;
    assert!(
        writes < 3 * proposed / 2,
        "{writes} writes for {proposed} proposals on 3 nodes: syncs are not shared"
    );
    for (h, _) in &nodes {
        h.shutdown().expect("shutdown");
    }
    // Everything written is durable once the nodes stopped: a restart recovers it all.
    for p in &persisters {
        let recovered = p.inner.recover().expect("recover");
        assert!(recovered.last_index() >= proposed);
    }
}

#[test]
fn writes_on_the_driver_thread_still_work() {
    let net = InProcessNetwork::new(7);
    let nodes: Vec<_> = (1..=3u64)
        .map(|id| {
            let options = NodeOptions {
                background_writes: false,
                ..options(id * 13)
            };
            start_with(&net, 3, id, Arc::new(MemoryPersister::new()), options)
        })
        .collect();
    replicate_concurrently(&nodes, 50);
    for (h, _) in &nodes {
        h.shutdown().expect("shutdown");
    }
}
