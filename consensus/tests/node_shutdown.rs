//! Shutdown and apply-stream backpressure: `shutdown` returns promptly with proposals
//! in flight and a write in progress, every waiting caller gets an error, and a
//! consumer that stops reading its apply stream never stalls the node (it keeps
//! ticking, replicating and committing; only its own proposals are refused once the
//! backlog is too long).

mod node_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use node_common::{Cluster, ClusterOptions, CountingPersister, TICK, test_config, wait_until};
use raftkv_consensus::Role;
use raftkv_consensus::node::{ApplyItem, ApplyStream, Node, NodeError, NodeHandle, NodeOptions};
use raftkv_consensus::transport::InProcessNetwork;
use raftkv_storage::MemoryPersister;

#[test]
fn shutdown_is_prompt_with_proposals_in_flight() {
    let mut c = Cluster::new_stopped(ClusterOptions::new(3, 61));
    // Writes take 20 ms, so one is usually in progress when shutdown comes.
    c.wrap = Some(Box::new(|_, p| {
        Arc::new(CountingPersister::new(p, Duration::from_millis(20)))
    }));
    for id in 1..=3 {
        c.start(id);
    }
    c.one(b"warm-up", 3, true);
    let leader = c.leader();
    let accepted = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for t in 0..4 {
        let h = c.handle(leader).clone();
        let accepted = Arc::clone(&accepted);
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let mut i = 0u64;
            let end = loop {
                match h.propose(format!("{t}-{i}").into_bytes()) {
                    Ok(_) => accepted.fetch_add(1, Ordering::SeqCst),
                    Err(e) => break e,
                };
                i += 1;
            };
            done_tx.send(end).expect("the test waits");
        });
    }
    drop(done_tx);
    assert!(wait_until(Duration::from_secs(20), || accepted
        .load(Ordering::SeqCst)
        >= 200));

    let h = c.handle(leader).clone();
    let start = Instant::now();
    h.shutdown().expect("shutdown");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert!(!h.is_running());

    // Every proposer gets "stopped" promptly (no fatal cause: an orderly shutdown).
    for _ in 0..4 {
        let e = done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("proposer returns");
        assert!(matches!(e, NodeError::Stopped { cause: None, .. }), "{e}");
    }
    // The apply stream ended.
    let applier = c.applier(leader);
    assert!(wait_until(Duration::from_secs(5), || applier.is_finished()));
    // Shutdown is idempotent.
    h.shutdown().expect("second shutdown");
    c.shutdown();
}

/// Three nodes whose apply streams the test consumes (or not) itself.
struct RawCluster {
    net: InProcessNetwork,
    handles: Vec<NodeHandle>,
    streams: Vec<Option<ApplyStream>>,
}

fn raw_cluster(seed: u64, options: impl Fn(u64) -> NodeOptions) -> RawCluster {
    let net = InProcessNetwork::new(seed);
    let mut handles = Vec::new();
    let mut streams = Vec::new();
    for id in 1..=3u64 {
        let (h, s) = Node::start(
            test_config(id, 3),
            Arc::new(MemoryPersister::new()),
            net.transport(id),
            options(id),
        )
        .expect("start");
        net.register(&h);
        handles.push(h);
        streams.push(Some(s));
    }
    RawCluster {
        net,
        handles,
        streams,
    }
}

/// Drains a stream on a thread, publishing the last index applied.
fn consume(stream: ApplyStream) -> Arc<AtomicU64> {
    let last = Arc::new(AtomicU64::new(0));
    let l = Arc::clone(&last);
    thread::spawn(move || {
        for item in stream {
            l.store(item.index(), Ordering::SeqCst);
        }
    });
    last
}

fn make_leader(c: &RawCluster, id: u64) {
    assert!(
        wait_until(Duration::from_secs(20), || c
            .handles
            .iter()
            .any(|h| h.status().role == Role::Leader)),
        "no leader"
    );
    let ok = wait_until(Duration::from_secs(20), || {
        if c.handles[(id - 1) as usize].status().role == Role::Leader {
            return true;
        }
        if let Some(l) = c.handles.iter().find(|h| h.status().role == Role::Leader) {
            let _ = l.transfer_leadership(id);
        }
        thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(ok, "node {id} did not become leader");
}

#[test]
fn a_stuck_apply_consumer_never_stalls_the_node() {
    let mut c = raw_cluster(62, |id| NodeOptions {
        tick: TICK,
        apply_capacity: 4,
        max_apply_backlog: if id == 1 { 100 } else { 1 << 18 },
        ..NodeOptions::with_seed(620 + id)
    });
    // Nobody reads node 1's stream for now.
    let stuck = c.streams[0].take().expect("stream");
    let l2 = consume(c.streams[1].take().expect("stream"));
    let l3 = consume(c.streams[2].take().expect("stream"));
    make_leader(&c, 1);
    let leader = c.handles[0].clone();

    // The leader keeps replicating and committing although its stream is full.
    let mut last = 0;
    let mut refused = None;
    for i in 0..400 {
        match leader.propose(format!("p{i}").into_bytes()) {
            Ok((index, _)) => last = index,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        // Give the backlog time to build up as entries commit.
        if i % 50 == 49 {
            let target = last;
            assert!(wait_until(Duration::from_secs(20), || l2
                .load(Ordering::SeqCst)
                >= target));
        }
    }
    assert!(
        wait_until(Duration::from_secs(20), || l2.load(Ordering::SeqCst)
            >= last
            && l3.load(Ordering::SeqCst) >= last
            && leader.status().commit >= last),
        "the cluster stopped committing behind a stuck consumer"
    );
    // With 4 items in the channel and a backlog limit of 100, the leader refuses
    // proposals before 400 were accepted.
    match refused {
        Some(NodeError::Overloaded { backlog }) => assert!(backlog >= 100),
        other => panic!("expected Overloaded, got {other:?} after index {last}"),
    }
    assert_eq!(
        leader.status().role,
        Role::Leader,
        "the stuck node lost its leadership"
    );

    // Draining the stream delivers everything in order, exactly once.
    let mut expected = 1;
    while expected <= last {
        match stuck
            .recv_timeout(Duration::from_secs(10))
            .expect("an item")
        {
            ApplyItem::Command { index, .. } => {
                assert_eq!(index, expected);
                expected += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // And the leader accepts proposals again.
    let (i, _) = leader
        .propose(b"again".to_vec())
        .expect("accepted after draining");
    let got = stuck
        .recv_timeout(Duration::from_secs(10))
        .expect("the new entry");
    assert_eq!(got.index(), i);

    // Shutdown is prompt even with a full, unread stream.
    for _ in 0..20 {
        let _ = leader.propose(b"fill".to_vec());
    }
    let start = Instant::now();
    for h in &c.handles {
        h.shutdown().expect("shutdown");
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    // The stream ends after what was already in its channel.
    while let Ok(item) = stuck.recv_timeout(Duration::from_secs(5)) {
        assert!(item.index() > i);
    }
    assert!(stuck.recv().is_none());
    for h in c.handles.drain(..) {
        c.net.unregister(h.id());
    }
}

#[test]
fn dropping_every_handle_stops_the_node() {
    let net = InProcessNetwork::new(63);
    let (h, stream) = Node::start(
        test_config(1, 1),
        Arc::new(MemoryPersister::new()),
        net.transport(1),
        NodeOptions {
            tick: TICK,
            ..NodeOptions::with_seed(63)
        },
    )
    .expect("start");
    // A single-node cluster elects itself and commits alone.
    assert!(wait_until(Duration::from_secs(10), || h.status().role == Role::Leader));
    let (i, _) = h.propose(b"solo".to_vec()).expect("propose");
    let mut seen = 0;
    while seen < i {
        seen = stream
            .recv_timeout(Duration::from_secs(10))
            .expect("applied")
            .index();
    }
    drop(h);
    // The stream ends: the driver stopped without an explicit shutdown.
    let start = Instant::now();
    loop {
        match stream.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the node kept running"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}
