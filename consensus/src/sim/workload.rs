//! Random workloads with random faults, for the seed sweep and the speed benchmark.
//!
//! A [`Plan`] is drawn from one seed: cluster size, fault model, snapshot policy, Raft
//! knobs, and how often clients propose and faults strike. [`run`] then drives a
//! simulation of the plan: clients propose (mostly to the node they believe leads) and
//! issue ReadIndex reads; faults crash and restart nodes, disconnect and reconnect
//! them, partition the network (also one-way), change the loss rates, toggle long
//! reordering and transfer leadership. Every invariant is checked after every event.
//! At the end the network heals, every node restarts, and a final command must commit
//! on all nodes within the lab's `one()` limits: the cluster converges.

use std::sync::Arc;
use std::time::Duration;

use raftkv_storage::NodeId;

use super::clock::{MS, Micros, SECOND, TickPlan};
use super::network::NetConfig;
use super::node::SnapshotPolicy;
use super::rng::{SimRng, derive_seed};
use super::{SimConfig, SimStats, Simulation, StorageMode};
use crate::{Config, Role};

/// How long a healed cluster may take to commit the final command on every node.
pub const CONVERGENCE_LIMIT: Duration = Duration::from_secs(60);

/// Proposals a client leaves uncommitted on a leader before it stops proposing (a
/// bounded in-flight window, as real clients have).
const MAX_UNCOMMITTED: u64 = 512;

/// Everything a seed decides about a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Virtual time of the faulty phase.
    pub duration_us: Micros,
    /// The initial fault model.
    pub net: NetConfig,
    /// Whether faults are injected at all (the benchmark keeps the cluster whole).
    pub faults: bool,
    /// Faults are only leader crashes and restarts, at a high rate: the Figure 8
    /// scenarios (a leader replicates an old-term entry to a majority, then crashes
    /// before its own term's entry gets there).
    pub crash_storm: bool,
    /// Interval between two faults, inclusive range.
    pub fault_every_us: (Micros, Micros),
    /// Interval between two proposals, inclusive range.
    pub propose_every_us: (Micros, Micros),
    /// Interval between two ReadIndex reads, inclusive range.
    pub read_every_us: (Micros, Micros),
    /// Command payload size, inclusive range.
    pub payload_bytes: (usize, usize),
    /// The service's snapshots.
    pub snapshots: SnapshotPolicy,
    /// Tick timing.
    pub tick: TickPlan,
    /// `Config::pre_vote`.
    pub pre_vote: bool,
    /// `Config::check_quorum`.
    pub check_quorum: bool,
    /// `Config::max_append_entries`.
    pub max_append_entries: usize,
    /// `Config::max_inflight_appends`.
    pub max_inflight_appends: usize,
    /// `Config::snapshot_retry_ticks`.
    pub snapshot_retry_ticks: u32,
    /// Disk write latency (`(0, 0)`: synchronous).
    pub disk_latency_us: (Micros, Micros),
}

impl Plan {
    /// Draws a plan with faults from `seed`.
    pub fn random(seed: u64) -> Plan {
        let mut r = SimRng::new(derive_seed(seed, "plan", 0));
        let nodes = match r.below(20) {
            0 => 7,
            1..=9 => 3,
            _ => 5,
        };
        let reliable = r.chance_permille(250);
        let mut net = NetConfig::lab(reliable);
        net.long_reordering = r.chance_permille(200);
        net.request_loss_permille = [0, 50, 100, 100, 200, 300][r.index(6)];
        net.response_loss_permille = [0, 50, 100, 100, 200, 300][r.index(6)];
        net.unreliable_delay_us = (0, [5, 27, 27, 60, 150][r.index(5)] * MS);
        let snapshots = SnapshotPolicy {
            every: if r.chance_permille(200) {
                None
            } else {
                Some(r.range_inclusive(3, 40))
            },
            filler_bytes: [0, 64, 1024, 16 << 10][r.index(4)],
        };
        let crash_storm = r.chance_permille(250);
        let nodes = if crash_storm { 5 } else { nodes };
        Plan {
            seed,
            nodes,
            duration_us: r.range_inclusive(8, 30) * SECOND,
            net,
            faults: true,
            crash_storm,
            fault_every_us: if crash_storm {
                (10 * MS, r.range_inclusive(100, 400) * MS)
            } else {
                (50 * MS, r.range_inclusive(300, 1500) * MS)
            },
            propose_every_us: (MS, r.range_inclusive(5, 60) * MS),
            read_every_us: (5 * MS, r.range_inclusive(50, 500) * MS),
            payload_bytes: (1, [8, 64, 512, 4096][r.index(4)]),
            snapshots,
            tick: TickPlan {
                jitter_us: [0, 0, 500, 2 * MS][r.index(4)],
                ..TickPlan::default()
            },
            pre_vote: r.chance_permille(750),
            check_quorum: r.chance_permille(750),
            max_append_entries: if crash_storm {
                [1, 1, 4][r.index(3)]
            } else {
                [1, 4, 64, Config::DEFAULT_MAX_APPEND_ENTRIES][r.index(4)]
            },
            max_inflight_appends: [1, 2, Config::DEFAULT_MAX_INFLIGHT_APPENDS][r.index(3)],
            snapshot_retry_ticks: [20, Config::DEFAULT_SNAPSHOT_RETRY_TICKS][r.index(2)],
            disk_latency_us: match r.below(10) {
                0..=4 => (0, 0),
                5..=7 => (50, 2 * MS),
                _ => (MS, 20 * MS),
            },
        }
    }

    /// The benchmark's representative workload: 5 nodes on the lab's unreliable
    /// network, a proposal every 1–20 ms, snapshots every 50 entries, no crashes.
    pub fn benchmark(seed: u64, duration_us: Micros) -> Plan {
        Plan {
            seed,
            nodes: 5,
            duration_us,
            net: NetConfig::lab(false),
            faults: false,
            crash_storm: false,
            fault_every_us: (SECOND, SECOND),
            propose_every_us: (MS, 20 * MS),
            read_every_us: (20 * MS, 200 * MS),
            payload_bytes: (16, 256),
            snapshots: SnapshotPolicy {
                every: Some(50),
                filler_bytes: 1024,
            },
            tick: TickPlan::default(),
            pre_vote: true,
            check_quorum: true,
            max_append_entries: Config::DEFAULT_MAX_APPEND_ENTRIES,
            max_inflight_appends: Config::DEFAULT_MAX_INFLIGHT_APPENDS,
            snapshot_retry_ticks: Config::DEFAULT_SNAPSHOT_RETRY_TICKS,
            disk_latency_us: (100, MS),
        }
    }

    /// The simulation configuration of this plan.
    pub fn sim_config(&self, storage: StorageMode) -> SimConfig {
        let (pre_vote, check_quorum) = (self.pre_vote, self.check_quorum);
        let (mae, mia, srt) = (
            self.max_append_entries,
            self.max_inflight_appends,
            self.snapshot_retry_ticks,
        );
        SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            net: self.net.clone(),
            storage,
            snapshots: self.snapshots,
            tick: self.tick,
            disk_latency_us: self.disk_latency_us,
            raft: Some(Arc::new(move |c: &mut Config| {
                c.pre_vote = pre_vote;
                c.check_quorum = check_quorum;
                c.max_append_entries = mae;
                c.max_inflight_appends = mia;
                c.snapshot_retry_ticks = srt;
            })),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Virtual time simulated.
    pub virtual_us: Micros,
    /// Simulation counters.
    pub stats: SimStats,
    /// Proposals accepted by a leader.
    pub accepted: u64,
    /// ReadIndex reads completed and checked.
    pub reads: u64,
    /// Faults injected.
    pub faults: u64,
    /// The index of the final, converged command.
    pub final_index: u64,
    /// The trace fingerprint.
    pub trace_hash: u64,
    /// Messages sent, and snapshot streams installed.
    pub messages: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
}

/// Runs `plan` on `storage`; panics (with the seed) on any violation or if the cluster
/// does not converge.
pub fn run(plan: &Plan, storage: StorageMode) -> Outcome {
    let mut sim = Simulation::new(plan.sim_config(storage));
    let mut w = Workload {
        r: SimRng::new(derive_seed(plan.seed, "workload-driver", 0)),
        plan,
        counter: 0,
        ctx: 0,
        accepted: 0,
        faults: 0,
    };
    let start = sim.now();
    let end = start + plan.duration_us;
    let mut next_propose = start
        + w.r
            .range_inclusive(plan.propose_every_us.0, plan.propose_every_us.1);
    let mut next_read = start
        + w.r
            .range_inclusive(plan.read_every_us.0, plan.read_every_us.1);
    let mut next_fault = start
        + w.r
            .range_inclusive(plan.fault_every_us.0, plan.fault_every_us.1);
    loop {
        let t = next_propose
            .min(next_read)
            .min(if plan.faults { next_fault } else { Micros::MAX });
        if t >= end {
            break;
        }
        sim.run_until(t);
        if t == next_propose {
            w.propose(&mut sim);
            next_propose +=
                w.r.range_inclusive(plan.propose_every_us.0, plan.propose_every_us.1);
        }
        if t == next_read {
            w.read(&mut sim);
            next_read +=
                w.r.range_inclusive(plan.read_every_us.0, plan.read_every_us.1);
        }
        if plan.faults && t == next_fault {
            w.fault(&mut sim);
            next_fault +=
                w.r.range_inclusive(plan.fault_every_us.0, plan.fault_every_us.1);
        }
        for id in sim.ids() {
            sim.take_read_states(id);
        }
    }
    sim.run_until(end);

    // Heal everything and require convergence.
    sim.set_reliable(true);
    sim.set_long_reordering(false);
    sim.heal_links();
    for id in sim.ids() {
        if !sim.is_alive(id) {
            sim.start_server(id);
        }
    }
    sim.connect_all();
    // A follower may have a long backlog to catch up with (one entry per append and a
    // slow disk, say), so convergence gets more than the lab's 10 s.
    let final_cmd = format!("final-{}", plan.seed).into_bytes();
    let final_index = sim.one_within(final_cmd, plan.nodes, CONVERGENCE_LIMIT);
    for id in sim.ids() {
        if sim.applied_view(id) < final_index {
            sim.fatal(format_args!(
                "node {id} did not converge: applied {} < final index {final_index}",
                sim.applied_view(id)
            ));
        }
    }
    let stats = sim.stats();
    let net = sim.net_stats().clone();
    Outcome {
        virtual_us: sim.now(),
        stats,
        accepted: w.accepted,
        reads: sim.reads_completed(),
        faults: w.faults,
        final_index,
        trace_hash: sim.trace_hash(),
        messages: net.messages_sent,
        snapshots_installed: net.snapshots_installed,
    }
}

struct Workload<'a> {
    r: SimRng,
    plan: &'a Plan,
    counter: u64,
    ctx: u64,
    accepted: u64,
    faults: u64,
}

impl Workload<'_> {
    /// A live node that claims to lead (the highest term's), if any.
    fn leader(sim: &Simulation) -> Option<NodeId> {
        sim.ids()
            .filter_map(|id| sim.status(id).map(|s| (s.term, id, s.role)))
            .filter(|(_, _, role)| matches!(role, Role::Leader))
            .map(|(term, id, _)| (term, id))
            .max()
            .map(|(_, id)| id)
    }

    fn random_node(&mut self, sim: &Simulation) -> NodeId {
        self.r.below(sim.n() as u64) + 1
    }

    fn propose(&mut self, sim: &mut Simulation) {
        let target = match Self::leader(sim) {
            Some(l) if !self.r.chance_permille(150) => l,
            _ => self.random_node(sim),
        };
        if let Some(st) = sim.status(target)
            && st.last_index.saturating_sub(st.commit) >= MAX_UNCOMMITTED
        {
            return;
        }
        self.counter += 1;
        let mut data = format!("{}:{}:", self.plan.seed, self.counter).into_bytes();
        let len = self.r.range_inclusive(
            self.plan.payload_bytes.0 as u64,
            self.plan.payload_bytes.1 as u64,
        );
        data.resize(data.len().max(len as usize), b'.');
        if sim.start(target, data).is_some() {
            self.accepted += 1;
        }
    }

    fn read(&mut self, sim: &mut Simulation) {
        let target = match Self::leader(sim) {
            Some(l) => l,
            None => self.random_node(sim),
        };
        self.ctx += 1;
        sim.read_index(target, self.ctx);
    }

    fn fault(&mut self, sim: &mut Simulation) {
        self.faults += 1;
        if self.plan.crash_storm {
            let dead: Vec<NodeId> = sim.ids().filter(|&i| !sim.is_alive(i)).collect();
            let leader = Self::leader(sim);
            match leader {
                Some(l) if dead.len() < 2 && self.r.chance_permille(700) => sim.crash(l),
                _ if !dead.is_empty() => {
                    let d = dead[self.r.index(dead.len())];
                    sim.start_server(d);
                }
                _ => {}
            }
            return;
        }
        let id = self.random_node(sim);
        match self.r.below(100) {
            // Crash a node (more likely the leader).
            0..=17 => {
                let victim = match Self::leader(sim) {
                    Some(l) if self.r.chance_permille(500) => l,
                    _ => id,
                };
                sim.crash(victim);
            }
            // Restart a crashed node.
            18..=37 => {
                let dead: Vec<NodeId> = sim.ids().filter(|&i| !sim.is_alive(i)).collect();
                if !dead.is_empty() {
                    let d = dead[self.r.index(dead.len())];
                    sim.start_server(d);
                }
            }
            // Disconnect a node (more likely the leader).
            38..=49 => {
                let victim = match Self::leader(sim) {
                    Some(l) if self.r.chance_permille(500) => l,
                    _ => id,
                };
                sim.disconnect(victim);
            }
            // Reconnect someone.
            50..=61 => sim.connect(id),
            // A random two-way partition.
            62..=69 => {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for i in sim.ids() {
                    if self.r.chance_permille(500) {
                        a.push(i);
                    } else {
                        b.push(i);
                    }
                }
                sim.partition(&[a, b]);
            }
            // Heal the links (partitions and one-way cuts).
            70..=79 => sim.heal_links(),
            // Cut one direction of one link.
            80..=84 => {
                let to = self.random_node(sim);
                if to != id {
                    sim.set_link(id, to, false);
                }
            }
            // Change the fault model.
            85..=91 => {
                let c = sim.net_config_mut();
                c.reliable = self.r.chance_permille(300);
                c.request_loss_permille = [0, 100, 300, 500][self.r.index(4)];
                c.response_loss_permille = [0, 100, 300][self.r.index(3)];
                c.long_reordering = self.r.chance_permille(250);
            }
            // Leadership transfer.
            92..=95 => {
                if let Some(l) = Self::leader(sim) {
                    let to = self.random_node(sim);
                    if to != l {
                        sim.transfer_leadership(l, to);
                    }
                }
            }
            // Everything back to normal for a while.
            _ => {
                sim.heal_links();
                sim.connect_all();
            }
        }
    }
}
