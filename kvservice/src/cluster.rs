//! [`LocalCluster`]: N replicas of the KV service in one process, joined by the
//! in-process transport. The embedded `raftkv::Db` runs on it, and so do the KV tests,
//! which crash and restart members the way the lab's tester does (a memory member
//! restarts from a crash image of what it had made durable; a file or RocksDB member
//! reopens its directory).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raftkv_consensus::node::NodeOptions;
use raftkv_consensus::transport::InProcessNetwork;
use raftkv_consensus::{Config, Role};
use raftkv_storage::fault::FaultPlan;
use raftkv_storage::{Backend, FilePersister, MemoryPersister, NodeId, Persister, StorageConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::clerk::ClerkTransport;
use crate::command::{Command, Reply};
use crate::error::KvError;
use crate::replica::{Replica, ReplicaConfig};
use crate::rsm::RsmConfig;

/// Where members keep their state.
#[derive(Debug, Clone)]
pub enum ClusterStorage {
    /// In memory; a crash keeps exactly what was durable (a crash image).
    Memory,
    /// Each member opens `config` with its `dir` set to `<base>/node-<id>`.
    Dir {
        /// The parent directory.
        base: PathBuf,
        /// Backend and its settings (the `dir` field is replaced per member).
        config: StorageConfig,
    },
}

/// Settings shared by every member.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Member count.
    pub members: u64,
    /// Where state lives.
    pub storage: ClusterStorage,
    /// Raft settings applied to every member (id and voters are filled in).
    pub raft: Config,
    /// Runtime settings (the seed is varied per member).
    pub node: NodeOptions,
    /// State machine settings.
    pub rsm: RsmConfig,
    /// Each member's ceiling on pending client writes
    /// ([`ReplicaConfig::max_pending_proposals`]).
    pub max_pending_proposals: usize,
    /// Seed for the network's loss draws and the members' RNGs.
    pub seed: u64,
    /// Failpoints per member, for tests: its storage (memory or file backend) and its
    /// apply loop check them. Change them for later starts with
    /// [`LocalCluster::set_faults`].
    pub faults: BTreeMap<NodeId, Arc<FaultPlan>>,
}

impl ClusterConfig {
    /// Defaults for `members` replicas on `storage`.
    pub fn new(members: u64, storage: ClusterStorage) -> Self {
        Self {
            members,
            storage,
            raft: Config::new(1, vec![1]),
            node: NodeOptions::default(),
            rsm: RsmConfig::default(),
            max_pending_proposals: crate::replica::DEFAULT_MAX_PENDING_PROPOSALS,
            seed: 1,
            faults: BTreeMap::new(),
        }
    }
}

/// A running set of replicas.
#[derive(Debug)]
pub struct LocalCluster {
    config: ClusterConfig,
    ids: Vec<NodeId>,
    network: InProcessNetwork,
    live: Mutex<BTreeMap<NodeId, Arc<Replica>>>,
    /// Memory members' durable images, kept across crashes.
    images: Mutex<BTreeMap<NodeId, MemoryPersister>>,
    restarts: Mutex<u64>,
    /// The failpoints each member starts with.
    faults: Mutex<BTreeMap<NodeId, Arc<FaultPlan>>>,
}

impl LocalCluster {
    /// Starts every member.
    pub fn start(config: ClusterConfig) -> Result<LocalCluster, KvError> {
        if config.members == 0 {
            return Err(KvError::Consensus(
                "a cluster needs at least one member".into(),
            ));
        }
        let ids: Vec<NodeId> = (1..=config.members).collect();
        let cluster = LocalCluster {
            faults: Mutex::new(config.faults.clone()),
            network: InProcessNetwork::new(config.seed),
            config,
            ids: ids.clone(),
            live: Mutex::new(BTreeMap::new()),
            images: Mutex::new(BTreeMap::new()),
            restarts: Mutex::new(0),
        };
        for id in ids {
            cluster.start_member(id)?;
        }
        Ok(cluster)
    }

    /// Member ids.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The network joining the members (for partitions and loss).
    pub fn network(&self) -> &InProcessNetwork {
        &self.network
    }

    /// The running instance of member `id`.
    pub fn replica(&self, id: NodeId) -> Option<Arc<Replica>> {
        self.live.lock().get(&id).cloned()
    }

    /// The member that leads in the highest term, among running members.
    pub fn leader(&self) -> Option<NodeId> {
        self.live
            .lock()
            .values()
            .map(|r| r.node().status())
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.id)
    }

    /// Waits until some running member leads and can serve a linearizable read.
    pub fn wait_ready(&self, timeout: Duration) -> Result<NodeId, KvError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(id) = self.leader()
                && let Some(r) = self.replica(id)
                && let Ok(index) = r.node().read_index(Duration::from_millis(500))
                && r.rsm()
                    .wait_applied(index, Duration::from_millis(500))
                    .is_ok()
            {
                return Ok(id);
            }
            // A member that cannot load its state never will: say why now.
            for &id in self.ids() {
                if let Some(r) = self.replica(id)
                    && let Some(reason) = r.rsm().load_progress().status().error
                {
                    return Err(KvError::Consensus(format!(
                        "member {id} could not load its state: {reason}"
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(KvError::Timeout {
                    what: "a leader",
                    waited_ms: timeout.as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Serves `cmd` at member `id` (as its network server would).
    pub fn handle(&self, id: NodeId, cmd: &Command) -> Result<Reply, KvError> {
        match self.replica(id) {
            Some(r) => r.handle(cmd),
            None => Err(KvError::Shutdown),
        }
    }

    /// Crashes member `id`: it stops at once and whatever it had not made durable is
    /// lost.
    pub fn crash(&self, id: NodeId) {
        let Some(replica) = self.live.lock().remove(&id) else {
            return;
        };
        self.network.unregister(id);
        if let ClusterStorage::Memory = self.config.storage {
            // Freeze what is durable now; anything the stopping instance still writes
            // goes to the old persister, which nobody reads again.
            let mut images = self.images.lock();
            if let Some(image) = images.get(&id) {
                let frozen = image.crash_image();
                images.insert(id, frozen);
            }
        }
        replica.shutdown();
    }

    /// Restarts a crashed member from its durable state.
    pub fn restart(&self, id: NodeId) -> Result<(), KvError> {
        if self.live.lock().contains_key(&id) {
            return Ok(());
        }
        *self.restarts.lock() += 1;
        self.start_member(id)
    }

    /// Sets the failpoints member `id` runs with from its next start (`None`: none).
    pub fn set_faults(&self, id: NodeId, plan: Option<Arc<FaultPlan>>) {
        let mut faults = self.faults.lock();
        match plan {
            Some(p) => faults.insert(id, p),
            None => faults.remove(&id),
        };
    }

    /// Splits the members into `groups` (see [`InProcessNetwork::partition`]); members
    /// listed in no group are isolated. Clients are not affected: restrict them with
    /// [`ClusterClient::reach_only`].
    pub fn partition(&self, groups: &[&[NodeId]]) {
        self.network.partition(groups);
    }

    /// Removes the partition set by [`partition`](Self::partition).
    pub fn heal(&self) {
        self.network.heal();
    }

    /// The largest Raft state (log and hard state) among running members, in bytes (the
    /// lab's `LogSize()`).
    pub fn max_raft_state_size(&self) -> u64 {
        self.live
            .lock()
            .values()
            .map(|r| r.persister().raft_state_size())
            .max()
            .unwrap_or(0)
    }

    /// The largest snapshot among running members, in bytes (the lab's
    /// `SnapshotSize()`).
    pub fn max_snapshot_size(&self) -> u64 {
        self.live
            .lock()
            .values()
            .map(|r| r.persister().snapshot_size())
            .max()
            .unwrap_or(0)
    }

    /// Stops every member.
    pub fn shutdown(&self) {
        let members: Vec<_> = std::mem::take(&mut *self.live.lock())
            .into_values()
            .collect();
        for r in &members {
            self.network.unregister(r.node().id());
        }
        for r in members {
            r.shutdown();
        }
    }

    fn persister(
        &self,
        id: NodeId,
        faults: Option<Arc<FaultPlan>>,
    ) -> Result<Arc<dyn Persister>, KvError> {
        match &self.config.storage {
            ClusterStorage::Memory => {
                let mut images = self.images.lock();
                let p = images
                    .entry(id)
                    .or_default()
                    .crash_image()
                    .with_plan(faults);
                images.insert(id, p.clone());
                Ok(Arc::new(p))
            }
            ClusterStorage::Dir { base, config } => {
                let mut c = config.clone();
                c.dir = Some(base.join(format!("node-{id}")));
                if c.backend == Backend::Memory {
                    return Err(KvError::Consensus(
                        "ClusterStorage::Dir needs a file or rocksdb backend".into(),
                    ));
                }
                match faults {
                    None => Ok(Arc::from(c.open()?)),
                    Some(plan) if c.backend == Backend::File => {
                        let dir = c.dir.clone().expect("set above");
                        Ok(Arc::new(FilePersister::open_with_faults(&dir, c, plan)?))
                    }
                    Some(_) => Err(KvError::Consensus(format!(
                        "member {id}: failpoints need the memory or file backend, not {}",
                        c.backend
                    ))),
                }
            }
        }
    }

    fn start_member(&self, id: NodeId) -> Result<(), KvError> {
        let faults = self.faults.lock().get(&id).cloned();
        let persister = self.persister(id, faults.clone())?;
        let mut raft = self.config.raft.clone();
        raft.id = id;
        raft.voters = self.ids.clone();
        let mut node = self.config.node.clone();
        let restarts = *self.restarts.lock();
        node.seed = self
            .config
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(id * 1000 + restarts);
        let replica = Replica::start(
            ReplicaConfig {
                raft,
                node,
                rsm: RsmConfig {
                    faults,
                    ..self.config.rsm.clone()
                },
                max_pending_proposals: self.config.max_pending_proposals,
            },
            persister,
            self.network.transport(id),
        )?;
        self.network.register(replica.node());
        self.live.lock().insert(id, Arc::new(replica));
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A clerk's way into a [`LocalCluster`]: calls go straight to the member's handler,
/// optionally restricted to some members and with requests and replies lost at random
/// (a lost reply has still executed, as on a real network).
pub struct ClusterClient {
    cluster: Arc<LocalCluster>,
    reachable: Mutex<Vec<NodeId>>,
    loss: Mutex<(f64, SmallRng)>,
}

impl ClusterClient {
    /// A client that reaches every member, losslessly.
    pub fn new(cluster: Arc<LocalCluster>) -> Self {
        let all = cluster.ids().to_vec();
        Self {
            cluster,
            reachable: Mutex::new(all),
            loss: Mutex::new((0.0, SmallRng::seed_from_u64(0))),
        }
    }

    /// Restricts the client to `members` (the lab's `MakeClerkTo`).
    pub fn reach_only(&self, members: &[NodeId]) {
        *self.reachable.lock() = members.to_vec();
    }

    /// Loses each request and each reply with probability `p`, drawn from `seed`.
    pub fn set_loss(&self, p: f64, seed: u64) {
        *self.loss.lock() = (p, SmallRng::seed_from_u64(seed));
    }

    fn lose(&self) -> bool {
        let mut l = self.loss.lock();
        let p = l.0;
        p > 0.0 && l.1.gen_bool(p.min(1.0))
    }
}

impl ClerkTransport for ClusterClient {
    fn servers(&self) -> Vec<NodeId> {
        self.reachable.lock().clone()
    }

    fn call(&self, server: NodeId, cmd: &Command) -> Option<Result<Reply, KvError>> {
        if !self.reachable.lock().contains(&server) || self.lose() {
            return None;
        }
        let result = self.cluster.handle(server, cmd);
        if self.lose() {
            return None;
        }
        Some(result)
    }
}
