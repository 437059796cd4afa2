//! A port of the MIT 6.5840 (2025) KV lab tester (`kvraft1/test.go`, `kvtest1/kvtest.go`)
//! onto raftkv's [`LocalCluster`]: GenericTest (the OnePut client loop,
//! CheckPutConcurrent, a linearizability check of the cumulative history after every
//! iteration), GenericTestSpeed, the partitioner, crash-all/restart-all and the
//! LogSize/SnapshotSize checks.
//!
//! Mapping of the lab's machinery:
//! * `MakeClerk`/`MakeClerkTo(p)`: a [`Clerk`] over a [`ClusterClient`] that reaches all
//!   members or only `p`. On an unreliable network each clerk loses 10 % of its
//!   requests and 10 % of its replies (a lost reply has still executed), and the Raft
//!   network drops 10 % of its messages. The lab's 0–26 ms request delay is not modelled.
//! * Crash: [`LocalCluster::crash`] (memory members restart from a crash image, file and
//!   RocksDB members reopen their directory), which is the lab's shut-down-and-copy.
//! * `LogSize()`/`SnapshotSize()`: [`LocalCluster::max_raft_state_size`] and
//!   [`LocalCluster::max_snapshot_size`] over the running members (the tests measure
//!   when all members run).
//! * Porcupine: [`check_operations_parallel`] with the [`KvModel`] and a 1 s timeout;
//!   `Unknown` passes with a message, as in the lab. The model is stricter than the
//!   lab's: a Get's version is checked as well as its value.
//! * Clerks retry until `CLERK_DEADLINE` (the lab's clerk retries forever); any
//!   operation that takes that long fails the test, so a hang fails instead of blocking
//!   CI.
//!
//! Each test prints its seed, taken from `RAFTKV_KVLAB_SEED` or else the clock. The seed
//! drives the harness's choices (keys, partitions, loss draws, node RNGs), but threads
//! are real and scheduling is not, so replaying a seed is best effort: it reproduces the
//! choices, not the interleaving.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_kvservice::clerk::{Clerk, ClerkConfig, ClerkError, ClerkTransport};
use raftkv_kvservice::cluster::{ClusterClient, ClusterConfig, ClusterStorage, LocalCluster};
use raftkv_kvservice::command::{Command, Reply};
use raftkv_kvservice::error::KvError;
use raftkv_kvservice::linearizability::{
    CheckResult, KvInput, KvModel, KvOutput, Operation, UNKNOWN_RETURN, check_operations_parallel,
    explain,
};
use raftkv_storage::{Backend, NodeId, StorageConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The lab's iterations per GenericTest.
pub const NITER: usize = 3;
/// The lab's seconds of client activity per iteration.
pub const NSEC: Duration = Duration::from_secs(1);
/// The lab's `linearizabilityCheckTimeout`.
pub const LINEARIZABILITY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// The lab's `ElectionTimeout`, slept after healing and before restarting.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one clerk operation may take before the test fails (the lab retries
/// forever; we bound it so a hang fails the test).
pub const CLERK_DEADLINE: Duration = Duration::from_secs(20);
/// Loss probability of an unreliable network (the lab drops 10 % of requests and 10 %
/// of replies).
pub const UNRELIABLE_LOSS: f64 = 0.1;
/// The lab's NKEYS for random-key tests.
pub const NKEYS: usize = 100;

/// Where members keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// [`ClusterStorage::Memory`].
    Memory,
    /// The file backend in a temporary directory.
    File,
    /// RocksDB in a temporary directory.
    #[cfg(feature = "rocksdb")]
    Rocksdb,
}

/// The seed of this test: `RAFTKV_KVLAB_SEED`, or else the clock.
pub fn seed() -> u64 {
    match std::env::var("RAFTKV_KVLAB_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("RAFTKV_KVLAB_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "raftkv-kvlab-{name}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Settings of one test (the arguments of the lab's `MakeTest`).
#[derive(Debug, Clone, Copy)]
pub struct LabConfig {
    /// Member count.
    pub servers: u64,
    /// Lossy network and clerks.
    pub unreliable: bool,
    /// Crash and restart all members after each iteration.
    pub crash: bool,
    /// Run the partitioner.
    pub partitions: bool,
    /// `maxraftstate` (−1: no snapshots).
    pub maxraftstate: i64,
    /// Clients pick among `NKEYS` keys instead of hammering "k".
    pub randomkeys: bool,
    /// Storage backend.
    pub storage: StorageKind,
}

impl LabConfig {
    /// Reliable, no crash, no partitions, no snapshots, memory.
    pub fn new(servers: u64) -> LabConfig {
        LabConfig {
            servers,
            unreliable: false,
            crash: false,
            partitions: false,
            maxraftstate: -1,
            randomkeys: false,
            storage: StorageKind::Memory,
        }
    }
}

/// The cumulative client history of a test.
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Operation<KvInput, KvOutput>>>,
}

impl History {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn push(&self, op: Operation<KvInput, KvOutput>) {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
    }

    fn snapshot(&self) -> Vec<Operation<KvInput, KvOutput>> {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A clerk's transport: a shared [`ClusterClient`], so that the test can change what it
/// reaches while the clerk runs (the lab's `ConnectClnt`).
#[derive(Clone)]
pub struct LabTransport(Arc<ClusterClient>);

impl ClerkTransport for LabTransport {
    fn servers(&self) -> Vec<NodeId> {
        self.0.servers()
    }

    fn call(&self, server: NodeId, cmd: &Command) -> Option<Result<Reply, KvError>> {
        self.0.call(server, cmd)
    }
}

/// A test's view of a running cluster, its seed and its history.
pub struct Lab {
    /// The cluster (dropped before the directory).
    pub cluster: Arc<LocalCluster>,
    /// The test's settings.
    pub config: LabConfig,
    /// The seed.
    pub seed: u64,
    /// Test binary and test name, for the replay hint.
    file: &'static str,
    name: &'static str,
    rng: Mutex<SmallRng>,
    next_client: AtomicU64,
    /// Every recorded Get and Put.
    pub history: Arc<History>,
    started: Instant,
    _dir: Option<TempDir>,
}

impl Lab {
    /// Starts `config.servers` members and waits for a leader.
    pub fn start(file: &'static str, name: &'static str, config: LabConfig) -> Lab {
        Lab::start_with(file, name, config, |_| {})
    }

    /// [`start`](Self::start), with `tweak` applied to the cluster's settings first.
    pub fn start_with(
        file: &'static str,
        name: &'static str,
        config: LabConfig,
        tweak: impl FnOnce(&mut ClusterConfig),
    ) -> Lab {
        let seed = seed();
        eprintln!(
            "{name}: seed {seed} (replay, best effort: RAFTKV_KVLAB_SEED={seed} cargo test -p raftkv-kvservice --test {file} {name}); {config:?}"
        );
        let (storage, dir) = match config.storage {
            StorageKind::Memory => (ClusterStorage::Memory, None),
            StorageKind::File => dir_storage(name, Backend::File),
            #[cfg(feature = "rocksdb")]
            StorageKind::Rocksdb => dir_storage(name, Backend::Rocksdb),
        };
        let mut cc = ClusterConfig::new(config.servers, storage);
        cc.seed = seed;
        cc.rsm.max_raft_state = config.maxraftstate;
        tweak(&mut cc);
        let cluster = Arc::new(LocalCluster::start(cc).expect("start the cluster"));
        if config.unreliable {
            cluster.network().set_drop_probability(UNRELIABLE_LOSS);
        }
        let lab = Lab {
            cluster,
            config,
            seed,
            file,
            name,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            next_client: AtomicU64::new(1),
            history: Arc::new(History {
                start: Instant::now(),
                ops: Mutex::new(Vec::new()),
            }),
            started: Instant::now(),
            _dir: dir,
        };
        if let Err(e) = lab.cluster.wait_ready(Duration::from_secs(20)) {
            lab.fail(&format!("no leader: {e}"));
        }
        lab
    }

    /// Fails the test with `msg`, the seed and how to replay it.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{}: {msg}\n  seed {}; replay (best effort, threads are real): RAFTKV_KVLAB_SEED={} cargo test -p raftkv-kvservice --test {} {}",
            self.name, self.seed, self.seed, self.file, self.name
        )
    }

    /// Asserts `cond`, failing with `msg` otherwise.
    pub fn check(&self, cond: bool, msg: impl FnOnce() -> String) {
        if !cond {
            self.fail(&msg());
        }
    }

    /// A random number from the test's RNG.
    pub fn rand_u64(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .r#gen()
    }

    /// Member ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.cluster.ids().to_vec()
    }

    /// A clerk reaching every member (the lab's `MakeClerk`).
    pub fn clerk(&self) -> LabClerk {
        self.clerk_to(&self.ids())
    }

    /// A clerk reaching only `members` (the lab's `MakeClerkTo`).
    pub fn clerk_to(&self, members: &[NodeId]) -> LabClerk {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let client = Arc::new(ClusterClient::new(Arc::clone(&self.cluster)));
        client.reach_only(members);
        if self.config.unreliable {
            client.set_loss(UNRELIABLE_LOSS, self.seed ^ id.wrapping_mul(0x9e37_79b9));
        }
        let config = ClerkConfig {
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(100),
            deadline: Some(CLERK_DEADLINE),
        };
        LabClerk {
            id,
            clerk: Clerk::new(LabTransport(Arc::clone(&client)), id, config),
            client,
            history: Arc::clone(&self.history),
            name: self.name,
            seed: self.seed,
            file: self.file,
        }
    }

    /// Crashes every member, sleeps 1 s, restarts every member (the lab's
    /// `ShutdownServers`/`StartServers`).
    pub fn crash_restart_all(&self) {
        for id in self.ids() {
            self.cluster.crash(id);
        }
        std::thread::sleep(ELECTION_TIMEOUT);
        for id in self.ids() {
            if let Err(e) = self.cluster.restart(id) {
                self.fail(&format!("restart member {id}: {e}"));
            }
        }
    }

    /// Checks the cumulative history with the KV model and a 1 s timeout (`Unknown`
    /// passes with a message, as in the lab).
    pub fn check_linearizable(&self) {
        let ops = self.history.snapshot();
        let t = Instant::now();
        let result =
            check_operations_parallel(&KvModel, &ops, Some(LINEARIZABILITY_CHECK_TIMEOUT), 0);
        match &result {
            CheckResult::Ok => eprintln!(
                "{}: history of {} operations is linearizable (checked in {:?})",
                self.name,
                ops.len(),
                t.elapsed()
            ),
            CheckResult::Unknown => eprintln!(
                "{}: linearizability check timed out, assuming history is ok ({} operations)",
                self.name,
                ops.len()
            ),
            CheckResult::Illegal { .. } => self.fail(&format!(
                "history is not linearizable:\n{}",
                explain(&KvModel, &ops, &result)
            )),
        }
    }

    /// After an iteration: with `maxraftstate > 0`, `LogSize() <= bound_factor *
    /// maxraftstate`; with `maxraftstate = -1`, `SnapshotSize() == 0`.
    pub fn check_sizes(&self, bound_factor: i64) {
        let m = self.config.maxraftstate;
        if m > 0 {
            let size = self.cluster.max_raft_state_size();
            let bound = (bound_factor * m) as u64;
            eprintln!("{}: LogSize {size} (bound {bound})", self.name);
            self.check(size <= bound, || {
                format!("logs were not trimmed ({size} > {bound_factor}*{m} = {bound})")
            });
        } else {
            let size = self.cluster.max_snapshot_size();
            self.check(size == 0, || {
                format!("snapshot too large ({size} bytes), should not have snapshotted with maxraftstate = {m}")
            });
        }
    }

    /// Runs a partitioner until the returned stopper is stopped: after 1 s, it splits the
    /// members at random into two sides and re-splits every 1.0–1.2 s.
    pub fn spawn_partitioner(&self) -> Partitioner {
        let stop = Arc::new(AtomicBool::new(false));
        let cluster = Arc::clone(&self.cluster);
        let ids = self.ids();
        let mut rng = SmallRng::seed_from_u64(self.rand_u64());
        let s = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let sleep = |d: Duration| {
                let until = Instant::now() + d;
                while Instant::now() < until {
                    if s.load(Ordering::Relaxed) {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                true
            };
            if !sleep(Duration::from_secs(1)) {
                return;
            }
            loop {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for &id in &ids {
                    if rng.gen_bool(0.5) {
                        a.push(id);
                    } else {
                        b.push(id);
                    }
                }
                cluster.partition(&[&a, &b]);
                if !sleep(Duration::from_millis(1000 + rng.gen_range(0..200))) {
                    return;
                }
            }
        });
        Partitioner {
            stop,
            handle: Some(handle),
        }
    }

    /// The lab's `GenericTest` with `nclients` clients.
    pub fn generic_test(&self, nclients: usize) {
        let c = self.config;
        let keys: Vec<String> = if c.randomkeys {
            (0..NKEYS).map(|i| format!("k{i}")).collect()
        } else {
            vec!["k".to_string()]
        };
        let reliable = !c.unreliable && !c.crash && !c.partitions;
        // Cumulative over the iterations, as the lab's `res`.
        let (mut nok, mut nmaybe) = (0, 0);
        for iter in 0..NITER {
            let done = Arc::new(AtomicBool::new(false));
            let clients: Vec<_> = (0..nclients)
                .map(|cli| {
                    let mut ck = self.clerk();
                    let done = Arc::clone(&done);
                    let keys = keys.clone();
                    let mut rng = SmallRng::seed_from_u64(self.rand_u64());
                    std::thread::spawn(move || {
                        let mut versions = vec![0u64; keys.len()];
                        let (mut nok, mut nmaybe) = (0u64, 0u64);
                        while !done.load(Ordering::Relaxed) {
                            let k = if keys.len() > 1 {
                                rng.gen_range(0..keys.len())
                            } else {
                                0
                            };
                            let (ver, ok) = ck.one_put(cli, &keys[k], versions[k]);
                            versions[k] = ver;
                            if ok {
                                nok += 1;
                            } else {
                                nmaybe += 1;
                            }
                        }
                        (nok, nmaybe)
                    })
                })
                .collect();
            let partitioner = c.partitions.then(|| self.spawn_partitioner());
            std::thread::sleep(NSEC);
            done.store(true, Ordering::Relaxed);
            for h in clients {
                match h.join() {
                    Ok((a, b)) => {
                        nok += a;
                        nmaybe += b;
                    }
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
            eprintln!(
                "{}: after iteration {iter}: {nok} puts ok, {nmaybe} maybe in total",
                self.name
            );
            if !c.randomkeys {
                // CheckPutConcurrent.
                let mut ck = self.clerk();
                let (_, ver) = ck.get_ok("k");
                if reliable {
                    self.check(ver == nok, || {
                        format!("wrong number of puts: server has {ver}, clients had {nok} ok")
                    });
                } else {
                    self.check(ver <= nok + nmaybe, || {
                        format!("wrong number of puts: server has {ver}, clients had {nok} ok + {nmaybe} maybe")
                    });
                }
            }
            self.check_linearizable();
            if let Some(p) = partitioner {
                p.stop();
                self.cluster.heal();
                std::thread::sleep(ELECTION_TIMEOUT);
            }
            if c.crash {
                self.crash_restart_all();
            }
            self.check_sizes(8);
        }
        eprintln!("{}: passed in {:?}", self.name, self.started.elapsed());
    }

    /// The lab's `GenericTestSpeed`: 1000 sequential puts, ≤ 33.3 ms each on average.
    pub fn generic_test_speed(&self) {
        const NOPS: u64 = 1000;
        let mut ck = self.clerk();
        // Wait for a leader.
        ck.get("x");
        let t = Instant::now();
        for i in 0..NOPS {
            match ck.put("k", &i.to_string(), i) {
                Ok(()) => {}
                Err(e) => self.fail(&format!("put {i} failed: {e:?}")),
            }
        }
        let dur = t.elapsed();
        let (_, ver) = ck.get_ok("k");
        self.check(ver == NOPS, || {
            format!("Get wrong version {ver}, want {NOPS}")
        });
        let limit = Duration::from_millis(100) * NOPS as u32 / 3;
        eprintln!(
            "{}: {NOPS} puts in {dur:?} ({:?}/op; limit {:?}/op)",
            self.name,
            dur / NOPS as u32,
            limit / NOPS as u32
        );
        self.check(dur <= limit, || {
            format!(
                "Operations completed too slowly {:?}/op > {:?}/op",
                dur / NOPS as u32,
                limit / NOPS as u32
            )
        });
        eprintln!("{}: passed in {:?}", self.name, self.started.elapsed());
    }

    /// Prints how long the test took.
    pub fn passed(&self) {
        eprintln!("{}: passed in {:?}", self.name, self.started.elapsed());
    }
}

fn dir_storage(name: &str, backend: Backend) -> (ClusterStorage, Option<TempDir>) {
    let dir = TempDir::new(name);
    let storage = ClusterStorage::Dir {
        base: dir.0.clone(),
        config: StorageConfig::new(backend, dir.0.clone()),
    };
    (storage, Some(dir))
}

/// A running partitioner.
pub struct Partitioner {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Partitioner {
    /// Stops re-splitting (the partition in place stays until healed).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Partitioner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The result of a recorded Put, as the lab's clerk reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(clippy::enum_variant_names, reason = "the lab's error names")]
pub enum PutErr {
    /// The version did not match; the put certainly did not apply.
    ErrVersion,
    /// Absent key and a non-zero version.
    ErrNoKey,
    /// Maybe applied.
    ErrMaybe,
}

/// A clerk whose Gets and Puts are recorded in the test's history.
pub struct LabClerk {
    /// The clerk's client id (the lab's `me` in the history).
    pub id: u64,
    clerk: Clerk<LabTransport>,
    client: Arc<ClusterClient>,
    history: Arc<History>,
    name: &'static str,
    seed: u64,
    file: &'static str,
}

impl LabClerk {
    fn fail(&self, msg: &str) -> ! {
        panic!(
            "{}: {msg}\n  seed {}; replay (best effort, threads are real): RAFTKV_KVLAB_SEED={} cargo test -p raftkv-kvservice --test {} {}",
            self.name, self.seed, self.seed, self.file, self.name
        )
    }

    /// The clerk's transport, to change what it reaches (the lab's `ConnectClnt`)
    /// while the clerk runs on another thread.
    pub fn transport(&self) -> Arc<ClusterClient> {
        Arc::clone(&self.client)
    }

    /// A recorded Get: `(value, version)`, `None` when the key is absent.
    pub fn get(&mut self, key: &str) -> Option<(String, u64)> {
        let call = self.history.now();
        let t = Instant::now();
        let r = self.clerk.get(Bytes::copy_from_slice(key.as_bytes()));
        let input = KvInput::get(key);
        match r {
            Ok((Some(v), ver)) => {
                let ret = self.history.now();
                self.history.push(Operation::new(
                    self.id,
                    input,
                    call,
                    KvOutput::value(v.to_vec(), ver),
                    ret,
                ));
                Some((String::from_utf8_lossy(&v).into_owned(), ver))
            }
            Ok((None, _)) => {
                let ret = self.history.now();
                self.history.push(Operation::new(
                    self.id,
                    input,
                    call,
                    KvOutput::ErrNoKey,
                    ret,
                ));
                None
            }
            Err(e) => {
                self.history.push(Operation::new(
                    self.id,
                    input,
                    call,
                    KvOutput::Unknown,
                    UNKNOWN_RETURN,
                ));
                self.fail(&format!(
                    "Get({key}) did not complete in {:?}: {e}",
                    t.elapsed()
                ))
            }
        }
    }

    /// A recorded Get that must find the key.
    pub fn get_ok(&mut self, key: &str) -> (String, u64) {
        match self.get(key) {
            Some(it) => it,
            None => self.fail(&format!("Get({key}) returned ErrNoKey")),
        }
    }

    /// A recorded Put(key, value, version), as the lab's clerk reports it.
    pub fn put(&mut self, key: &str, value: &str, version: u64) -> Result<(), PutErr> {
        let call = self.history.now();
        let t = Instant::now();
        let r = self.clerk.put_if(
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
            version,
        );
        let ret = self.history.now();
        let input = KvInput::put(key, value, version);
        let (output, result) = match r {
            Ok(_) => (KvOutput::Ok, Ok(())),
            Err(ClerkError::ErrVersion { .. }) => (KvOutput::ErrVersion, Err(PutErr::ErrVersion)),
            Err(ClerkError::ErrNoKey) => (KvOutput::ErrNoKey, Err(PutErr::ErrNoKey)),
            Err(ClerkError::ErrMaybe) if t.elapsed() >= CLERK_DEADLINE => {
                self.history.push(Operation::new(
                    self.id,
                    input,
                    call,
                    KvOutput::Unknown,
                    UNKNOWN_RETURN,
                ));
                self.fail(&format!(
                    "Put({key}, {value}, {version}) did not complete in {:?}",
                    t.elapsed()
                ))
            }
            Err(ClerkError::ErrMaybe) => (KvOutput::ErrMaybe, Err(PutErr::ErrMaybe)),
            Err(e @ ClerkError::Timeout(_)) => {
                self.fail(&format!("Put({key}, {value}, {version}): {e}"))
            }
        };
        self.history
            .push(Operation::new(self.id, input, call, output, ret));
        result
    }

    /// The lab's `PutAtLeastOnce`: walks the version up through ErrVersion/ErrMaybe
    /// until a put returns OK; returns the version after it.
    pub fn put_at_least_once(&mut self, key: &str, value: &str, mut ver: u64) -> u64 {
        loop {
            match self.put(key, value, ver) {
                Ok(()) => return ver + 1,
                Err(PutErr::ErrMaybe | PutErr::ErrVersion) => ver += 1,
                // ErrNoKey is tolerated while ver == 0, as in the lab.
                Err(_) if ver == 0 => {}
                Err(e) => self.fail(&format!("PutAtLeastOnce({key}, {value}): {e:?}")),
            }
        }
    }

    /// The lab's `CheckGet`: the exact value and version.
    pub fn check_get(&mut self, key: &str, value: &str, version: u64) {
        let got = self.get(key);
        if got.as_ref().map(|(v, ver)| (v.as_str(), *ver)) != Some((value, version)) {
            self.fail(&format!(
                "Get({key}) returned {got:?}, want ({value:?}, {version})"
            ));
        }
    }

    /// The lab's `OnePut`: puts `{me}:{ver}` at `ver` until it returns OK or ErrMaybe;
    /// returns the version read back and whether the put was OK.
    pub fn one_put(&mut self, me: usize, key: &str, mut ver: u64) -> (u64, bool) {
        loop {
            let value = format!("{me}:{ver}");
            let err = self.put(key, &value, ver);
            if let Err(PutErr::ErrNoKey) = err {
                self.fail(&format!("Put({key}, {ver}): wrong error ErrNoKey"));
            }
            let (got, ver0) = self.get_ok(key);
            // The lab checks `e.Id != me && e.V != ver`; a put answered OK whose
            // successor version we read must be exactly ours, so we check both fields.
            if err.is_ok() && ver0 == ver + 1 && got != value {
                self.fail(&format!(
                    "Get({key}) at version {ver0} after our OK put returned {got:?}, want {value:?}"
                ));
            }
            ver = ver0;
            match err {
                Ok(()) => return (ver, true),
                Err(PutErr::ErrMaybe) => return (ver, false),
                Err(_) => {}
            }
        }
    }
}
