//! A deterministic simulator for the IO-free Raft core.
//!
//! In the spirit of FoundationDB's simulation and TigerBeetle's VOPR: one thread,
//! virtual time, and **one `u64` seed** that drives everything random (network delays,
//! losses and reordering, tick phases, each core's election RNG, the test's workload).
//! The same seed replays the same run, event for event; [`Simulation::trace_hash`]
//! fingerprints a run so that tests can check it.
//!
//! * [`clock`]: virtual time; nodes tick every 10 ms of it, and idle time is skipped by
//!   jumping straight to the next event.
//! * [`network`]: the lab's fault model (loss, delay, long reordering, disconnection,
//!   partitions) and its RPC and byte counters.
//! * [`node`]: a node = [`RaftCore`](crate::RaftCore) + storage + the service's applied
//!   state + the driver that processes every `Ready` as the API demands.
//! * [`invariants`]: Raft's safety properties, one per file, checked after every event:
//!   election safety, one vote per term, log matching, leader completeness, state
//!   machine safety, applied state never going back across restarts, persist before
//!   replying, and linearizable ReadIndex. A violation panics with the seed, the
//!   virtual time, the invariant and a summary of every node.
//! * [`harness`]: the MIT 6.5840 tester's helpers (`checkOneLeader`, `one`, `wait`, …)
//!   on top of a [`Simulation`], with background tasks standing in for goroutines.
//! * [`workload`]: random workloads with random faults, for the seed sweep
//!   (`tests/sim_sweep.rs`) and the speed benchmark (`benches/sim_speed.rs`).
//!
//! Storage is either the memory backend or the file backend, and writes are either
//! synchronous (each `Ready` is processed completely before the next input, as with
//! the lab's persister) or asynchronous with a random latency, in which case messages
//! leave before the batch is durable, `persisted_messages` and `apply` wait for it, and a
//! crash loses the writes still in flight ([`SimConfig::disk_latency_us`]).
//!
//! A crash drops the node's instance and restarts it from
//! [`MemoryPersister::crash_image`](raftkv_storage::MemoryPersister::crash_image) (or by
//! reopening its directory with the file backend): exactly the lab's semantics, so
//! nothing the old instance did after the crash is seen, and messages in flight to or
//! from it are dropped.
//!
//! Snapshot transfer: on `SnapshotSend{to, term, meta}` the simulation reads the
//! leader's snapshot payload from its persister and delivers it as one network event
//! (lost, delayed or cut like any message); the receiver calls `snapshot_offer`, stores
//! the payload with `begin_snapshot`/`commit`, then steps `InstallSnapshot{meta}`. A
//! failed stream is reported to the leader with `snapshot_send_failed`.

pub mod clock;
pub mod durable_log;
pub mod harness;
pub mod invariants;
pub mod network;
pub mod node;
pub mod rng;
#[cfg(test)]
mod tests;
pub mod workload;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raftkv_storage::{MemoryPersister, NodeId, Persister, SnapshotMeta};

use crate::{Config, Message, MessageBody, ProposeError, ReadState, Role, Status};
pub use clock::{MS, Micros, SECOND, TICK_US, TickPlan, fmt_time};
use durable_log::DurableLog;
use invariants::{Invariants, Violation};
pub use network::{NetConfig, NetStats, Network};
use node::Output;
pub use node::{NodeSpec, SimNode, SnapshotPolicy, Storage, StorageImage};
use rng::{SimRng, chain, derive_seed};

/// Adjusts each node's [`Config`] before its core is built (it runs once per start).
pub type RaftTweak = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// Which storage backend the nodes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageMode {
    /// [`MemoryPersister`]; crashes restart from its crash image.
    Memory,
    /// The file backend, one directory per node under this root; crashes reopen it.
    File(PathBuf),
}

/// What to simulate.
#[derive(Clone)]
pub struct SimConfig {
    /// The one seed.
    pub seed: u64,
    /// Cluster size; ids are `1..=nodes`.
    pub nodes: usize,
    /// The network's fault model.
    pub net: NetConfig,
    /// The storage backend.
    pub storage: StorageMode,
    /// When the service snapshots.
    pub snapshots: SnapshotPolicy,
    /// How nodes tick.
    pub tick: TickPlan,
    /// Changes to [`Config::new`]'s defaults.
    pub raft: Option<RaftTweak>,
    /// Latency range of a disk write, inclusive. `(0, 0)` makes every write
    /// synchronous (a `Ready` is processed completely before the next input, like the
    /// lab's persister); otherwise writes complete in order after this latency, and
    /// a crash loses the writes still in flight.
    pub disk_latency_us: (Micros, Micros),
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("nodes", &self.nodes)
            .field("net", &self.net)
            .field("storage", &self.storage)
            .field("snapshots", &self.snapshots)
            .field("tick", &self.tick)
            .field("raft", &self.raft.as_ref().map(|_| "tweaked"))
            .field("disk_latency_us", &self.disk_latency_us)
            .finish()
    }
}

impl SimConfig {
    /// The lab's setup: `nodes` servers, a reliable or unreliable network, and (with
    /// `snapshot`) a service that snapshots every 10 entries.
    pub fn lab(seed: u64, nodes: usize, reliable: bool, snapshot: bool) -> Self {
        Self {
            seed,
            nodes,
            net: NetConfig::lab(reliable),
            storage: StorageMode::Memory,
            snapshots: SnapshotPolicy {
                every: snapshot.then_some(10),
                filler_bytes: 0,
            },
            tick: TickPlan::default(),
            raft: None,
            disk_latency_us: (0, 0),
        }
    }

    /// The same, with the file backend under `root`.
    pub fn with_storage(mut self, storage: StorageMode) -> Self {
        self.storage = storage;
        self
    }
}

#[derive(Debug)]
enum Event {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver {
        msg: Message,
        from_inc: u64,
        to_inc: u64,
    },
    Snapshot {
        from: NodeId,
        from_inc: u64,
        to: NodeId,
        to_inc: u64,
        term: u64,
        meta: SnapshotMeta,
        payload: Arc<Vec<u8>>,
    },
    SnapshotFailed {
        from: NodeId,
        from_inc: u64,
        to: NodeId,
    },
    DiskDone {
        node: NodeId,
        incarnation: u64,
        persist_id: u64,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Micros,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` pops the earliest event (ties: first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One node's place in the cluster, alive or crashed.
#[derive(Debug)]
struct Slot {
    node: Option<SimNode>,
    incarnation: u64,
    /// What a crashed node left behind.
    image: Option<StorageImage>,
    /// The durable log as it was at the crash, to compare with what the restart finds.
    log_at_crash: Option<DurableLog>,
    /// The raft state size at the crash (for `log_size` while dead).
    state_size_at_crash: u64,
    /// The tester's view of what this server has applied: indices `1..=applied_view`
    /// (kept after a crash until the restart, as the lab keeps a dead server's log).
    applied_view: u64,
    read_states: Vec<ReadState>,
    /// When the node's (asynchronous) disk finishes its last queued write.
    disk_busy_until: Micros,
}

/// Counts of what happened, for reports and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Ticks delivered to cores.
    pub ticks: u64,
    /// Crashes.
    pub crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Proposals accepted.
    pub proposals: u64,
    /// Distinct terms that had a leader.
    pub leaders: u64,
    /// Highest index applied anywhere.
    pub max_applied: u64,
}

/// A simulated cluster. See the [module docs](self).
pub struct Simulation {
    config: SimConfig,
    now: Micros,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    slots: Vec<Slot>,
    net: Network,
    net_rng: SimRng,
    workload: SimRng,
    inv: Invariants,
    trace: u64,
    stats: SimStats,
    tasks: Vec<Option<Pending>>,
    task_seq: u64,
    last_start: Option<StartRecord>,
    filter: Option<MessageFilter>,
}

/// A test's nemesis: returns `true` for a message it wants dropped when it is sent.
pub type MessageFilter = Box<dyn FnMut(&Message) -> bool>;

/// The last proposal a leader accepted through [`Simulation::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRecord {
    /// The node that accepted it.
    pub node: NodeId,
    /// Its index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// The node's last log index just before (so `index == last_index_before + 1`
    /// unless the core misplaced it).
    pub last_index_before: u64,
}

/// What a background task wants after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStep {
    /// Finished; drop it.
    Done,
    /// Poll again at this virtual instant.
    SleepUntil(Micros),
}

/// A background task: the simulation's stand-in for a test's goroutine. It is polled at
/// the virtual instants it asks for, interleaved with the simulation's events, whenever
/// the simulation runs (including while the test's own code sleeps).
pub type Task = Box<dyn FnMut(&mut Simulation) -> TaskStep>;

struct Pending {
    wake: Micros,
    seq: u64,
    task: Task,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("wake", &self.wake)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.config.seed)
            .field("now", &fmt_time(self.now))
            .field("events_queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// Builds the cluster and starts every node.
    ///
    /// # Panics
    /// If `config.nodes` is 0, or a node cannot start.
    pub fn new(config: SimConfig) -> Self {
        assert!(config.nodes > 0, "a simulation needs at least one node");
        let seed = config.seed;
        let n = config.nodes;
        let mut sim = Simulation {
            net: Network::new(n, config.net.clone()),
            config,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: (0..n)
                .map(|_| Slot {
                    node: None,
                    incarnation: 0,
                    image: None,
                    log_at_crash: None,
                    state_size_at_crash: 0,
                    applied_view: 0,
                    read_states: Vec::new(),
                    disk_busy_until: 0,
                })
                .collect(),
            net_rng: SimRng::new(derive_seed(seed, "network", 0)),
            workload: SimRng::new(derive_seed(seed, "workload", 0)),
            inv: Invariants::default(),
            trace: derive_seed(seed, "trace", 0),
            stats: SimStats::default(),
            tasks: Vec::new(),
            task_seq: 0,
            last_start: None,
            filter: None,
        };
        for id in sim.ids() {
            sim.start_server(id);
        }
        sim
    }

    // ----- identity and time -------------------------------------------------------

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.slots.len()
    }

    /// All node ids, `1..=n`.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        1..=self.slots.len() as NodeId
    }

    /// The current virtual time.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// A fingerprint of everything that happened so far: equal for two runs of the
    /// same seed, different (in practice) otherwise.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// The workload's random stream (derived from the seed, separate from the
    /// network's, so that test code's draws do not shift the network's).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.workload
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        let mut s = self.stats.clone();
        s.leaders = self.inv.election.terms_with_leader() as u64;
        s.max_applied = self.inv.state_machine.max_index();
        s
    }

    /// The network's counters.
    pub fn net_stats(&self) -> &NetStats {
        self.net.stats()
    }

    /// Runs the simulation for `d` of virtual time (the lab's `time.Sleep`).
    pub fn sleep(&mut self, d: Duration) {
        self.run_for(clock::micros(d));
    }

    /// Runs the simulation for `us` virtual microseconds.
    pub fn run_for(&mut self, us: Micros) {
        let until = self.now.saturating_add(us);
        self.run_until(until);
    }

    /// Processes every event (and polls every background task) scheduled up to `t`,
    /// then sets the clock to `t`.
    pub fn run_until(&mut self, t: Micros) {
        loop {
            let next_event = self.queue.peek().map(|e| e.at);
            let next_task = self
                .tasks
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.as_ref().map(|p| (p.wake, p.seq, i)))
                .min();
            match (next_event, next_task) {
                (_, Some((wake, _, i))) if wake <= t && next_event.is_none_or(|e| wake <= e) => {
                    self.poll_task(i, wake);
                }
                (Some(e), _) if e <= t => {
                    self.step_event();
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
    }

    /// Starts a background task, first polled now (after the caller next runs the
    /// simulation).
    pub fn spawn(&mut self, task: impl FnMut(&mut Simulation) -> TaskStep + 'static) {
        self.task_seq += 1;
        let p = Pending {
            wake: self.now,
            seq: self.task_seq,
            task: Box::new(task),
        };
        match self.tasks.iter_mut().find(|t| t.is_none()) {
            Some(slot) => *slot = Some(p),
            None => self.tasks.push(Some(p)),
        }
    }

    /// Number of background tasks not yet finished.
    pub fn tasks_running(&self) -> usize {
        self.tasks.iter().filter(|t| t.is_some()).count()
    }

    /// Runs until every background task has finished (the lab's `wg.Wait()`), or fails
    /// after `limit` of virtual time.
    pub fn join_tasks(&mut self, limit: Duration) {
        let deadline = self.now + clock::micros(limit);
        while self.tasks_running() > 0 {
            if self.now >= deadline {
                self.fatal(format_args!(
                    "{} background task(s) still running after {limit:?}",
                    self.tasks_running()
                ));
            }
            let next = self
                .tasks
                .iter()
                .filter_map(|p| p.as_ref().map(|p| p.wake))
                .min()
                .unwrap_or(deadline);
            self.run_until(next.min(deadline).max(self.now));
        }
    }

    fn poll_task(&mut self, i: usize, wake: Micros) {
        let Some(mut p) = self.tasks[i].take() else {
            return;
        };
        self.now = self.now.max(wake);
        match (p.task)(self) {
            TaskStep::Done => {}
            TaskStep::SleepUntil(at) => {
                // At least 1 µs later, so that a task cannot spin at one instant.
                p.wake = at.max(self.now + 1);
                // The task may have spawned others into free slots meanwhile.
                match self.tasks.get_mut(i) {
                    Some(slot @ None) => *slot = Some(p),
                    _ => self.tasks.push(Some(p)),
                }
            }
        }
    }

    /// Processes the next event, if any. Returns whether there was one.
    pub fn step_event(&mut self) -> bool {
        let Some(Scheduled { at, event, .. }) = self.queue.pop() else {
            return false;
        };
        debug_assert!(at >= self.now, "time went backwards");
        self.now = at;
        self.stats.events += 1;
        self.trace = chain(self.trace, at);
        self.process(event);
        true
    }

    fn schedule(&mut self, after: Micros, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after,
            seq: self.seq,
            event,
        });
    }

    // ----- failure reporting ---------------------------------------------------------

    /// Fails the run: panics with the seed, the virtual time, `what`, and a summary of
    /// every node.
    pub fn fatal(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "sim failure: seed={} t={}: {what}\n{}",
            self.config.seed,
            fmt_time(self.now),
            self.describe()
        )
    }

    fn check<T>(&self, r: Result<T, Violation>) -> T {
        match r {
            Ok(v) => v,
            Err(v) => self.fatal(format_args!("invariant violated: {v}")),
        }
    }

    /// One line per node: alive, connected, role, term, commit, applied, last index.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for id in self.ids() {
            let slot = &self.slots[ix(id)];
            let conn = if self.net.is_connected(id) {
                "connected"
            } else {
                "disconnected"
            };
            match &slot.node {
                Some(node) => {
                    let st = node.status();
                    s.push_str(&format!(
                        "  node {id} (incarnation {}, {conn}): {:?} term {} leader {:?} commit {} \
                         applied {} last {} snapshot {}\n",
                        slot.incarnation,
                        role_name(&st.role),
                        st.term,
                        st.leader,
                        st.commit,
                        node.applied(),
                        st.last_index,
                        node.log().snapshot().index,
                    ));
                }
                None => s.push_str(&format!("  node {id} ({conn}): crashed\n")),
            }
        }
        s
    }

    // ----- node lifecycle ------------------------------------------------------------

    fn node_config(&self, id: NodeId) -> Config {
        let voters: Vec<NodeId> = self.ids().collect();
        let mut c = Config::new(id, voters);
        if let Some(t) = &self.config.raft {
            t(&mut c);
        }
        c
    }

    fn initial_storage(&self, id: NodeId) -> Storage {
        match &self.config.storage {
            StorageMode::Memory => Storage::Memory(MemoryPersister::new()),
            StorageMode::File(root) => node::open_file(root.join(format!("node-{id}"))),
        }
    }

    /// Starts (or restarts, from what its crash left) node `id`. Does not change its
    /// connectivity (the lab's `StartServer`).
    ///
    /// # Panics
    /// If the node is already running.
    pub fn start_server(&mut self, id: NodeId) {
        let i = ix(id);
        assert!(self.slots[i].node.is_none(), "node {id} is already running");
        let storage = match self.slots[i].image.take() {
            Some(img) => img.open(),
            None => self.initial_storage(id),
        };
        if let Some(old) = self.slots[i].log_at_crash.take() {
            let rec = storage.persister().recover();
            let diff = match rec {
                Ok(rec) => old.diff(&rec),
                Err(e) => Some(format!("recover failed: {e}")),
            };
            if let Some(d) = diff {
                self.fatal(format_args!(
                    "invariant violated: storage (Persister contract): node {id} restarted on \
                     storage that differs from what it had made durable before the crash: {d}"
                ));
            }
            self.stats.restarts += 1;
        }
        let incarnation = self.slots[i].incarnation + 1;
        self.slots[i].incarnation = incarnation;
        let config = self.node_config(id);
        let rng_seed = derive_seed(self.config.seed, "core", (id << 32) | incarnation);
        let mut out = Output::default();
        let policy = self.config.snapshots;
        let async_disk = self.config.disk_latency_us.1 > 0;
        self.slots[i].disk_busy_until = self.now;
        let spec = NodeSpec {
            config,
            incarnation,
            rng_seed,
            policy,
            async_disk,
        };
        let r = SimNode::start(spec, storage, &mut self.inv, &mut out);
        let node = self.check(r);
        self.slots[i].applied_view = node.applied();
        self.slots[i].node = Some(node);
        let phase = 1 + self.net_rng.below(self.config.tick.period_us);
        self.schedule(
            phase,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        self.trace = chain(self.trace, 0x5747 ^ id);
        self.finish(id, out);
    }

    /// Crashes node `id` without touching its connectivity: the instance is dropped and
    /// only its durable state survives. No-op if it is not running.
    pub fn crash(&mut self, id: NodeId) {
        let slot = &mut self.slots[ix(id)];
        let Some(node) = slot.node.take() else {
            return;
        };
        slot.state_size_at_crash = node.storage().persister().raft_state_size();
        slot.log_at_crash = Some(node.log().clone());
        slot.image = Some(node.crash());
        self.stats.crashes += 1;
        self.trace = chain(self.trace, 0xC0A5 ^ id);
    }

    /// The lab's `ShutdownServer`: disconnect, then crash.
    pub fn shutdown_server(&mut self, id: NodeId) {
        self.disconnect(id);
        self.crash(id);
    }

    /// The lab's `Shutdown`: every server.
    pub fn shutdown_all(&mut self) {
        for id in self.ids() {
            self.shutdown_server(id);
        }
    }

    /// The lab's `StartServers`: start every crashed server, then connect everyone.
    pub fn start_servers(&mut self) {
        for id in self.ids() {
            if !self.is_alive(id) {
                self.start_server(id);
            }
        }
        self.connect_all();
    }

    /// Whether node `id` is running.
    pub fn is_alive(&self, id: NodeId) -> bool {
        self.slots[ix(id)].node.is_some()
    }

    /// The running instance of `id`.
    pub fn node(&self, id: NodeId) -> Option<&SimNode> {
        self.slots[ix(id)].node.as_ref()
    }

    // ----- network -------------------------------------------------------------------

    /// The lab's `ConnectOne`.
    pub fn connect(&mut self, id: NodeId) {
        self.net.set_connected(id, true);
        self.trace = chain(self.trace, 0xC044 ^ id);
    }

    /// The lab's `DisconnectAll(i)`: the node reaches nobody and nobody reaches it.
    pub fn disconnect(&mut self, id: NodeId) {
        self.net.set_connected(id, false);
        self.trace = chain(self.trace, 0xD15C ^ id);
    }

    /// The lab's `ConnectAll`.
    pub fn connect_all(&mut self) {
        for id in self.ids() {
            self.connect(id);
        }
    }

    /// Whether `id` is connected (the lab's `IsConnected`).
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.net.is_connected(id)
    }

    /// Splits the cluster into groups that cannot talk to each other.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.net.partition(groups);
        self.trace = chain(self.trace, 0x9A27);
    }

    /// Cuts or restores one direction of one link.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, up: bool) {
        self.net.set_link(from, to, up);
    }

    /// Restores every link cut by [`partition`](Self::partition) or
    /// [`set_link`](Self::set_link).
    pub fn heal_links(&mut self) {
        self.net.heal_links();
    }

    /// The lab's `SetReliable`.
    pub fn set_reliable(&mut self, reliable: bool) {
        self.net.config_mut().reliable = reliable;
    }

    /// The lab's `SetLongReordering`.
    pub fn set_long_reordering(&mut self, on: bool) {
        self.net.config_mut().long_reordering = on;
    }

    /// Installs (or removes) a filter that drops chosen messages when they are sent,
    /// to script exact scenarios.
    pub fn set_drop_filter(&mut self, filter: Option<MessageFilter>) {
        self.filter = filter;
    }

    /// The fault model, to change any knob.
    pub fn net_config_mut(&mut self) -> &mut NetConfig {
        self.net.config_mut()
    }

    /// Requests node `id` has received (the lab's `RpcCount(i)`).
    pub fn rpc_count(&self, id: NodeId) -> u64 {
        self.net.stats().rpcs_received[ix(id)]
    }

    /// The lab's `BytesTotal`.
    pub fn bytes_total(&self) -> u64 {
        self.net.stats().bytes_total
    }

    // ----- storage sizes -------------------------------------------------------------

    /// The lab's `LogSize()`: the largest `raft_state_size()` over every server's
    /// storage (a crashed server's as it was at the crash).
    pub fn log_size(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| match &s.node {
                Some(n) => n.storage().persister().raft_state_size(),
                None => s
                    .image
                    .as_ref()
                    .and_then(StorageImage::raft_state_size)
                    .unwrap_or(s.state_size_at_crash),
            })
            .max()
            .unwrap_or(0)
    }

    /// The largest snapshot over the running servers.
    pub fn snapshot_size(&self) -> u64 {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .map(|n| n.storage().persister().snapshot_size())
            .max()
            .unwrap_or(0)
    }

    // ----- client inputs -------------------------------------------------------------

    /// The core's `propose` on node `id`, with the resulting output processed.
    /// `None` if the node is not running.
    pub fn propose(
        &mut self,
        id: NodeId,
        data: impl Into<Vec<u8>>,
    ) -> Option<Result<(u64, u64), ProposeError>> {
        let data = data.into();
        let slot = &mut self.slots[ix(id)];
        let node = slot.node.as_mut()?;
        let r = node.core_mut().propose(data);
        let mut out = Output::default();
        let d = node.drive(&mut self.inv, &mut out);
        self.check(d);
        if r.is_ok() {
            self.stats.proposals += 1;
        }
        self.trace = chain(self.trace, 0x9209 ^ id ^ u64::from(r.is_ok()) << 8);
        self.finish(id, out);
        Some(r)
    }

    /// The lab's `Start(cmd)`: `Some((index, term))` if node `id` is running and accepted
    /// the command as leader.
    ///
    /// # Panics
    /// If the core rejects the command as empty or too large (a test bug).
    pub fn start(&mut self, id: NodeId, data: impl Into<Vec<u8>>) -> Option<(u64, u64)> {
        let last_index_before = self.status(id)?.last_index;
        match self.propose(id, data)? {
            Ok((index, term)) => {
                self.last_start = Some(StartRecord {
                    node: id,
                    index,
                    term,
                    last_index_before,
                });
                Some((index, term))
            }
            Err(e @ (ProposeError::Empty | ProposeError::TooLarge { .. })) => self.fatal(
                format_args!("propose on node {id} rejected the command: {e}"),
            ),
            Err(_) => None,
        }
    }

    /// The last proposal accepted through [`start`](Self::start).
    pub fn last_start(&self) -> Option<StartRecord> {
        self.last_start
    }

    /// The core's `read_index(ctx)` on node `id`. `None` if it is not running.
    pub fn read_index(&mut self, id: NodeId, ctx: u64) -> Option<Result<(), ProposeError>> {
        let floor = self.known_commit();
        let slot = &mut self.slots[ix(id)];
        let node = slot.node.as_mut()?;
        self.inv.reads.on_request(id, slot.incarnation, ctx, floor);
        let r = node.core_mut().read_index(ctx);
        if r.is_err() {
            self.inv.reads.on_refused(id, slot.incarnation, ctx);
        }
        let mut out = Output::default();
        let d = node.drive(&mut self.inv, &mut out);
        self.check(d);
        self.finish(id, out);
        Some(r)
    }

    /// The highest commit index any running node knows, or any node applied.
    pub fn known_commit(&self) -> u64 {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .map(|n| n.status().commit)
            .max()
            .unwrap_or(0)
            .max(self.inv.state_machine.max_index())
    }

    /// ReadIndex requests completed (and checked) so far.
    pub fn reads_completed(&self) -> u64 {
        self.inv.reads.completed()
    }

    /// Takes the ReadIndex results node `id` has completed so far.
    pub fn take_read_states(&mut self, id: NodeId) -> Vec<ReadState> {
        std::mem::take(&mut self.slots[ix(id)].read_states)
    }

    /// The core's `transfer_leadership(to)` on node `id`. `None` if it is not running.
    pub fn transfer_leadership(
        &mut self,
        id: NodeId,
        to: NodeId,
    ) -> Option<Result<(), ProposeError>> {
        let slot = &mut self.slots[ix(id)];
        let node = slot.node.as_mut()?;
        let r = node.core_mut().transfer_leadership(to);
        let mut out = Output::default();
        let d = node.drive(&mut self.inv, &mut out);
        self.check(d);
        self.finish(id, out);
        Some(r)
    }

    /// The core's status on node `id`, if running.
    pub fn status(&self, id: NodeId) -> Option<Status> {
        self.node(id).map(SimNode::status)
    }

    /// The lab's `GetState()`: `(term, is_leader)`, if running.
    pub fn get_state(&self, id: NodeId) -> Option<(u64, bool)> {
        self.status(id)
            .map(|s| (s.term, matches!(s.role, Role::Leader)))
    }

    /// The tester's view of how far server `id` has applied (kept after a crash until
    /// the restart).
    pub fn applied_view(&self, id: NodeId) -> u64 {
        self.slots[ix(id)].applied_view
    }

    /// The value committed (first applied) at `index`, if any server applied it.
    pub fn committed_value(&self, index: u64) -> Option<Arc<[u8]>> {
        self.inv
            .state_machine
            .get(index)
            .map(|a| Arc::clone(&a.data))
    }

    /// The highest index any server applied.
    pub fn max_committed(&self) -> u64 {
        self.inv.state_machine.max_index()
    }

    // ----- event processing ----------------------------------------------------------

    fn process(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => {
                let slot = &mut self.slots[ix(node)];
                if slot.incarnation != incarnation {
                    return;
                }
                let Some(n) = slot.node.as_mut() else {
                    return;
                };
                n.core_mut().tick();
                let mut out = Output::default();
                let d = n.drive(&mut self.inv, &mut out);
                self.check(d);
                self.stats.ticks += 1;
                let tick = self.config.tick;
                let rng = &mut self.net_rng;
                let next = tick.next_interval(|span| rng.range_inclusive(0, span));
                self.schedule(next, Event::Tick { node, incarnation });
                self.trace = chain(self.trace, 0x7 ^ node << 8);
                self.finish(node, out);
            }
            Event::Deliver {
                msg,
                from_inc,
                to_inc,
            } => {
                if !self.current(msg.from, from_inc) || !self.current(msg.to, to_inc) {
                    self.net.count_cut();
                    return;
                }
                if !self.net.deliver(&msg) {
                    return;
                }
                let to = msg.to;
                self.trace = chain(self.trace, msg_digest(&msg));
                let Some(n) = self.slots[ix(to)].node.as_mut() else {
                    return;
                };
                n.core_mut().step(msg);
                let mut out = Output::default();
                let d = n.drive(&mut self.inv, &mut out);
                self.check(d);
                self.finish(to, out);
            }
            Event::Snapshot {
                from,
                from_inc,
                to,
                to_inc,
                term,
                meta,
                payload,
            } => {
                let len = payload.len() as u64;
                if !self.current(from, from_inc)
                    || !self.current(to, to_inc)
                    || !self.net.deliver_snapshot(from, to, len)
                {
                    self.snapshot_failed_later(from, from_inc, to);
                    return;
                }
                self.trace = chain(self.trace, 0x5A ^ meta.index << 8 ^ to);
                let Some(n) = self.slots[ix(to)].node.as_mut() else {
                    return;
                };
                let mut out = Output::default();
                let r = n.install_snapshot(from, term, meta, &payload, &mut self.inv, &mut out);
                let accepted = self.check(r);
                if accepted {
                    self.net.count_snapshot_installed();
                } else {
                    self.snapshot_failed_later(from, from_inc, to);
                }
                self.finish(to, out);
            }
            Event::DiskDone {
                node,
                incarnation,
                persist_id,
            } => {
                if !self.current(node, incarnation) {
                    return;
                }
                let Some(n) = self.slots[ix(node)].node.as_mut() else {
                    return;
                };
                let mut out = Output::default();
                let r = n.complete_writes(persist_id, &mut self.inv, &mut out);
                self.check(r);
                self.trace = chain(self.trace, 0xD1 ^ persist_id << 8 ^ node);
                self.finish(node, out);
            }
            Event::SnapshotFailed { from, from_inc, to } => {
                if !self.current(from, from_inc) {
                    return;
                }
                let Some(n) = self.slots[ix(from)].node.as_mut() else {
                    return;
                };
                n.core_mut().snapshot_send_failed(to);
                let mut out = Output::default();
                let d = n.drive(&mut self.inv, &mut out);
                self.check(d);
                self.trace = chain(self.trace, 0x5F ^ to << 8 ^ from);
                self.finish(from, out);
            }
        }
    }

    fn current(&self, id: NodeId, incarnation: u64) -> bool {
        let s = &self.slots[ix(id)];
        s.node.is_some() && s.incarnation == incarnation
    }

    /// Tells the sender, after a detection delay, that its snapshot stream failed.
    fn snapshot_failed_later(&mut self, from: NodeId, from_inc: u64, to: NodeId) {
        let delay = self.net_rng.range_inclusive(20 * MS, 200 * MS);
        self.schedule(delay, Event::SnapshotFailed { from, from_inc, to });
    }

    /// After node `id` processed an input: route its output, then check the
    /// invariants that depend on its new state.
    fn finish(&mut self, id: NodeId, out: Output) {
        let i = ix(id);
        if let Some(n) = &self.slots[i].node {
            self.slots[i].applied_view = n.applied();
        }
        self.route(id, out);
        self.after_event(id);
    }

    fn route(&mut self, id: NodeId, out: Output) {
        let Output {
            messages,
            snapshot_sends,
            read_states,
            newly_committed,
            disk_writes,
        } = out;
        let n = self.n() as NodeId;
        let from_inc = self.slots[ix(id)].incarnation;
        for persist_id in disk_writes {
            let (lo, hi) = self.config.disk_latency_us;
            let latency = self.net_rng.range_inclusive(lo, hi.max(lo));
            let slot = &mut self.slots[ix(id)];
            let done = slot.disk_busy_until.max(self.now + latency);
            slot.disk_busy_until = done;
            self.schedule(
                done - self.now,
                Event::DiskDone {
                    node: id,
                    incarnation: from_inc,
                    persist_id,
                },
            );
        }
        for msg in messages {
            if msg.from != id || msg.to == id || msg.to == 0 || msg.to > n {
                self.fatal(format_args!(
                    "invariant violated: core API contract: node {id} emitted a message from {} \
                     to {}",
                    msg.from, msg.to
                ));
            }
            let to = msg.to;
            let delay = self.net.plan_message(&msg, &mut self.net_rng);
            let Some(delay) = delay else { continue };
            if let Some(f) = self.filter.as_mut()
                && f(&msg)
            {
                self.net.count_cut();
                continue;
            }
            let to_slot = &self.slots[ix(to)];
            if to_slot.node.is_none() {
                self.net.count_cut();
                continue;
            }
            let to_inc = to_slot.incarnation;
            self.schedule(
                delay,
                Event::Deliver {
                    msg,
                    from_inc,
                    to_inc,
                },
            );
        }
        for s in snapshot_sends {
            let payload = match &self.slots[ix(id)].node {
                Some(node) => node.read_snapshot_payload(),
                None => Ok(None),
            };
            let payload = self.check(payload);
            let Some((meta, payload)) = payload else {
                self.snapshot_failed_later(id, from_inc, s.to);
                continue;
            };
            if meta.index < s.meta.index {
                self.fatal(format_args!(
                    "invariant violated: core API contract: node {id} asked to send snapshot \
                     {:?} but its storage holds the older {meta:?}",
                    s.meta
                ));
            }
            let len = payload.len() as u64;
            let delay = self.net.plan_snapshot(id, s.to, len, &mut self.net_rng);
            let to_slot = &self.slots[ix(s.to)];
            match delay {
                Some(d) if to_slot.node.is_some() => {
                    let to_inc = to_slot.incarnation;
                    self.schedule(
                        d,
                        Event::Snapshot {
                            from: id,
                            from_inc,
                            to: s.to,
                            to_inc,
                            term: s.term,
                            meta,
                            payload: Arc::new(payload),
                        },
                    );
                }
                _ => self.snapshot_failed_later(id, from_inc, s.to),
            }
        }
        for rs in &read_states {
            let r = self.inv.reads.on_read_state(id, from_inc, rs);
            self.check(r);
        }
        self.slots[ix(id)].read_states.extend(read_states);
        for (index, term) in newly_committed {
            let r = self.inv.completeness.on_applied(id, index, term);
            self.check(r);
        }
    }

    fn after_event(&mut self, id: NodeId) {
        let i = ix(id);
        let Some(node) = &self.slots[i].node else {
            return;
        };
        let st = node.status();
        if st.id != id {
            self.fatal(format_args!(
                "invariant violated: core API contract: node {id}'s status reports id {}",
                st.id
            ));
        }
        self.trace = chain(
            chain(chain(self.trace, st.term), st.commit),
            st.last_index ^ (role_code(&st.role) << 56),
        );
        let r = self.inv.election.observe(id, &st);
        self.check(r);
        if st.persisted_index > node.log().last_index() {
            self.fatal(format_args!(
                "invariant violated: core API contract: node {id} reports its log durable through \
                 {} but its storage holds entries only through {}",
                st.persisted_index,
                node.log().last_index()
            ));
        }
        if matches!(st.role, Role::Leader) {
            let r = self
                .inv
                .completeness
                .on_leader(id, node.incarnation(), st.term, node.log());
            self.check(r);
        }
        if st.commit > self.inv.completeness.known_commit() {
            let leaders: Vec<(NodeId, u64, &DurableLog)> = self
                .slots
                .iter()
                .filter_map(|s| {
                    let n = s.node.as_ref()?;
                    let st = n.status();
                    matches!(st.role, Role::Leader).then(|| (n.id(), st.term, n.log()))
                })
                .collect();
            let r = self.inv.completeness.on_commit(
                id,
                st.term,
                st.commit,
                node.log(),
                leaders.iter().map(|&(i, t, l)| (i, t, l)),
            );
            self.check(r);
        }
    }
}

fn ix(id: NodeId) -> usize {
    usize::try_from(id).unwrap_or(usize::MAX).wrapping_sub(1)
}

fn role_code(r: &Role) -> u64 {
    match r {
        Role::Follower => 1,
        Role::PreCandidate => 2,
        Role::Candidate => 3,
        Role::Leader => 4,
    }
}

fn role_name(r: &Role) -> &'static str {
    match r {
        Role::Follower => "Follower",
        Role::PreCandidate => "PreCandidate",
        Role::Candidate => "Candidate",
        Role::Leader => "Leader",
    }
}

/// A cheap fingerprint of a message for the trace hash.
fn msg_digest(m: &Message) -> u64 {
    let mut h = chain(chain(m.from, m.to), m.term);
    h = match &m.body {
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        }
        | MessageBody::RequestVote {
            last_log_index,
            last_log_term,
        } => chain(chain(h ^ 1, *last_log_index), *last_log_term),
        MessageBody::PreVoteResponse { granted } | MessageBody::RequestVoteResponse { granted } => {
            chain(h ^ 2, u64::from(*granted))
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_ctx,
        } => chain(
            chain(
                chain(chain(h ^ 3, *prev_log_index), *prev_log_term),
                entries.len() as u64,
            ),
            *leader_commit ^ read_ctx << 32,
        ),
        MessageBody::AppendEntriesResponse {
            success,
            match_index,
            conflict_index,
            ..
        } => chain(
            chain(chain(h ^ 4, u64::from(*success)), *match_index),
            *conflict_index,
        ),
        MessageBody::InstallSnapshot { meta } => chain(h ^ 5, meta.index),
        MessageBody::InstallSnapshotResponse { meta, accepted } => {
            chain(chain(h ^ 6, meta.index), u64::from(*accepted))
        }
        MessageBody::TimeoutNow => h ^ 7,
    };
    h
}

/// The persister trait object of a running node (for tests that inspect storage).
pub fn persister_of(node: &SimNode) -> &dyn Persister {
    node.storage().persister()
}
