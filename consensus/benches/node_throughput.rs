//! Throughput of a 3-node cluster on real threads: how many proposals per second
//! commit (are applied on the leader), through the node runtime and the in-process
//! transport, with the memory backend and with the file backend syncing every write
//! (`Durability::Immediate`: one fdatasync per `Persister::write`).
//!
//! Two ways of proposing 16-byte commands:
//! * `batched`: 4 proposer threads, each sending 256 proposals per
//!   `NodeHandle::propose_batch` round trip, back to back (pipelined: a proposer does
//!   not wait for its entries to commit before sending more);
//! * `concurrent`: 32 threads each calling `NodeHandle::propose` in a loop, so group
//!   commit has to come from the driver batching what queued up meanwhile.
//!
//! Each node's apply stream is consumed by a thread that, like a real service,
//! snapshots every 50 000 entries so that logs stay bounded. After each backend the
//! bench prints the overall rate and how many entries the leader's average write (so
//! one fdatasync, for the file backend) carried.
//!
//! `RAFTKV_BENCH_QUICK=1` shortens the measurement; `-- --test` runs each case once.
//! The file backend's directory is a temporary directory under `RAFTKV_BENCH_DIR` if
//! set (to measure a particular disk), else under the system's temporary directory.
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raftkv_consensus::node::{Node, NodeError, NodeHandle, NodeOptions};
use raftkv_consensus::transport::InProcessNetwork;
use raftkv_consensus::{Config, Role};
use raftkv_storage::{
    Backend, MemoryPersister, Persister, RecoveredState, Result as StorageResult, SnapshotMeta,
    SnapshotReader, SnapshotWriter, StorageConfig, WriteBatch,
};

const NODES: u64 = 3;
const PAYLOAD: usize = 16;
const SNAPSHOT_EVERY: u64 = 50_000;

fn quick() -> bool {
    std::env::var("RAFTKV_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// Counts writes and the entries they carry; everything else passes through.
#[derive(Debug)]
struct Counted {
    inner: Box<dyn Persister>,
    writes: AtomicU64,
    entries: AtomicU64,
}

impl Persister for Counted {
    fn recover(&self) -> StorageResult<RecoveredState> {
        self.inner.recover()
    }
    fn write(&self, batch: &WriteBatch) -> StorageResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.entries
            .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
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
        self.inner.backend_name()
    }
}

struct BenchCluster {
    handles: Vec<NodeHandle>,
    persisters: Vec<Arc<Counted>>,
    applied: Vec<Arc<AtomicU64>>,
    consumers: Vec<JoinHandle<()>>,
    net: InProcessNetwork,
    leader: usize,
    _dir: Option<tempfile::TempDir>,
}

fn start_cluster(backend: Backend) -> Result<BenchCluster, String> {
    let dir = match backend {
        Backend::Memory => None,
        _ => Some(
            match std::env::var_os("RAFTKV_BENCH_DIR") {
                Some(parent) => tempfile::tempdir_in(parent),
                None => tempfile::tempdir(),
            }
            .map_err(|e| e.to_string())?,
        ),
    };
    let net = InProcessNetwork::new(7);
    let mut handles = Vec::new();
    let mut persisters = Vec::new();
    let mut applied = Vec::new();
    let mut consumers = Vec::new();
    for id in 1..=NODES {
        let inner: Box<dyn Persister> = match &dir {
            None => Box::new(MemoryPersister::new()),
            Some(d) => {
                let path = d.path().join(format!("node-{id}"));
                std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
                StorageConfig::new(backend, path)
                    .open()
                    .map_err(|e| format!("opening the {backend} backend: {e}"))?
            }
        };
        let counted = Arc::new(Counted {
            inner,
            writes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        });
        let persister: Arc<dyn Persister> = Arc::clone(&counted) as _;
        // The default timing: elections after 300-600 ms, heartbeats every 100 ms.
        let config = Config::new(id, (1..=NODES).collect());
        let options = NodeOptions {
            tick: Duration::from_millis(10),
            ..NodeOptions::with_seed(id)
        };
        let (h, stream) = Node::start(config, Arc::clone(&persister), net.transport(id), options)
            .map_err(|e| e.to_string())?;
        net.register(&h);
        let last = Arc::new(AtomicU64::new(0));
        let l = Arc::clone(&last);
        let hc = h.clone();
        consumers.push(thread::spawn(move || {
            let mut next_snapshot = SNAPSHOT_EVERY;
            for item in stream {
                let index = item.index();
                if index >= next_snapshot {
                    let meta = SnapshotMeta {
                        index,
                        term: item.term(),
                    };
                    if let Ok(mut w) = persister.begin_snapshot(meta)
                        && w.write_all(&index.to_le_bytes()).is_ok()
                        && w.commit().is_ok()
                    {
                        let _ = hc.snapshot_taken(meta);
                    }
                    next_snapshot = index + SNAPSHOT_EVERY;
                }
                l.store(index, Ordering::Release);
            }
        }));
        handles.push(h);
        persisters.push(counted);
        applied.push(last);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(i) = handles.iter().position(|h| h.status().role == Role::Leader) {
            break i;
        }
        if Instant::now() > deadline {
            return Err("no leader elected".into());
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(BenchCluster {
        handles,
        persisters,
        applied,
        consumers,
        net,
        leader,
        _dir: dir,
    })
}

impl BenchCluster {
    /// Waits until the leader applied `index`.
    fn wait_applied(&self, index: u64) {
        let a = &self.applied[self.leader];
        let deadline = Instant::now() + Duration::from_secs(120);
        while a.load(Ordering::Acquire) < index {
            assert!(Instant::now() < deadline, "index {index} did not commit");
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// (writes, entries written) by the leader so far.
    fn leader_writes(&self) -> (u64, u64) {
        let p = &self.persisters[self.leader];
        (
            p.writes.load(Ordering::Relaxed),
            p.entries.load(Ordering::Relaxed),
        )
    }

    fn stop(self) {
        for h in &self.handles {
            self.net.unregister(h.id());
            h.shutdown().expect("shutdown");
        }
        drop(self.handles);
        for c in self.consumers {
            c.join().expect("consumer");
        }
    }
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAYLOAD];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

/// Records an accepted proposal; `false` for one refused for backpressure (to retry).
fn accept(r: Result<(u64, u64), NodeError>, max: &AtomicU64) -> bool {
    match r {
        Ok((index, _)) => {
            max.fetch_max(index, Ordering::Relaxed);
            true
        }
        Err(NodeError::Overloaded { .. }) => false,
        Err(e) => panic!("proposal refused: {e}"),
    }
}

/// Commits `n` proposals with `threads` proposers sending `batch` per round trip
/// (`batch == 1` uses `propose`). Returns the time until the leader applied them all.
fn run(c: &BenchCluster, n: u64, threads: usize, batch: usize) -> Duration {
    let leader = &c.handles[c.leader];
    let next = Arc::new(AtomicU64::new(0));
    let max_index = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let h = leader.clone();
            let next = Arc::clone(&next);
            let max_index = Arc::clone(&max_index);
            thread::spawn(move || {
                loop {
                    let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                    if first >= n {
                        return;
                    }
                    let end = (first + batch as u64).min(n);
                    let mut todo: Vec<u64> = (first..end).collect();
                    while !todo.is_empty() {
                        if batch == 1 {
                            if accept(h.propose(payload(todo[0])), &max_index) {
                                todo.clear();
                            }
                        } else {
                            let results =
                                h.propose_batch(todo.iter().map(|&i| payload(i)).collect());
                            let mut retry = Vec::new();
                            for (i, r) in todo.into_iter().zip(results) {
                                if !accept(r, &max_index) {
                                    retry.push(i);
                                }
                            }
                            todo = retry;
                        }
                        if !todo.is_empty() {
                            thread::sleep(Duration::from_micros(100));
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("proposer");
    }
    c.wait_applied(max_index.load(Ordering::Relaxed));
    start.elapsed()
}

#[derive(Default)]
struct Totals {
    proposals: u64,
    time: Duration,
    writes: u64,
    entries: u64,
}

fn bench_backend(c: &mut Criterion, name: &str, backend: Backend) {
    let cluster = match start_cluster(backend) {
        Ok(c) => c,
        Err(e) => panic!("node_throughput/{name}: cannot start a cluster: {e}"),
    };
    let mut group = c.benchmark_group(format!("node_throughput/{name}"));
    if quick() {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
    } else {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(8));
    }
    // One "element" is one committed proposal; an iteration commits `PER_ITER`.
    const PER_ITER: u64 = 1000;
    group.throughput(Throughput::Elements(PER_ITER));
    let cases: [(&str, usize, usize); 2] = [("batched", 4, 256), ("concurrent", 32, 1)];
    let totals: Mutex<Vec<(&str, Totals)>> = Mutex::default();
    for (case, threads, batch) in cases {
        group.bench_function(case, |b| {
            b.iter_custom(|iters| {
                let n = iters * PER_ITER;
                let (w0, e0) = cluster.leader_writes();
                let took = run(&cluster, n, threads, batch);
                let (w1, e1) = cluster.leader_writes();
                let mut t = totals.lock().unwrap_or_else(PoisonError::into_inner);
                if t.last().is_none_or(|(c, _)| *c != case) {
                    t.push((case, Totals::default()));
                }
                if let Some((_, x)) = t.last_mut() {
                    x.proposals += n;
                    x.time += took;
                    x.writes += w1 - w0;
                    x.entries += e1 - e0;
                }
                took
            });
        });
    }
    group.finish();
    for (case, t) in totals.into_inner().unwrap_or_else(PoisonError::into_inner) {
        println!(
            "node_throughput/{name}/{case}: {} proposals in {:.2?} = {:.0} proposals/s committed; \
             leader: {} writes, {:.1} entries per write",
            t.proposals,
            t.time,
            t.proposals as f64 / t.time.as_secs_f64(),
            t.writes,
            t.entries as f64 / t.writes.max(1) as f64
        );
    }
    cluster.stop();
}

fn benches(c: &mut Criterion) {
    bench_backend(c, "memory", Backend::Memory);
    bench_backend(c, "file_fsync", Backend::File);
}

criterion_group!(node_throughput, benches);
criterion_main!(node_throughput);
