//! A cluster of real nodes on real threads, joined by the in-process network, for the
//! `node_*` tests: start/crash/restart nodes, cut links, find the leader, reach
//! agreement, and check every apply stream (order, agreement, snapshots).
//!
//! Nothing here sleeps for a fixed time to let something happen: conditions are
//! polled with a deadline ([`wait_until`]), and the deadlines are generous because
//! these tests share two busy cores.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use raftkv_consensus::node::{ApplyItem, ApplyStream, Node, NodeError, NodeHandle, NodeOptions};
use raftkv_consensus::transport::InProcessNetwork;
use raftkv_consensus::{Config, Role, Status};
use raftkv_storage::{
    Backend, MemoryPersister, NodeId, Persister, RecoveredState, Result as StorageResult,
    SnapshotMeta, SnapshotReader, SnapshotWriter, StorageConfig, StorageError, WriteBatch, codec,
};

/// The real-time length of a tick in these tests.
pub const TICK: Duration = Duration::from_millis(10);

/// Polls `cond` every few milliseconds until it holds (true) or `timeout` passes
/// (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

/// Locks a mutex, ignoring poisoning (a panicking test thread reports itself).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The Raft config the tests use: elections after 150–300 ms, heartbeats every 30 ms.
pub fn test_config(id: NodeId, n: usize) -> Config {
    let mut c = Config::new(id, (1..=n as u64).collect());
    c.election_ticks = 15;
    c.heartbeat_ticks = 3;
    c.snapshot_retry_ticks = 30;
    c
}

/// What the tests' state machine snapshots: every command applied through `index`, plus
/// `padding` bytes so that a snapshot spans several transport chunks.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapState {
    index: u64,
    commands: Vec<(u64, Vec<u8>)>,
    padding: Vec<u8>,
}

fn padding(len: usize, index: u64) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 7 + index) as u8).collect()
}

/// What one node instance's apply stream delivered.
#[derive(Debug, Default)]
pub struct Applied {
    /// The last index applied (commands, no-ops and snapshots).
    pub last: u64,
    /// Non-empty commands by index (restored from snapshots too).
    pub commands: BTreeMap<u64, Vec<u8>>,
    /// Snapshots received on the stream: (index, payload bytes).
    pub snapshots: Vec<(u64, usize)>,
    /// Items received.
    pub items: u64,
}

/// A shared record of problems found by the appliers.
pub type Errors = Arc<Mutex<Vec<String>>>;

fn report(errors: &Errors, msg: String) {
    eprintln!("APPLY ERROR: {msg}");
    lock(errors).push(msg);
}

/// A thread that consumes one node instance's apply stream and checks it.
pub struct Applier {
    pub applied: Arc<Mutex<Applied>>,
    thread: Option<JoinHandle<()>>,
}

impl Applier {
    #[allow(clippy::too_many_arguments, reason = "test harness")]
    fn spawn(
        id: NodeId,
        stream: ApplyStream,
        handle: NodeHandle,
        persister: Arc<dyn Persister>,
        committed: Arc<Mutex<BTreeMap<u64, Vec<u8>>>>,
        errors: Errors,
        snapshot_every: Option<u64>,
        snapshot_padding: usize,
    ) -> Applier {
        let applied = Arc::new(Mutex::new(Applied::default()));
        let a = Arc::clone(&applied);
        let thread = thread::Builder::new()
            .name(format!("applier-{id}"))
            .spawn(move || {
                while let Some(item) = stream.recv() {
                    let mut st = lock(&a);
                    st.items += 1;
                    match item {
                        ApplyItem::Command { index, term, data } => {
                            if index != st.last + 1 {
                                report(
                                    &errors,
                                    format!("node {id}: applied {index} after {}", st.last),
                                );
                            }
                            st.last = index;
                            if !data.is_empty() {
                                let mut c = lock(&committed);
                                match c.get(&index) {
                                    Some(other) if *other != data => report(
                                        &errors,
                                        format!("node {id}: index {index} differs between nodes"),
                                    ),
                                    Some(_) => {}
                                    None => {
                                        c.insert(index, data.clone());
                                    }
                                }
                                st.commands.insert(index, data);
                            }
                            if let Some(k) = snapshot_every
                                && index % k == 0
                            {
                                let snap = SnapState {
                                    index,
                                    commands: st
                                        .commands
                                        .iter()
                                        .map(|(i, d)| (*i, d.clone()))
                                        .collect(),
                                    padding: padding(snapshot_padding, index),
                                };
                                drop(st);
                                take_snapshot(id, &persister, &handle, index, term, &snap, &errors);
                            }
                        }
                        ApplyItem::Snapshot {
                            index,
                            term: _,
                            mut data,
                        } => {
                            if index <= st.last {
                                report(
                                    &errors,
                                    format!("node {id}: snapshot at {index} after {}", st.last),
                                );
                            }
                            let mut bytes = Vec::new();
                            if let Err(e) = data.read_to_end(&mut bytes) {
                                report(&errors, format!("node {id}: reading snapshot: {e}"));
                                continue;
                            }
                            if bytes.len() as u64 != data.payload_len() {
                                report(&errors, format!("node {id}: snapshot length mismatch"));
                            }
                            let snap: SnapState = match codec::decode(&bytes, usize::MAX) {
                                Ok(s) => s,
                                Err(e) => {
                                    report(&errors, format!("node {id}: decoding snapshot: {e}"));
                                    continue;
                                }
                            };
                            if snap.index != index
                                || snap.padding != padding(snap.padding.len(), index)
                            {
                                report(
                                    &errors,
                                    format!(
                                        "node {id}: snapshot payload is not the one for {index}"
                                    ),
                                );
                            }
                            {
                                let mut c = lock(&committed);
                                for (i, d) in &snap.commands {
                                    match c.get(i) {
                                        Some(other) if other != d => report(
                                            &errors,
                                            format!("node {id}: snapshot index {i} differs"),
                                        ),
                                        Some(_) => {}
                                        None => {
                                            c.insert(*i, d.clone());
                                        }
                                    }
                                }
                            }
                            st.commands = snap.commands.into_iter().collect();
                            st.last = index;
                            st.snapshots.push((index, bytes.len()));
                        }
                    }
                }
            })
            .expect("spawn the applier");
        Applier {
            applied,
            thread: Some(thread),
        }
    }

    /// Whether the stream ended and the thread finished.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the stream to end (the node stopped).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("the applier thread panicked");
        }
    }
}

fn take_snapshot(
    id: NodeId,
    persister: &Arc<dyn Persister>,
    handle: &NodeHandle,
    index: u64,
    term: u64,
    snap: &SnapState,
    errors: &Errors,
) {
    let meta = SnapshotMeta { index, term };
    let bytes = codec::encode(snap).expect("encode snapshot");
    let result = persister.begin_snapshot(meta).and_then(|mut w| {
        w.write_all(&bytes)
            .map_err(|e| StorageError::io("write snapshot", "test", e))?;
        w.commit()
    });
    match result {
        Ok(_) => {
            // The node may have stopped meanwhile (a crash in the test).
            let _ = handle.snapshot_taken(meta);
        }
        // An installed snapshot got there first.
        Err(StorageError::StaleSnapshot { .. }) => {}
        Err(StorageError::Poisoned { .. }) => {}
        Err(e) => report(
            errors,
            format!("node {id}: taking a snapshot at {index}: {e}"),
        ),
    }
}

/// Where a node's durable state lives across restarts.
pub enum Store {
    /// A memory persister; a crash keeps only its crash image.
    Memory(MemoryPersister),
    /// A directory for the file backend.
    File(PathBuf),
}

/// How to build a cluster.
pub struct ClusterOptions {
    pub n: usize,
    pub seed: u64,
    /// `Some(dir)`: the file backend with one subdirectory per node.
    pub file_dir: Option<PathBuf>,
    /// Each applier snapshots every this many entries.
    pub snapshot_every: Option<u64>,
    /// Bytes of padding per snapshot payload.
    pub snapshot_padding: usize,
    /// Applied to each node's config.
    pub config: fn(&mut Config),
    /// Applied to each node's options.
    pub options: fn(&mut NodeOptions),
}

impl ClusterOptions {
    /// `n` memory-backed nodes, no snapshots.
    pub fn new(n: usize, seed: u64) -> Self {
        ClusterOptions {
            n,
            seed,
            file_dir: None,
            snapshot_every: None,
            snapshot_padding: 0,
            config: |_| {},
            options: |_| {},
        }
    }
}

/// Wraps a node's persister before the node starts.
pub type Wrap = Box<dyn Fn(NodeId, Arc<dyn Persister>) -> Arc<dyn Persister> + Send>;

/// A running cluster. Node ids are `1..=n`; slot `i` holds node `i + 1`.
pub struct Cluster {
    pub n: usize,
    pub net: InProcessNetwork,
    opts: ClusterOptions,
    pub stores: Vec<Store>,
    pub handles: Vec<Option<NodeHandle>>,
    pub persisters: Vec<Option<Arc<dyn Persister>>>,
    pub appliers: Vec<Option<Applier>>,
    /// Every command any node applied, by index.
    pub committed: Arc<Mutex<BTreeMap<u64, Vec<u8>>>>,
    pub errors: Errors,
    starts: u64,
    /// Wraps each persister when set (fault injection, counting).
    pub wrap: Option<Wrap>,
}

impl Cluster {
    /// Builds and starts a cluster.
    pub fn new(opts: ClusterOptions) -> Cluster {
        let mut c = Cluster::new_stopped(opts);
        for id in 1..=c.n as u64 {
            c.start(id);
        }
        c
    }

    /// Builds a cluster with no node started.
    pub fn new_stopped(opts: ClusterOptions) -> Cluster {
        let n = opts.n;
        let stores = (1..=n as u64)
            .map(|id| match &opts.file_dir {
                Some(dir) => Store::File(dir.join(format!("node-{id}"))),
                None => Store::Memory(MemoryPersister::new()),
            })
            .collect();
        Cluster {
            n,
            net: InProcessNetwork::new(opts.seed),
            stores,
            handles: (0..n).map(|_| None).collect(),
            persisters: (0..n).map(|_| None).collect(),
            appliers: (0..n).map(|_| None).collect(),
            committed: Arc::default(),
            errors: Arc::default(),
            starts: 0,
            wrap: None,
            opts,
        }
    }

    fn slot(id: NodeId) -> usize {
        (id - 1) as usize
    }

    /// Starts node `id` on its store.
    pub fn start(&mut self, id: NodeId) {
        let persister = self.open_store(id);
        self.start_with(id, persister);
    }

    /// Starts node `id` on `persister` (replacing the store's persister).
    pub fn start_with(&mut self, id: NodeId, persister: Arc<dyn Persister>) {
        let i = Self::slot(id);
        assert!(self.handles[i].is_none(), "node {id} is running");
        let persister = match &self.wrap {
            Some(wrap) => wrap(id, persister),
            None => persister,
        };
        let mut config = test_config(id, self.n);
        (self.opts.config)(&mut config);
        self.starts += 1;
        let mut options = NodeOptions {
            tick: TICK,
            ..NodeOptions::with_seed(
                self.opts
                    .seed
                    .wrapping_mul(1000)
                    .wrapping_add(id * 31 + self.starts),
            )
        };
        (self.opts.options)(&mut options);
        let transport = self.net.transport(id);
        let (handle, stream) =
            Node::start(config, Arc::clone(&persister), transport, options).expect("node starts");
        self.net.register(&handle);
        self.appliers[i] = Some(Applier::spawn(
            id,
            stream,
            handle.clone(),
            Arc::clone(&persister),
            Arc::clone(&self.committed),
            Arc::clone(&self.errors),
            self.opts.snapshot_every,
            self.opts.snapshot_padding,
        ));
        self.handles[i] = Some(handle);
        self.persisters[i] = Some(persister);
    }

    fn open_store(&mut self, id: NodeId) -> Arc<dyn Persister> {
        match &self.stores[Self::slot(id)] {
            Store::Memory(m) => Arc::new(m.clone()),
            Store::File(dir) => {
                std::fs::create_dir_all(dir).expect("create node dir");
                Arc::from(
                    StorageConfig::new(Backend::File, dir)
                        .open()
                        .expect("open file store"),
                )
            }
        }
    }

    /// Crashes node `id`: it is cut off, its durable state is frozen as of now
    /// (memory: a crash image; file: what is on disk), and it is stopped.
    pub fn crash(&mut self, id: NodeId) {
        let i = Self::slot(id);
        self.net.unregister(id);
        if let Store::Memory(m) = &self.stores[i] {
            let image = m.crash_image();
            self.stores[i] = Store::Memory(image);
        }
        let handle = self.handles[i].take().expect("node is running");
        handle.shutdown().expect("prompt shutdown");
        drop(handle);
        if let Some(a) = self.appliers[i].take() {
            a.join();
        }
        if let (Some(p), Store::File(_)) = (self.persisters[i].take(), &self.stores[i]) {
            // The file backend may hold its directory exclusively: wait until the old
            // instance let go of it (stream threads may hold it briefly).
            assert!(
                wait_until(Duration::from_secs(20), || Arc::strong_count(&p) == 1),
                "node {id}'s old persister is still in use"
            );
        }
    }

    /// Crash and start again.
    pub fn restart(&mut self, id: NodeId) {
        self.crash(id);
        self.start(id);
    }

    pub fn handle(&self, id: NodeId) -> &NodeHandle {
        self.handles[Self::slot(id)]
            .as_ref()
            .expect("node is running")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.handles[Self::slot(id)].is_some()
    }

    /// What node `id`'s current instance applied.
    pub fn applied(&self, id: NodeId) -> Arc<Mutex<Applied>> {
        Arc::clone(&self.applier(id).applied)
    }

    /// The applier of node `id`'s current instance.
    pub fn applier(&self, id: NodeId) -> &Applier {
        self.appliers[Self::slot(id)]
            .as_ref()
            .expect("node has an applier")
    }

    /// The persister node `id` runs on.
    pub fn persister(&self, id: NodeId) -> Arc<dyn Persister> {
        Arc::clone(
            self.persisters[Self::slot(id)]
                .as_ref()
                .expect("node is running"),
        )
    }

    /// Some node that is not in `not`.
    pub fn other_than(&self, not: &[NodeId]) -> NodeId {
        self.ids()
            .into_iter()
            .find(|id| !not.contains(id))
            .expect("enough nodes")
    }

    pub fn disconnect(&self, id: NodeId) {
        self.net.disconnect(id);
    }

    pub fn reconnect(&self, id: NodeId) {
        self.net.reconnect(id);
    }

    pub fn ids(&self) -> Vec<NodeId> {
        (1..=self.n as u64).collect()
    }

    /// Running nodes that are connected.
    pub fn live(&self) -> Vec<NodeId> {
        self.ids()
            .into_iter()
            .filter(|&id| {
                self.is_up(id) && self.handle(id).is_running() && self.net.is_connected(id)
            })
            .collect()
    }

    pub fn status(&self, id: NodeId) -> Status {
        self.handle(id).status()
    }

    /// Waits for a leader among the live nodes and returns the one of the highest
    /// term. Fails if two live nodes lead in the same term.
    pub fn leader(&self) -> NodeId {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(20), || {
            let mut by_term: BTreeMap<u64, Vec<NodeId>> = BTreeMap::new();
            for id in self.live() {
                let s = self.status(id);
                if s.role == Role::Leader {
                    by_term.entry(s.term).or_default().push(id);
                }
            }
            for (term, leaders) in &by_term {
                assert!(leaders.len() <= 1, "term {term} has leaders {leaders:?}");
            }
            found = by_term.last_key_value().map(|(_, l)| l[0]);
            found.is_some()
        });
        assert!(ok, "no leader among {:?}", self.live());
        found.expect("found")
    }

    /// No live node claims leadership.
    pub fn no_leader(&self) -> bool {
        self.live()
            .iter()
            .all(|&id| self.status(id).role != Role::Leader)
    }

    /// How many running nodes applied `index`, and the command there.
    pub fn n_committed(&self, index: u64) -> (usize, Option<Vec<u8>>) {
        let mut count = 0;
        let mut cmd = None;
        for a in self.appliers.iter().flatten() {
            let st = lock(&a.applied);
            if st.last >= index {
                count += 1;
                if let Some(d) = st.commands.get(&index) {
                    if let Some(c) = &cmd {
                        assert_eq!(c, d, "nodes applied different commands at {index}");
                    }
                    cmd = Some(d.clone());
                }
            }
        }
        (count, cmd)
    }

    /// Proposes `cmd` to a live leader until it is applied by at least `expected`
    /// nodes; returns its index (the lab's `one()`). With `retry` false, a first
    /// accepted proposal that does not commit is a failure.
    pub fn one(&self, cmd: &[u8], expected: usize, retry: bool) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            let mut index = None;
            for id in self.live() {
                if let Ok((i, _)) = self.handle(id).propose(cmd.to_vec()) {
                    index = Some(i);
                    break;
                }
            }
            if let Some(index) = index {
                let ok = wait_until(Duration::from_secs(5), || {
                    let (n, c) = self.n_committed(index);
                    n >= expected && c.as_deref() == Some(cmd)
                });
                if ok {
                    return index;
                }
                assert!(retry, "one({cmd:?}) failed to reach agreement at {index}");
            } else {
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("one({cmd:?}) failed to reach agreement");
    }

    /// Fails the test if an applier found a problem.
    pub fn check_errors(&self) {
        let errors = lock(&self.errors);
        assert!(errors.is_empty(), "apply stream errors: {errors:?}");
    }

    /// Stops every node and checks the apply streams.
    pub fn shutdown(&mut self) {
        for id in self.ids() {
            let i = Self::slot(id);
            if let Some(h) = self.handles[i].take() {
                self.net.unregister(id);
                h.shutdown().expect("prompt shutdown");
            }
            if let Some(a) = self.appliers[i].take() {
                a.join();
            }
            self.persisters[i] = None;
        }
        self.check_errors();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for h in self.handles.iter().flatten() {
            let _ = h.shutdown();
        }
        for id in self.ids() {
            self.net.unregister(id);
        }
    }
}

/// A persister wrapper that counts calls and can slow writes down (like an fsync).
#[derive(Debug)]
pub struct CountingPersister {
    pub inner: Arc<dyn Persister>,
    pub writes: AtomicU64,
    pub entries: AtomicU64,
    pub write_delay: Duration,
    /// Sleep before each write into a snapshot being received (a slow disk).
    pub snapshot_write_delay: Duration,
    pub snapshot_commits: Arc<AtomicU64>,
}

impl CountingPersister {
    pub fn new(inner: Arc<dyn Persister>, write_delay: Duration) -> Self {
        CountingPersister {
            inner,
            writes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            write_delay,
            snapshot_write_delay: Duration::ZERO,
            snapshot_commits: Arc::default(),
        }
    }
}

struct SlowSnapshotWriter {
    inner: Box<dyn SnapshotWriter>,
    delay: Duration,
    commits: Arc<AtomicU64>,
}

impl Write for SlowSnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        thread::sleep(self.delay);
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl SnapshotWriter for SlowSnapshotWriter {
    fn commit(self: Box<Self>) -> StorageResult<raftkv_storage::SnapshotInfo> {
        let info = self.inner.commit()?;
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(info)
    }
}

impl Persister for CountingPersister {
    fn recover(&self) -> StorageResult<RecoveredState> {
        self.inner.recover()
    }
    fn write(&self, batch: &WriteBatch) -> StorageResult<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.entries
            .fetch_add(batch.entries.len() as u64, Ordering::SeqCst);
        if !self.write_delay.is_zero() {
            thread::sleep(self.write_delay);
        }
        self.inner.write(batch)
    }
    fn begin_snapshot(&self, meta: SnapshotMeta) -> StorageResult<Box<dyn SnapshotWriter>> {
        Ok(Box::new(SlowSnapshotWriter {
            inner: self.inner.begin_snapshot(meta)?,
            delay: self.snapshot_write_delay,
            commits: Arc::clone(&self.snapshot_commits),
        }))
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
        self.inner.backend_name()
    }
}

/// Makes `NodeError` usable in `matches!` without importing it in every file.
pub fn is_stopped(e: &NodeError) -> bool {
    matches!(e, NodeError::Stopped { .. })
}
