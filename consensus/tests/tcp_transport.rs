//! The TCP transport with real nodes on loopback: agreement, a node killed and
//! restarted on the same address, a multi-MiB snapshot streamed in chunks, hostile
//! input on a live listener, a peer that never reads, and the request channel.
//!
//! Conditions are polled with deadlines (no fixed sleeps to let something happen); the
//! deadlines are generous because the tests share two busy cores.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_consensus::node::{ApplyItem, Node, NodeHandle, NodeOptions};
use raftkv_consensus::transport::frame::{self, FrameKind, Hello};
use raftkv_consensus::transport::tcp::ClusterSecret;
use raftkv_consensus::transport::{
    SNAPSHOT_CHUNK_BYTES, TcpConfig, TcpError, TcpTransport, Transport,
};
use raftkv_consensus::{Config, Message, MessageBody, Role};
use raftkv_storage::{Entry, MemoryPersister, NodeId, Persister, SnapshotMeta};
use tokio::runtime::Runtime;

const TICK: Duration = Duration::from_millis(10);
const CLUSTER: u64 = 0x7AF7_C0DE;

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Listeners on free loopback ports.
fn listeners(n: usize) -> Vec<TcpListener> {
    (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect()
}

/// An address nothing listens on (bound, then released).
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn raft_config(id: NodeId, voters: &[NodeId]) -> Config {
    let mut c = Config::new(id, voters.to_vec());
    c.election_ticks = 15;
    c.heartbeat_ticks = 3;
    c.snapshot_retry_ticks = 30;
    c
}

/// What one node instance's apply stream delivered.
#[derive(Debug, Default)]
struct Applied {
    last: u64,
    commands: BTreeMap<u64, Vec<u8>>,
    terms: BTreeMap<u64, u64>,
    /// (index, payload).
    snapshots: Vec<(u64, Vec<u8>)>,
}

struct Running {
    transport: Arc<TcpTransport>,
    handle: NodeHandle,
    applied: Arc<Mutex<Applied>>,
    applier: JoinHandle<()>,
}

/// A cluster of nodes, each with its own `TcpTransport` on loopback.
struct Cluster {
    rt: Runtime,
    voters: Vec<NodeId>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    persisters: BTreeMap<NodeId, MemoryPersister>,
    nodes: BTreeMap<NodeId, Running>,
    tune: fn(&mut TcpConfig),
    starts: u64,
}

impl Cluster {
    /// Voters `1..=n`; `listeners[i]` is node `i + 1`'s; `extra` adds peers that are
    /// not started here (fakes).
    fn new(
        n: usize,
        listeners: Vec<TcpListener>,
        extra: &[(NodeId, SocketAddr)],
        tune: fn(&mut TcpConfig),
    ) -> (Cluster, Vec<TcpListener>) {
        let mut addrs: BTreeMap<NodeId, SocketAddr> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u64 + 1, l.local_addr().expect("addr")))
            .collect();
        addrs.extend(extra.iter().copied());
        let voters = (1..=n as u64)
            .chain(extra.iter().map(|(id, _)| *id))
            .collect();
        (
            Cluster {
                rt: runtime(),
                voters,
                addrs,
                persisters: BTreeMap::new(),
                nodes: BTreeMap::new(),
                tune,
                starts: 0,
            },
            listeners,
        )
    }

    fn tcp_config(&self, id: NodeId) -> TcpConfig {
        let mut tc =
            TcpConfig::new(id, self.addrs[&id], self.addrs.clone()).with_cluster_id(CLUSTER);
        tc.backoff_max = Duration::from_millis(300);
        tc.connect_timeout = Duration::from_secs(1);
        (self.tune)(&mut tc);
        tc
    }

    /// Starts node `id` on `listener`, or binding its address if `None`.
    fn start(&mut self, id: NodeId, listener: Option<TcpListener>) {
        let tc = self.tcp_config(id);
        let rt = self.rt.handle().clone();
        let transport = match listener {
            Some(l) => TcpTransport::start_with_listener(tc, l, rt),
            None => TcpTransport::start(tc, rt),
        }
        .expect("transport starts");
        self.starts += 1;
        let persister = self.persisters.entry(id).or_default().clone();
        let options = NodeOptions {
            tick: TICK,
            ..NodeOptions::with_seed(id * 1000 + self.starts)
        };
        let (handle, stream) = Node::start(
            raft_config(id, &self.voters),
            Arc::new(persister),
            Arc::clone(&transport) as Arc<dyn Transport>,
            options,
        )
        .expect("node starts");
        transport.attach(handle.clone());
        let applied = Arc::new(Mutex::new(Applied::default()));
        let a = Arc::clone(&applied);
        let applier = thread::spawn(move || {
            while let Some(item) = stream.recv() {
                let mut st = lock(&a);
                match item {
                    ApplyItem::Command { index, term, data } => {
                        assert_eq!(index, st.last + 1, "node {id}: apply order");
                        st.last = index;
                        st.terms.insert(index, term);
                        if !data.is_empty() {
                            st.commands.insert(index, data);
                        }
                    }
                    ApplyItem::Snapshot {
                        index, mut data, ..
                    } => {
                        let mut bytes = Vec::new();
                        data.read_to_end(&mut bytes).expect("read snapshot");
                        st.last = index;
                        st.commands.retain(|i, _| *i > index);
                        st.snapshots.push((index, bytes));
                    }
                }
            }
        });
        self.nodes.insert(
            id,
            Running {
                transport,
                handle,
                applied,
                applier,
            },
        );
    }

    /// Stops node `id` and its transport (a graceful exit).
    fn stop(&mut self, id: NodeId) {
        let r = self.nodes.remove(&id).expect("node is running");
        r.handle.shutdown().expect("prompt node shutdown");
        r.transport.shutdown();
        drop(r.handle);
        r.applier.join().expect("applier");
    }

    fn node(&self, id: NodeId) -> &Running {
        &self.nodes[&id]
    }

    fn transport(&self, id: NodeId) -> &Arc<TcpTransport> {
        &self.node(id).transport
    }

    fn applied(&self, id: NodeId) -> MutexGuard<'_, Applied> {
        lock(&self.node(id).applied)
    }

    /// The running leader of the highest term.
    fn leader(&self) -> NodeId {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(20), || {
            found = self
                .nodes
                .iter()
                .map(|(id, r)| (*id, r.handle.status()))
                .filter(|(_, s)| s.role == Role::Leader)
                .max_by_key(|(_, s)| s.term)
                .map(|(id, _)| id);
            found.is_some()
        });
        assert!(ok, "no leader among {:?}", self.nodes.keys());
        found.expect("found")
    }

    /// Commits `cmd` and waits until every node in `on` applied it; returns its index.
    fn commit(&self, cmd: &[u8], on: &[NodeId]) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let leader = self.leader();
            let Ok((index, _)) = self.node(leader).handle.propose(cmd.to_vec()) else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            let applied_everywhere = wait_until(Duration::from_secs(5), || {
                on.iter().all(|&id| {
                    let a = self.applied(id);
                    a.last >= index && a.commands.get(&index).map(Vec::as_slice) == Some(cmd)
                })
            });
            if applied_everywhere {
                return index;
            }
        }
        panic!(
            "{:?} did not commit on {on:?}",
            String::from_utf8_lossy(cmd)
        );
    }

    fn shutdown(mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
    }
}

fn all(c: &Cluster) -> Vec<NodeId> {
    c.nodes.keys().copied().collect()
}

fn three_nodes(tune: fn(&mut TcpConfig)) -> Cluster {
    let (mut c, ls) = Cluster::new(3, listeners(3), &[], tune);
    for (i, l) in ls.into_iter().enumerate() {
        c.start(i as u64 + 1, Some(l));
    }
    c
}

#[test]
fn three_nodes_elect_a_leader_and_commit_over_tcp() {
    let c = three_nodes(|_| {});
    let ids = all(&c);
    let mut last = 0;
    for i in 0..20 {
        last = c.commit(format!("cmd-{i}").as_bytes(), &ids);
    }
    // Every node applied the same commands in the same order.
    let reference: Vec<Vec<u8>> = c.applied(1).commands.values().cloned().collect();
    assert_eq!(reference.len(), 20);
    for id in &ids {
        let a = c.applied(*id);
        assert!(a.last >= last);
        assert_eq!(a.commands.values().cloned().collect::<Vec<_>>(), reference);
    }
    let leader = c.leader();
    let s = c.transport(leader).stats();
    assert!(s.messages_sent > 0 && s.messages_received > 0, "{s:?}");
    assert!(s.bytes_sent > 0 && s.bytes_received > 0, "{s:?}");
    assert_eq!(s.rejected_connections, 0, "{s:?}");
    assert_eq!(s.protocol_errors, 0, "{s:?}");
    assert!(s.peers.iter().all(|p| p.connected), "{s:?}");
    c.shutdown();
}

#[test]
fn a_killed_node_restarts_on_its_address_and_catches_up() {
    let mut c = three_nodes(|_| {});
    c.commit(b"before", &[1, 2, 3]);
    let victim = c.leader();
    let addr = c.addrs[&victim];
    c.stop(victim);
    let rest: Vec<_> = all(&c);
    let mut last = 0;
    for i in 0..10 {
        last = c.commit(format!("without-{victim}-{i}").as_bytes(), &rest);
    }
    // The survivors' links to the dead node are down and its messages are dropped.
    for id in &rest {
        let t = c.transport(*id);
        assert!(
            wait_until(Duration::from_secs(10), || !t.is_connected(victim)),
            "node {id} still thinks it is connected to {victim}"
        );
    }

    // A fresh transport on the same address, the node on its old persister.
    c.start(victim, None);
    assert_eq!(c.transport(victim).local_addr(), addr);
    assert!(
        wait_until(Duration::from_secs(20), || c.applied(victim).last >= last),
        "the restarted node did not catch up to {last}"
    );
    let end = c.commit(b"after-restart", &[1, 2, 3]);
    let want: Vec<Vec<u8>> = c.applied(rest[0]).commands.values().cloned().collect();
    assert_eq!(
        c.applied(victim)
            .commands
            .values()
            .cloned()
            .collect::<Vec<_>>(),
        want
    );
    assert!(c.applied(victim).last >= end);
    // Every survivor redialed the restarted node (after its backoff).
    for id in &rest {
        let t = c.transport(*id);
        assert!(
            wait_until(Duration::from_secs(10), || {
                let s = t.stats();
                s.reconnects >= 1 && s.peers.iter().all(|p| p.connected)
            }),
            "node {id}: {:?}",
            t.stats()
        );
    }
    c.shutdown();
}

/// A deterministic payload of `len` bytes for the snapshot at `index`.
fn snapshot_payload(len: usize, index: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 131 + index * 7 + (i as u64 >> 12)) as u8)
        .collect()
}

const SNAPSHOT_BYTES: usize = 6 << 20;

/// The service's side of a snapshot: write it through `index` and tell the node.
fn take_snapshot(c: &Cluster, id: NodeId) -> SnapshotMeta {
    let (index, term) = {
        let a = c.applied(id);
        (a.last, a.terms[&a.last])
    };
    let meta = SnapshotMeta { index, term };
    let persister = c.persisters[&id].clone();
    let mut w = persister.begin_snapshot(meta).expect("begin snapshot");
    w.write_all(&snapshot_payload(SNAPSHOT_BYTES, index))
        .expect("write snapshot");
    w.commit().expect("commit snapshot");
    c.node(id)
        .handle
        .snapshot_taken(meta)
        .expect("snapshot taken");
    meta
}

#[test]
fn a_lagging_follower_installs_a_multi_mib_snapshot_streamed_over_tcp() {
    let mut c = three_nodes(|_| {});
    c.commit(b"first", &[1, 2, 3]);
    let leader = c.leader();
    let lagger = (1..=3).find(|&id| id != leader).expect("a follower");
    c.stop(lagger);
    let rest = all(&c);
    for i in 0..5 {
        c.commit(format!("while-away-{i}").as_bytes(), &rest);
    }
    // Both survivors compact their logs, whoever leads when the lagger is back.
    let mut metas = BTreeMap::new();
    for &id in &rest {
        let meta = take_snapshot(&c, id);
        let p = c.persisters[&id].clone();
        assert!(
            wait_until(Duration::from_secs(10), || c
                .node(id)
                .handle
                .status()
                .snapshot_index
                >= meta.index
                && p.snapshot_meta() == Some(meta)),
            "node {id} did not compact through {meta:?}"
        );
        metas.insert(id, meta);
    }

    c.start(lagger, None);
    let end = c.commit(b"after-snapshot", &[1, 2, 3]);
    let a = c.applied(lagger);
    assert!(a.last >= end);
    assert_eq!(a.snapshots.len(), 1, "exactly one snapshot installed");
    let (index, bytes) = &a.snapshots[0];
    let index = *index;
    assert!(
        metas.values().any(|m| m.index == index),
        "snapshot at {index}, taken at {metas:?}"
    );
    assert_eq!(bytes.len(), SNAPSHOT_BYTES);
    assert!(
        *bytes == snapshot_payload(SNAPSHOT_BYTES, index),
        "the installed snapshot's bytes differ from the sender's"
    );
    assert_eq!(
        a.commands.get(&end).map(Vec::as_slice),
        Some(&b"after-snapshot"[..])
    );
    drop(a);
    let p = c.persisters[&lagger].clone();
    assert_eq!(p.snapshot_meta().map(|m| m.index), Some(index));
    // It went over TCP, in many chunks.
    let sender = c.leader();
    let s = c.transport(sender).stats();
    assert!(s.snapshots_installed >= 1, "{s:?}");
    assert!(
        s.snapshot_bytes_sent >= SNAPSHOT_BYTES as u64
            && SNAPSHOT_BYTES > 50 * SNAPSHOT_CHUNK_BYTES,
        "{s:?}"
    );
    assert!(c.transport(lagger).stats().snapshots_received >= 1);
    c.shutdown();
}

/// Writes `bytes` to the listener at `addr` and expects the connection to be closed
/// (EOF or reset) without an answer.
fn expect_closed(addr: SocketAddr, bytes: &[u8], what: &str) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may close before everything is written.
    let _ = s.write_all(bytes);
    expect_eof(s, what);
}

/// A Hello from `node_id` to node 1 (the target of the hostile-input test).
fn hello_bytes(cluster_id: u64, node_id: NodeId) -> Vec<u8> {
    hello_to(cluster_id, node_id, 1, [7; frame::NONCE_BYTES])
}

fn hello_to(cluster_id: u64, node_id: NodeId, to: NodeId, nonce: [u8; 16]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_hello_frame(
        &Hello {
            cluster_id,
            node_id,
            to,
            nonce,
        },
        &mut out,
    )
    .expect("hello");
    out
}

/// HMAC-SHA256 of a handshake transcript, computed here from `storage/FORMAT.md`'s
/// description (not with the transport's code), so the test pins the documented format.
fn handshake_proof(
    key: &[u8],
    label: &[u8],
    (cluster, dialer, acceptor): (u64, NodeId, NodeId),
    dialer_nonce: &[u8],
    acceptor_nonce: &[u8],
) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(label);
    for n in [cluster, dialer, acceptor] {
        mac.update(&n.to_le_bytes());
    }
    mac.update(dialer_nonce);
    mac.update(acceptor_nonce);
    mac.finalize().into_bytes().to_vec()
}

const DIALER_LABEL: &[u8] = b"raftkv peer handshake v1: dialer\0";
const ACCEPTOR_LABEL: &[u8] = b"raftkv peer handshake v1: acceptor\0";

/// Reads one whole frame from a blocking socket (`None` on EOF or a reset).
fn read_frame(s: &mut TcpStream) -> Option<frame::Frame> {
    let mut header = [0u8; frame::FRAME_HEADER_BYTES];
    s.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let mut bytes = header.to_vec();
    bytes.resize(frame::FRAME_HEADER_BYTES + len, 0);
    s.read_exact(&mut bytes[frame::FRAME_HEADER_BYTES..]).ok()?;
    let (f, _) = frame::FrameDecoder::default()
        .decode_slice(&bytes)
        .expect("a valid frame")
        .expect("a whole frame");
    Some(f)
}

/// Plays the dialer's side of the handshake as node `from` towards node `to` at
/// `addr` with `key`: returns the socket (ready for frames if the key is right) and
/// whether the acceptor's proof verified under `key`.
fn dial_raw(addr: SocketAddr, from: NodeId, to: NodeId, key: &[u8]) -> (TcpStream, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let nonce = [0x5A; frame::NONCE_BYTES];
    s.write_all(&hello_to(CLUSTER, from, to, nonce))
        .expect("hello");
    let challenge = read_frame(&mut s).expect("the acceptor answers a good Hello");
    assert_eq!(challenge.kind, FrameKind::Challenge);
    assert_eq!(challenge.payload.len(), 48);
    let (acceptor_nonce, acceptor_proof) = challenge.payload.split_at(16);
    let ids = (CLUSTER, from, to);
    let acceptor_ok =
        handshake_proof(key, ACCEPTOR_LABEL, ids, &nonce, acceptor_nonce) == acceptor_proof;
    let mut proof = Vec::new();
    frame::encode_frame(
        FrameKind::Proof,
        &handshake_proof(key, DIALER_LABEL, ids, &nonce, acceptor_nonce),
        &mut proof,
    )
    .expect("encode");
    s.write_all(&proof).expect("proof");
    (s, acceptor_ok)
}

/// Expects the peer to close `s` without sending anything more.
fn expect_eof(mut s: TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: the server answered {n} bytes"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{what}: the connection stayed open: {e}"
        ),
    }
}

#[test]
fn malformed_input_closes_the_connection_and_the_cluster_goes_on() {
    // A long handshake timeout: every close below comes from a check, not the clock.
    let c = three_nodes(|tc| tc.handshake_timeout = Duration::from_secs(60));
    c.commit(b"before", &[1, 2, 3]);
    let target = 1;
    let addr = c.addrs[&target];
    let before = c.transport(target).stats();

    let mut oversized = u32::MAX.to_le_bytes().to_vec();
    oversized.extend_from_slice(&[1, 5, 0, 0, 0, 0, 0, 0]);
    // Under the frame limit, but no Hello is that big: refused from the header alone.
    let mut big_hello = hello_bytes(CLUSTER, 2);
    big_hello[..4].copy_from_slice(&2000u32.to_le_bytes());
    big_hello.truncate(12);
    let mut bad_crc = hello_bytes(CLUSTER, 2);
    bad_crc[9] ^= 0x40;
    let mut bad_magic = Vec::new();
    frame::encode_frame(FrameKind::Hello, &[0u8; 20], &mut bad_magic).expect("encode");
    let mut not_hello = Vec::new();
    frame::encode_frame(FrameKind::Message, b"no hello first", &mut not_hello).expect("encode");
    let handshake_cases: [(&str, Vec<u8>); 9] = [
        ("garbage", b"GET / HTTP/1.1\r\nHost: raft\r\n\r\n".to_vec()),
        ("oversized length", oversized),
        ("oversized Hello", big_hello),
        ("bad crc", bad_crc),
        ("bad magic", bad_magic),
        ("wrong cluster id", hello_bytes(CLUSTER + 1, 2)),
        ("unknown node id", hello_bytes(CLUSTER, 99)),
        ("meant for another node", hello_to(CLUSTER, 2, 3, [1; 16])),
        ("no Hello first", not_hello),
    ];
    for (what, bytes) in &handshake_cases {
        expect_closed(addr, bytes, what);
    }
    // After a good Hello the acceptor challenges; a Message instead of the Proof, or
    // a wrong Proof, closes the connection.
    let mut no_proof = TcpStream::connect(addr).expect("connect");
    no_proof
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    no_proof.write_all(&hello_bytes(CLUSTER, 2)).expect("hello");
    assert_eq!(
        read_frame(&mut no_proof).map(|f| f.kind),
        Some(FrameKind::Challenge)
    );
    let mut f = Vec::new();
    frame::encode_frame(FrameKind::Message, b"no proof", &mut f).expect("encode");
    no_proof.write_all(&f).expect("write");
    expect_eof(no_proof, "a Message instead of the Proof");
    let (wrong, acceptor_ok) = dial_raw(addr, 2, target, b"not the secret");
    assert!(
        !acceptor_ok,
        "a proof under the empty key verified under another"
    );
    expect_eof(wrong, "a wrong Proof");
    // After the whole handshake: garbage, and a frame of a reserved kind.
    let (mut s, acceptor_ok) = dial_raw(addr, 2, target, b"");
    assert!(
        acceptor_ok,
        "the acceptor's proof (empty key) does not verify"
    );
    s.write_all(&[0xAB; 64]).expect("write");
    expect_eof(s, "garbage after the handshake");
    let (mut s, _) = dial_raw(addr, 3, target, b"");
    let mut f = Vec::new();
    frame::encode_frame(FrameKind::Message, b"x", &mut f).expect("encode");
    f[5] = 200;
    s.write_all(&f).expect("write");
    expect_eof(s, "reserved kind after the handshake");
    // A message frame whose payload is not a message.
    let (mut s, _) = dial_raw(addr, 2, target, b"");
    let mut f = Vec::new();
    frame::encode_frame(FrameKind::Message, &[0xFF; 16], &mut f).expect("encode");
    s.write_all(&f).expect("write");
    expect_eof(s, "undecodable message");

    let after = c.transport(target).stats();
    assert!(
        after.rejected_connections
            >= before.rejected_connections + handshake_cases.len() as u64 + 2,
        "{after:?}"
    );
    assert!(
        after.protocol_errors >= before.protocol_errors + 3,
        "{after:?}"
    );
    // Nobody panicked, the real links are intact, and the cluster commits.
    for i in 0..5 {
        c.commit(format!("after-{i}").as_bytes(), &[1, 2, 3]);
    }
    c.shutdown();
}

/// A "peer" that accepts connections and never reads from them.
struct Sink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn new() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((conn, _)) => held.push(conn),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Sink {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_peer_that_never_reads_does_not_block_the_others() {
    let sink = Sink::new();
    let (mut c, ls) = Cluster::new(2, listeners(2), &[(3, sink.addr)], |tc| {
        tc.queue_messages = 32;
        tc.write_timeout = Duration::from_secs(60);
    });
    for (i, l) in ls.into_iter().enumerate() {
        c.start(i as u64 + 1, Some(l));
    }
    c.commit(b"first", &[1, 2]);
    let leader = c.leader();
    let t = Arc::clone(c.transport(leader));
    assert!(
        wait_until(Duration::from_secs(10), || t.is_connected(3)),
        "the sink accepts connections"
    );
    // Big messages to the sink: its socket buffers fill, then its queue, then the
    // transport drops. Every send returns at once.
    let big = |i: u64| Message {
        from: leader,
        to: 3,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![Entry {
                index: i,
                term: 1,
                data: vec![7u8; 256 * 1024],
            }],
            leader_commit: 0,
            read_ctx: 0,
        },
    };
    let mut slowest = Duration::ZERO;
    let peer3 = |t: &TcpTransport| {
        t.stats()
            .peers
            .into_iter()
            .find(|p| p.id == 3)
            .expect("peer 3")
    };
    let mut sent = 0;
    for i in 1..=400 {
        let m = big(i);
        let start = Instant::now();
        t.send(m);
        slowest = slowest.max(start.elapsed());
        sent = i;
        if i % 50 == 0 && peer3(&t).dropped_queue_full > 0 {
            break;
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || peer3(&t).dropped_queue_full > 0),
        "no drops after {sent} big messages: {:?}",
        t.stats()
    );
    assert!(
        slowest < Duration::from_millis(500),
        "a send blocked for {slowest:?}"
    );
    // The other peer is unaffected: the two real nodes keep committing.
    let before = c.transport(leader).stats();
    for i in 0..10 {
        c.commit(format!("with-a-sink-{i}").as_bytes(), &[1, 2]);
    }
    let after = c.transport(leader).stats();
    let sent_to = |s: &raftkv_consensus::transport::TcpStats, id| {
        s.peers
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.messages_sent)
            .expect("peer")
    };
    let other = if leader == 1 { 2 } else { 1 };
    assert!(sent_to(&after, other) > sent_to(&before, other));
    // Still stuck, still queued, still dropping.
    let p3 = peer3(&t);
    assert!(p3.connected && p3.queued_messages > 0, "{p3:?}");
    let drops = p3.dropped_queue_full;
    for i in 0..40 {
        t.send(big(1000 + i));
    }
    assert!(peer3(&t).dropped_queue_full > drops);
    drop(t);
    c.shutdown();
    drop(sink);
}

/// Replies with "<from>:" followed by the request reversed; "slow" sleeps first.
fn echo(from: NodeId, request: Bytes) -> Bytes {
    if request.as_ref() == b"slow" {
        thread::sleep(Duration::from_millis(500));
    }
    let mut out = format!("{from}:").into_bytes();
    out.extend(request.iter().rev());
    Bytes::from(out)
}

#[test]
fn requests_and_responses_between_peers() {
    let rt = runtime();
    let ls = listeners(2);
    let mut peers: BTreeMap<NodeId, SocketAddr> = ls
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().expect("addr")))
        .collect();
    peers.insert(3, dead_addr());
    let transports: Vec<Arc<TcpTransport>> = ls
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let id = i as u64 + 1;
            let mut tc = TcpConfig::new(id, peers[&id], peers.clone()).with_cluster_id(CLUSTER);
            tc.backoff_max = Duration::from_millis(200);
            TcpTransport::start_with_listener(tc, l, rt.handle().clone()).expect("start")
        })
        .collect();
    let (t1, t2) = (&transports[0], &transports[1]);
    t2.set_request_handler(Arc::new(echo));
    assert!(wait_until(Duration::from_secs(10), || t1.is_connected(2)
        && t2.is_connected(1)));

    // Many concurrent calls, from a runtime of the caller's own.
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("caller runtime");
    let n = 300;
    let replies = caller.block_on(async {
        let calls = (0..n).map(|i| {
            let t1 = Arc::clone(t1);
            async move {
                t1.call(2, Bytes::from(format!("req-{i}")), Duration::from_secs(10))
                    .await
            }
        });
        let mut out = Vec::new();
        let mut set = tokio::task::JoinSet::new();
        for (i, call) in calls.enumerate() {
            set.spawn(async move { (i, call.await) });
        }
        while let Some(r) = set.join_next().await {
            out.push(r.expect("join"));
        }
        out
    });
    assert_eq!(replies.len(), n);
    for (i, r) in replies {
        let want: Vec<u8> =
            format!("1:{}", format!("req-{i}").chars().rev().collect::<String>()).into_bytes();
        assert_eq!(r.expect("reply").as_ref(), &want[..], "call {i}");
    }
    let s2 = t2.stats();
    assert!(s2.requests_received >= n as u64, "{s2:?}");

    caller.block_on(async {
        // No handler on node 1: an error response.
        let err = t2
            .call(1, Bytes::from_static(b"hi"), Duration::from_secs(5))
            .await
            .expect_err("no handler");
        assert!(
            matches!(&err, TcpError::Remote { to: 1, message } if message.contains("no request handler")),
            "{err}"
        );
        // Unreachable peer: fails within the timeout.
        let start = Instant::now();
        let err = t1
            .call(3, Bytes::from_static(b"hi"), Duration::from_secs(2))
            .await
            .expect_err("unreachable");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(err.to_string(), "call to node 3: not connected");
        // Unknown peer, oversized request.
        assert!(matches!(
            t1.call(9, Bytes::new(), Duration::from_secs(1)).await,
            Err(TcpError::UnknownPeer { to: 9 })
        ));
        let huge = Bytes::from(vec![0u8; t1.config().max_frame_bytes]);
        assert!(matches!(
            t1.call(2, huge, Duration::from_secs(1)).await,
            Err(TcpError::TooLarge { to: 2, .. })
        ));
        // A reply slower than the timeout.
        let err = t1
            .call(2, Bytes::from_static(b"slow"), Duration::from_millis(100))
            .await
            .expect_err("too slow");
        assert_eq!(err.to_string(), "call to node 2: timed out after 100ms");
        // The connection is still good afterwards.
        let r = t1
            .call(2, Bytes::from_static(b"abc"), Duration::from_secs(5))
            .await
            .expect("reply");
        assert_eq!(r.as_ref(), b"1:cba");
    });

    // After shutdown, calls fail at once.
    t1.shutdown();
    t1.shutdown();
    let err = caller
        .block_on(t1.call(2, Bytes::new(), Duration::from_secs(1)))
        .expect_err("shut down");
    assert!(matches!(err, TcpError::Shutdown { to: 2 }), "{err}");
    t2.shutdown();
}

#[test]
fn bind_errors_name_the_address() {
    let rt = runtime();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let peers = BTreeMap::from([(1, addr), (2, dead_addr())]);
    let err = TcpTransport::start(TcpConfig::new(1, addr, peers.clone()), rt.handle().clone())
        .expect_err("address in use");
    assert!(matches!(err, TcpError::Bind { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!("bind {addr}: ")),
        "{err}"
    );
    let mut bad = TcpConfig::new(5, addr, peers);
    bad.max_frame_bytes = 10;
    let err = TcpTransport::start(bad, rt.handle().clone()).expect_err("bad config");
    assert!(matches!(err, TcpError::Config { .. }), "{err}");
}

/// A snapshot payload that fails after `fail_at` bytes, if set.
struct Payload {
    data: std::io::Cursor<Vec<u8>>,
    meta: SnapshotMeta,
    fail_at: Option<u64>,
}

impl Read for Payload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.fail_at.is_some_and(|at| self.data.position() >= at) {
            return Err(std::io::Error::other("disk read failed"));
        }
        self.data.read(buf)
    }
}

impl raftkv_storage::SnapshotReader for Payload {
    fn meta(&self) -> SnapshotMeta {
        self.meta
    }
    fn payload_len(&self) -> u64 {
        self.data.get_ref().len() as u64
    }
}

#[test]
fn snapshot_stream_failures_are_reported_once() {
    use raftkv_consensus::transport::{SnapshotDone, SnapshotStreamError};

    let rt = runtime();
    let ls = listeners(2);
    let mut peers: BTreeMap<NodeId, SocketAddr> = ls
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().expect("addr")))
        .collect();
    peers.insert(3, dead_addr());
    let ts: Vec<Arc<TcpTransport>> = ls
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let id = i as u64 + 1;
            let tc = TcpConfig::new(id, peers[&id], peers.clone());
            TcpTransport::start_with_listener(tc, l, rt.handle().clone()).expect("start")
        })
        .collect();
    let meta = SnapshotMeta { index: 50, term: 4 };
    let stream = |to: NodeId, fail_at: Option<u64>| {
        let (tx, rx) = std::sync::mpsc::channel();
        let payload = Payload {
            data: std::io::Cursor::new(snapshot_payload(SNAPSHOT_CHUNK_BYTES * 5 + 17, 50)),
            meta,
            fail_at,
        };
        ts[0].send_snapshot(
            to,
            5,
            meta,
            1,
            Box::new(payload),
            SnapshotDone::new(move |r| tx.send(r).expect("report")),
        );
        let outcome = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("an outcome");
        assert!(rx.try_recv().is_err(), "a second outcome");
        outcome
    };
    assert!(matches!(
        stream(3, None),
        Err(SnapshotStreamError::Unreachable { to: 3 })
    ));
    assert!(matches!(
        stream(9, None),
        Err(SnapshotStreamError::Unreachable { to: 9 })
    ));
    // Node 2's transport has no node attached. (A stream to an unknown peer is
    // refused before it starts: not counted in `snapshots_sent`.)
    let r = stream(2, None);
    assert!(
        matches!(r, Err(SnapshotStreamError::Stopped { id: 2 })),
        "{r:?}"
    );

    // With a node behind it, a payload that fails midway is discarded, not installed.
    let persister = MemoryPersister::new();
    let (handle, _apply) = Node::start(
        raft_config(2, &[1, 2]),
        Arc::new(persister.clone()),
        Arc::clone(&ts[1]) as Arc<dyn Transport>,
        NodeOptions {
            tick: TICK,
            ..NodeOptions::with_seed(3)
        },
    )
    .expect("node starts");
    ts[1].attach(handle.clone());
    let r = stream(2, Some(2 * SNAPSHOT_CHUNK_BYTES as u64 + 5));
    assert!(
        matches!(
            r,
            Err(SnapshotStreamError::Io(_) | SnapshotStreamError::Aborted { .. })
        ),
        "{r:?}"
    );
    assert_eq!(persister.snapshot_meta(), None);
    // The same stream, whole, installs.
    let r = stream(2, None);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(persister.snapshot_meta(), Some(meta));
    let s = ts[0].stats();
    assert!(
        s.snapshots_installed == 1 && s.snapshots_failed == 3,
        "{s:?}"
    );

    ts[0].shutdown();
    let r = stream(2, None);
    assert!(
        matches!(r, Err(SnapshotStreamError::Aborted { .. })),
        "{r:?}"
    );
    handle.shutdown().expect("node shutdown");
    ts[1].shutdown();
}

/// Members 1 and 2 share the secret; member 3 has another one.
fn member_3_has_the_wrong_secret(tc: &mut TcpConfig) {
    let key = if tc.id == 3 { "wrong" } else { "the secret" };
    tc.secret = ClusterSecret::new(key);
}

#[test]
fn a_peer_without_the_cluster_secret_is_refused_both_ways() {
    let c = three_nodes(member_3_has_the_wrong_secret);
    // 1 and 2 form a quorum and commit; 3 never hears of it.
    let index = c.commit(b"members only", &[1, 2]);
    let refused = wait_until(Duration::from_secs(20), || {
        let s = |id| c.transport(id).stats();
        s(1).rejected_connections > 0 && s(2).rejected_connections > 0
    });
    assert!(
        refused,
        "1: {:?}\n2: {:?}",
        c.transport(1).stats(),
        c.transport(2).stats()
    );
    assert!(
        c.applied(3).last < index,
        "member 3 applied {}",
        c.applied(3).last
    );
    assert!(
        c.applied(3)
            .commands
            .values()
            .all(|cmd| cmd != b"members only"),
        "a member without the secret learned a command"
    );
    // Its own connections fail too: it accepts none of 1's or 2's Hellos either.
    assert!(c.transport(3).stats().rejected_connections > 0);
    // A raw dialer with the right key completes the handshake with member 1 and the
    // acceptor's proof verifies; with the wrong key member 1 closes the connection.
    let (_ok, acceptor_ok) = dial_raw(c.addrs[&1], 2, 1, b"the secret");
    assert!(acceptor_ok);
    let (wrong, acceptor_ok) = dial_raw(c.addrs[&1], 2, 1, b"wrong");
    assert!(!acceptor_ok);
    expect_eof(wrong, "the wrong key");
    c.shutdown();
}
