//! The simulated network: who can reach whom, how long a message takes, whether it is
//! lost, and what was sent (RPC and byte counters).
//!
//! The fault model is the MIT 6.5840 `labrpc` one, translated from RPCs to the core's
//! one-way messages (a request and its response are two messages):
//!
//! * **Reliable**: every message arrives after a short random latency
//!   ([`NetConfig::reliable_delay_us`]); messages may overtake each other, as the lab's
//!   goroutines can.
//! * **Unreliable**: each message first waits 0–26 ms; then 10 % of requests and 10 % of
//!   responses are lost (the lab's 10 % request loss and 10 % reply loss).
//! * **Long reordering**: a response that is not lost is held back with probability
//!   600/900 for 200 + rand(0..=rand(0..2000)) ms.
//! * **Connectivity**: a node is connected or not (the lab's `connect`/`disconnect`);
//!   on top of that single links can be cut in one direction (partitions). A message is
//!   delivered only if its link is up both when it is sent and when it arrives.
//! * **Crashes** are handled by the simulation: a message to or from a node instance
//!   that has since crashed is dropped at delivery.
//!
//! Counters follow `labrpc`: a node's RPC count is the number of *requests* it received
//! (dispatched to its core); the byte total counts each request's encoded size when it
//! is sent and each response's when it is delivered.

use crate::sim::clock::{MS, Micros};
use crate::sim::rng::SimRng;
use crate::{Message, MessageBody};
use raftkv_storage::NodeId;

/// Knobs of the fault model. [`NetConfig::lab`] gives the lab's values.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// `false` turns on the unreliable model (delays and losses below).
    pub reliable: bool,
    /// Holds back responses for 200–2200 ms with probability 2/3.
    pub long_reordering: bool,
    /// Latency range of a reliable delivery, inclusive, in microseconds.
    pub reliable_delay_us: (Micros, Micros),
    /// Extra delay range of an unreliable delivery, inclusive (lab: 0–26 ms).
    pub unreliable_delay_us: (Micros, Micros),
    /// Per-mille of requests lost when unreliable (lab: 100).
    pub request_loss_permille: u32,
    /// Per-mille of responses lost when unreliable (lab: 100).
    pub response_loss_permille: u32,
    /// Snapshot streaming bandwidth, in bytes per virtual second.
    pub snapshot_bytes_per_sec: u64,
}

impl NetConfig {
    /// The lab's network, reliable or not.
    pub fn lab(reliable: bool) -> Self {
        Self {
            reliable,
            long_reordering: false,
            reliable_delay_us: (50, 500),
            unreliable_delay_us: (0, 26 * MS),
            request_loss_permille: 100,
            response_loss_permille: 100,
            snapshot_bytes_per_sec: 100 << 20,
        }
    }
}

/// Whether a message is an RPC request (counted in [`NetStats::rpcs_received`]) or a
/// response.
pub fn is_request(body: &MessageBody) -> bool {
    matches!(
        body,
        MessageBody::PreVote { .. }
            | MessageBody::RequestVote { .. }
            | MessageBody::AppendEntries { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::TimeoutNow
    )
}

/// A short name of a message's kind, for traces and counters.
pub fn kind(body: &MessageBody) -> &'static str {
    match body {
        MessageBody::PreVote { .. } => "PreVote",
        MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
        MessageBody::RequestVote { .. } => "RequestVote",
        MessageBody::RequestVoteResponse { .. } => "RequestVoteResponse",
        MessageBody::AppendEntries { .. } => "AppendEntries",
        MessageBody::AppendEntriesResponse { .. } => "AppendEntriesResponse",
        MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
        MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
        MessageBody::TimeoutNow => "TimeoutNow",
    }
}

/// Traffic counters, per node and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Requests received by each node (index `id - 1`): the lab's `RpcCount(i)`.
    pub rpcs_received: Vec<u64>,
    /// Requests sent, including those that were then lost (the lab's total count).
    pub rpcs_sent: u64,
    /// The lab's byte total: requests at send plus delivered responses.
    pub bytes_total: u64,
    /// Encoded bytes each node sent (all messages, and snapshot payloads).
    pub bytes_sent: Vec<u64>,
    /// Encoded bytes delivered to each node.
    pub bytes_received: Vec<u64>,
    /// Messages handed to the network.
    pub messages_sent: u64,
    /// Messages delivered to a live core.
    pub messages_delivered: u64,
    /// Messages lost to the unreliable model.
    pub messages_lost: u64,
    /// Messages dropped because a link was down or an endpoint had crashed.
    pub messages_cut: u64,
    /// Snapshot streams started.
    pub snapshots_sent: u64,
    /// Snapshot streams delivered and accepted by the receiver.
    pub snapshots_installed: u64,
    /// Snapshot payload bytes sent.
    pub snapshot_bytes: u64,
}

/// Connectivity, the fault model and the counters. The event queue lives in the
/// simulation; the network only decides *whether* and *when*.
#[derive(Debug)]
pub struct Network {
    n: usize,
    config: NetConfig,
    connected: Vec<bool>,
    /// `cut[from][to]`: the one-way link from → to is down.
    cut: Vec<Vec<bool>>,
    stats: NetStats,
}

impl Network {
    /// A network of `n` nodes (ids `1..=n`), all connected.
    pub fn new(n: usize, config: NetConfig) -> Self {
        Self {
            n,
            config,
            connected: vec![true; n],
            cut: vec![vec![false; n]; n],
            stats: NetStats {
                rpcs_received: vec![0; n],
                bytes_sent: vec![0; n],
                bytes_received: vec![0; n],
                ..NetStats::default()
            },
        }
    }

    fn ix(&self, id: NodeId) -> usize {
        let i = usize::try_from(id).unwrap_or(usize::MAX).wrapping_sub(1);
        assert!(i < self.n, "node id {id} outside 1..={}", self.n);
        i
    }

    /// The fault model in force.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Changes the fault model.
    pub fn config_mut(&mut self) -> &mut NetConfig {
        &mut self.config
    }

    /// Connects or disconnects a node from everyone (the lab's `ConnectOne` /
    /// `DisconnectAll`).
    pub fn set_connected(&mut self, id: NodeId, up: bool) {
        let i = self.ix(id);
        self.connected[i] = up;
    }

    /// Whether the node is connected (the lab's `IsConnected`).
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.connected[self.ix(id)]
    }

    /// Cuts or restores the one-way link `from → to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, up: bool) {
        let (f, t) = (self.ix(from), self.ix(to));
        self.cut[f][t] = !up;
    }

    /// Splits the nodes into groups that cannot reach each other; nodes in no group
    /// reach nobody. Replaces all earlier link cuts.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        let mut group_of = vec![usize::MAX; self.n];
        for (g, members) in groups.iter().enumerate() {
            for &m in members {
                let i = self.ix(m);
                group_of[i] = g;
            }
        }
        for f in 0..self.n {
            for t in 0..self.n {
                self.cut[f][t] =
                    f != t && (group_of[f] == usize::MAX || group_of[f] != group_of[t]);
            }
        }
    }

    /// Restores every link (does not change who is connected).
    pub fn heal_links(&mut self) {
        for row in &mut self.cut {
            row.iter_mut().for_each(|c| *c = false);
        }
    }

    /// Whether a message from `from` to `to` would get through right now.
    pub fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        let (f, t) = (self.ix(from), self.ix(to));
        self.connected[f] && self.connected[t] && !self.cut[f][t]
    }

    /// The counters.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Decides the fate of a message being sent now: `None` if it is lost or cut,
    /// otherwise its delay. Counts it.
    pub fn plan_message(&mut self, msg: &Message, rng: &mut SimRng) -> Option<Micros> {
        let request = is_request(&msg.body);
        let len = msg.encoded_len() as u64;
        let from = self.ix(msg.from);
        self.stats.messages_sent += 1;
        self.stats.bytes_sent[from] += len;
        if request {
            self.stats.rpcs_sent += 1;
            self.stats.bytes_total += len;
        }
        if !self.link_up(msg.from, msg.to) {
            self.stats.messages_cut += 1;
            return None;
        }
        self.plan(request, rng)
    }

    fn plan(&mut self, request: bool, rng: &mut SimRng) -> Option<Micros> {
        let c = &self.config;
        if c.reliable {
            let (lo, hi) = c.reliable_delay_us;
            let mut d = rng.range_inclusive(lo, hi);
            if !request && c.long_reordering && rng.below(900) < 600 {
                d += long_reorder_delay(rng);
            }
            return Some(d);
        }
        let (lo, hi) = c.unreliable_delay_us;
        let mut d = rng.range_inclusive(lo, hi);
        let loss = if request {
            c.request_loss_permille
        } else {
            c.response_loss_permille
        };
        if rng.chance_permille(loss) {
            self.stats.messages_lost += 1;
            return None;
        }
        if !request && c.long_reordering && rng.below(900) < 600 {
            d += long_reorder_delay(rng);
        }
        Some(d.max(1))
    }

    /// Called when a message reaches a live, current instance over an up link: counts
    /// the delivery. Returns `false` (and counts a cut) if the link went down meanwhile.
    pub fn deliver(&mut self, msg: &Message) -> bool {
        if !self.link_up(msg.from, msg.to) {
            self.stats.messages_cut += 1;
            return false;
        }
        let to = self.ix(msg.to);
        let len = msg.encoded_len() as u64;
        self.stats.messages_delivered += 1;
        self.stats.bytes_received[to] += len;
        if is_request(&msg.body) {
            self.stats.rpcs_received[to] += 1;
        } else {
            self.stats.bytes_total += len;
        }
        true
    }

    /// Counts a message dropped at delivery because an endpoint crashed.
    pub fn count_cut(&mut self) {
        self.stats.messages_cut += 1;
    }

    /// Decides the fate of a snapshot stream of `len` payload bytes from `from` to
    /// `to`: its delay, or `None` if the stream fails. Counts it as one request.
    pub fn plan_snapshot(
        &mut self,
        from: NodeId,
        to: NodeId,
        len: u64,
        rng: &mut SimRng,
    ) -> Option<Micros> {
        let f = self.ix(from);
        self.stats.snapshots_sent += 1;
        self.stats.snapshot_bytes += len;
        self.stats.bytes_sent[f] += len;
        self.stats.rpcs_sent += 1;
        self.stats.bytes_total += len;
        if !self.link_up(from, to) {
            self.stats.messages_cut += 1;
            return None;
        }
        let transfer = len.saturating_mul(1_000_000) / self.config.snapshot_bytes_per_sec.max(1);
        self.plan(true, rng).map(|d| d + transfer)
    }

    /// Counts a snapshot stream that arrived over an up link. Returns `false` if the
    /// link went down meanwhile.
    pub fn deliver_snapshot(&mut self, from: NodeId, to: NodeId, len: u64) -> bool {
        if !self.link_up(from, to) {
            self.stats.messages_cut += 1;
            return false;
        }
        let t = self.ix(to);
        self.stats.rpcs_received[t] += 1;
        self.stats.bytes_received[t] += len;
        true
    }

    /// Counts a snapshot stream the receiver accepted.
    pub fn count_snapshot_installed(&mut self) {
        self.stats.snapshots_installed += 1;
    }
}

/// The lab's long-reordering hold-back: 200 + rand(0..=rand(0..2000)) ms.
fn long_reorder_delay(rng: &mut SimRng) -> Micros {
    let inner = rng.below(2000);
    (200 + rng.below(inner + 1)) * MS
}
