//! A small in-test network: N cores, each with a `MemoryPersister` and a toy state
//! machine (the list of applied commands), connected by a message queue that can
//! isolate nodes, drop and reorder messages (from a seeded RNG), and crash and
//! restart nodes from their durable state. Every persist batch goes through the real
//! persister, so its validation (no gaps, no truncation below the snapshot) checks the
//! batches too.
//!
//! Checked throughout: at most one leader per term (Raft §5.2), every node applies
//! the same command at the same index (§5.4.3), applied indices only grow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};

use raftkv_storage::{MemoryPersister, Persister, codec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::core::Role;
use crate::ready::Apply;

/// A command of the toy state machine: (index, payload).
type Applied = Vec<(u64, Vec<u8>)>;

struct Node {
    core: RaftCore,
    persister: MemoryPersister,
    /// The state machine: applied non-no-op commands.
    sm: Applied,
    applied: u64,
    up: bool,
}

enum Event {
    Msg(Message),
    Snapshot { from: NodeId, to: NodeId, term: u64 },
}

/// Faults applied to every message.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    /// Percentage of messages dropped.
    drop_pct: u32,
    /// Deliver a random queued message instead of the oldest.
    reorder: bool,
}

struct Net {
    config: Config,
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<Event>,
    isolated: BTreeSet<NodeId>,
    /// Links cut in both directions.
    cut: BTreeSet<(NodeId, NodeId)>,
    faults: Faults,
    rng: SmallRng,
    /// term -> leader, for election safety.
    leaders: BTreeMap<u64, NodeId>,
    /// index -> (term, payload) applied by anybody, for state machine safety.
    applied_log: BTreeMap<u64, Vec<u8>>,
    /// Requests sent (AppendEntries, votes, TimeoutNow), as the lab tests count RPCs.
    requests: usize,
    restarts: u64,
}

impl Net {
    fn new(n: u64, config: impl Fn(NodeId, &[NodeId]) -> Config, seed: u64) -> Self {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let persister = MemoryPersister::new();
            let core = RaftCore::new(
                config(id, &ids),
                &persister.recover().expect("empty persister"),
                seed.wrapping_mul(31).wrapping_add(id),
            )
            .expect("valid config");
            nodes.insert(
                id,
                Node {
                    core,
                    persister,
                    sm: Vec::new(),
                    applied: 0,
                    up: true,
                },
            );
        }
        Self {
            config: config(1, &ids),
            nodes,
            queue: VecDeque::new(),
            isolated: BTreeSet::new(),
            cut: BTreeSet::new(),
            faults: Faults::default(),
            rng: SmallRng::seed_from_u64(seed),
            leaders: BTreeMap::new(),
            applied_log: BTreeMap::new(),
            requests: 0,
            restarts: 0,
        }
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn status(&self, id: NodeId) -> crate::Status {
        self.nodes[&id].core.status()
    }

    /// The leader with the highest term among the running nodes, if any.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.core.status().role == Role::Leader)
            .max_by_key(|(_, n)| n.core.status().term)
            .map(|(&id, _)| id)
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        !self.isolated.contains(&a)
            && !self.isolated.contains(&b)
            && !self.cut.contains(&(a.min(b), a.max(b)))
            && self.nodes[&a].up
            && self.nodes[&b].up
    }

    /// Executes every pending Ready of `id`, as the node runtime does.
    fn process(&mut self, id: NodeId) {
        loop {
            let node = self.nodes.get_mut(&id).expect("known node");
            if !node.up || !node.core.has_ready() {
                break;
            }
            let rd = node.core.ready();
            let mut out = rd.messages;
            if let Some(p) = rd.persist {
                if !p.batch.is_empty() {
                    node.persister
                        .write(&p.batch)
                        .expect("every batch the core hands out is valid for the persister");
                }
                node.core.on_persisted(p.id);
            }
            out.extend(rd.persisted_messages);
            for a in rd.apply {
                apply(node, &mut self.applied_log, a);
            }
            let status = node.core.status();
            for m in out {
                if m.body.is_request() {
                    self.requests += 1;
                }
                self.queue.push_back(Event::Msg(m));
            }
            for s in rd.snapshot_sends {
                assert_ne!(s.to, id, "snapshot to itself");
                self.queue.push_back(Event::Snapshot {
                    from: id,
                    to: s.to,
                    term: s.term,
                });
            }
            if status.role == Role::Leader {
                let prev = self.leaders.insert(status.term, id);
                assert!(
                    prev.is_none_or(|p| p == id),
                    "two leaders in term {}: {prev:?} and {id}",
                    status.term
                );
            }
        }
    }

    fn tick_all(&mut self) {
        for id in self.ids() {
            if self.nodes[&id].up {
                self.nodes.get_mut(&id).expect("known").core.tick();
                self.process(id);
            }
        }
    }

    /// Delivers (or drops) one queued event. Returns false when the queue is empty.
    fn deliver_one(&mut self) -> bool {
        let event = if self.faults.reorder && self.queue.len() > 1 {
            let i = self.rng.gen_range(0..self.queue.len());
            self.queue.remove(i)
        } else {
            self.queue.pop_front()
        };
        let Some(event) = event else {
            return false;
        };
        let dropped = self.faults.drop_pct > 0 && self.rng.gen_range(0..100) < self.faults.drop_pct;
        match event {
            Event::Msg(m) => {
                if !dropped && self.connected(m.from, m.to) {
                    let to = m.to;
                    self.nodes.get_mut(&to).expect("known").core.step(m);
                    self.process(to);
                }
            }
            Event::Snapshot { from, to, term } => self.stream_snapshot(from, to, term, dropped),
        }
        true
    }

    /// Streams `from`'s current snapshot to `to` the way the runtimes do: offer,
    /// write and commit into `to`'s persister, then step InstallSnapshot.
    fn stream_snapshot(&mut self, from: NodeId, to: NodeId, term: u64, dropped: bool) {
        let reader = self.nodes[&from]
            .persister
            .open_snapshot()
            .expect("readable")
            .filter(|_| !dropped && self.connected(from, to));
        let Some(mut reader) = reader else {
            if self.nodes[&from].up {
                self.nodes
                    .get_mut(&from)
                    .expect("known")
                    .core
                    .snapshot_send_failed(to);
                self.process(from);
            }
            return;
        };
        let meta = reader.meta();
        let mut payload = Vec::new();
        reader.read_to_end(&mut payload).expect("snapshot payload");
        let node = self.nodes.get_mut(&to).expect("known");
        let accepted = node.core.snapshot_offer(from, term, meta) && {
            let mut w = node.persister.begin_snapshot(meta).expect("begin snapshot");
            w.write_all(&payload).expect("write snapshot");
            w.commit().is_ok()
        };
        if accepted {
            node.core
                .step(msg(from, to, term, MessageBody::InstallSnapshot { meta }));
        }
        self.process(to);
        if !accepted && self.nodes[&from].up {
            self.nodes
                .get_mut(&from)
                .expect("known")
                .core
                .snapshot_send_failed(to);
            self.process(from);
        }
    }

    fn deliver_all(&mut self) {
        let mut budget = 100_000;
        while self.deliver_one() {
            budget -= 1;
            assert!(budget > 0, "message storm");
        }
    }

    /// Runs `ticks` rounds of: tick everybody, deliver everything.
    fn run(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Runs until some node is leader (and all queued messages are delivered).
    fn run_until_leader(&mut self, max_ticks: u32) -> NodeId {
        let all = self.ids();
        self.run_until_leader_among(&all, max_ticks)
    }

    /// Runs until one of `candidates` is leader.
    fn run_until_leader_among(&mut self, candidates: &[NodeId], max_ticks: u32) -> NodeId {
        let found = |net: &Self| {
            candidates
                .iter()
                .copied()
                .find(|&id| net.nodes[&id].up && net.status(id).role == Role::Leader)
        };
        for _ in 0..max_ticks {
            if let Some(l) = found(self) {
                return l;
            }
            self.run(1);
        }
        found(self).expect("a leader within the tick budget")
    }

    fn propose(&mut self, id: NodeId, data: &[u8]) -> (u64, u64) {
        let r = self
            .nodes
            .get_mut(&id)
            .expect("known")
            .core
            .propose(data.to_vec())
            .expect("the leader accepts");
        self.process(id);
        r
    }

    /// Like the lab's `one(cmd, all, retry)`: proposes `data` on the current leader
    /// until every node has applied it, retrying under a new leader if a leader was
    /// deposed before committing it. Returns the leader that got it committed.
    fn one(&mut self, data: &[u8], attempts: u32) -> NodeId {
        for _ in 0..attempts {
            let leader = self.run_until_leader(500);
            let Ok((index, _)) = self
                .nodes
                .get_mut(&leader)
                .expect("leader")
                .core
                .propose(data.to_vec())
            else {
                self.run(1);
                continue;
            };
            self.process(leader);
            self.run(30);
            if self.applied_log.get(&index).is_some_and(|d| d == data)
                && self.nodes.values().all(|n| n.applied >= index)
            {
                return leader;
            }
        }
        panic!("no agreement on {data:?} after {attempts} attempts");
    }

    /// The service on `id` snapshots its state machine at its applied index.
    fn take_snapshot(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("known");
        let index = node.applied;
        if index == 0
            || node
                .persister
                .snapshot_meta()
                .is_some_and(|m| m.index >= index)
        {
            return;
        }
        let term = node
            .core
            .term_at(index)
            .expect("the applied index is in the log");
        let meta = snap(index, term);
        let payload = codec::encode(&node.sm).expect("encode state machine");
        let mut w = node.persister.begin_snapshot(meta).expect("begin snapshot");
        w.write_all(&payload).expect("write snapshot");
        w.commit().expect("commit snapshot");
        node.core.snapshot_taken(meta);
        node.persister.compact(index).expect("compact");
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("known").up = false;
    }

    /// Restarts `id` from what its persister holds.
    fn restart(&mut self, id: NodeId) {
        self.restarts += 1;
        let seed = self.restarts.wrapping_mul(1_000_003).wrapping_add(id);
        let cfg = Config {
            id,
            ..self.config.clone()
        };
        let node = self.nodes.get_mut(&id).expect("known");
        let persister = node.persister.crash_image();
        let rec = persister.recover().expect("recover");
        let (sm, applied) = match persister.open_snapshot().expect("open snapshot") {
            Some(mut r) => {
                let mut payload = Vec::new();
                r.read_to_end(&mut payload).expect("read snapshot");
                let sm: Applied = codec::decode(&payload, 1 << 30).expect("decode snapshot");
                (sm, r.meta().index)
            }
            None => (Vec::new(), 0),
        };
        *node = Node {
            core: RaftCore::new(cfg, &rec, seed).expect("recovered core"),
            persister,
            sm,
            applied,
            up: true,
        };
        self.process(id);
    }

    /// The state machine of `id` (payloads in order).
    fn sm(&self, id: NodeId) -> Vec<Vec<u8>> {
        self.nodes[&id].sm.iter().map(|(_, d)| d.clone()).collect()
    }
}

fn apply(node: &mut Node, applied_log: &mut BTreeMap<u64, Vec<u8>>, a: Apply) {
    match a {
        Apply::Command { index, data, .. } => {
            assert_eq!(index, node.applied + 1, "apply out of order");
            node.applied = index;
            let prev = applied_log.insert(index, data.clone());
            assert!(
                prev.as_ref().is_none_or(|p| *p == data),
                "index {index} applied as {data:?} here and {prev:?} elsewhere"
            );
            if !data.is_empty() {
                node.sm.push((index, data));
            }
        }
        Apply::Snapshot { meta } => {
            assert!(
                meta.index > node.applied,
                "snapshot at or below the applied index"
            );
            let mut r = node
                .persister
                .open_snapshot()
                .expect("open")
                .expect("the installed snapshot is in the persister");
            assert_eq!(r.meta(), meta);
            let mut payload = Vec::new();
            r.read_to_end(&mut payload).expect("read");
            node.sm = codec::decode(&payload, 1 << 30).expect("decode");
            node.applied = meta.index;
            for (index, data) in &node.sm {
                let prev = applied_log.insert(*index, data.clone());
                assert!(
                    prev.is_none_or(|p| p == *data),
                    "snapshot disagrees at {index}"
                );
            }
        }
    }
}

fn default_config(id: NodeId, voters: &[NodeId]) -> Config {
    Config::new(id, voters.to_vec())
}

fn payload(i: u32) -> Vec<u8> {
    format!("cmd-{i}").into_bytes()
}

#[test]
fn three_nodes_elect_one_leader_and_replicate_every_command() {
    let mut net = Net::new(3, config, 1);
    let leader = net.run_until_leader(100);
    let election_requests = net.requests;
    assert!(
        (4..=30).contains(&election_requests),
        "{election_requests} requests to elect"
    );
    for i in 0..10 {
        net.propose(leader, &payload(i));
        net.deliver_all();
    }
    net.run(3);
    let expected: Vec<Vec<u8>> = (0..10).map(payload).collect();
    for id in net.ids() {
        assert_eq!(net.sm(id), expected, "state machine of node {id}");
        assert_eq!(net.status(id).commit, 11);
    }
}

#[test]
fn lab_rpc_budgets_are_met_with_the_default_timing() {
    // TestCount3B: ≤ 30 RPCs to elect, ≤ 42 for 12 commands, ≤ 60 in 1 s (100 ticks
    // of 10 ms) of idleness, in a 3-node cluster.
    let mut net = Net::new(3, default_config, 3);
    let leader = net.run_until_leader(1000);
    assert!(net.requests <= 30, "{} requests to elect", net.requests);
    net.run(1);
    let before = net.requests;
    for i in 0..12 {
        net.propose(leader, &payload(i));
        net.deliver_all();
    }
    net.run(20);
    assert!(net.nodes.values().all(|n| n.core.status().applied == 13));
    let agreement = net.requests - before;
    assert!(agreement <= 42, "{agreement} requests for 12 commands");
    let before = net.requests;
    net.run(100);
    let idle = net.requests - before;
    assert!(idle <= 60, "{idle} requests in 1 s idle");
    assert_eq!(idle, 20, "one heartbeat per follower every 10 ticks");
}

#[test]
fn each_command_reaches_each_follower_once() {
    // TestRPCBytes3B: sending 10 commands of 5000 bytes costs about 10 × 5000 bytes
    // per follower.
    let mut net = Net::new(3, default_config, 4);
    let leader = net.run_until_leader(1000);
    net.run(1);
    let mut bytes = 0usize;
    for i in 0..10u8 {
        let cmd = vec![i; 5000];
        net.nodes
            .get_mut(&leader)
            .expect("leader")
            .core
            .propose(cmd)
            .expect("leader");
        let rd = net.nodes.get_mut(&leader).expect("leader").core.ready();
        bytes += rd.messages.iter().map(Message::encoded_len).sum::<usize>();
        net.nodes
            .get_mut(&leader)
            .expect("leader")
            .core
            .on_persisted(rd.persist.expect("entry").id);
        for m in rd.messages {
            net.queue.push_back(Event::Msg(m));
        }
        net.deliver_all();
    }
    assert!(
        bytes < 2 * 10 * 5100,
        "{bytes} bytes sent for 2 × 50,000 bytes of commands"
    );
    assert!(bytes >= 2 * 10 * 5000);
}

#[test]
fn a_node_that_was_cut_off_rejoins_without_deposing_the_leader() {
    let mut net = Net::new(3, config, 5);
    let leader = net.run_until_leader(100);
    let term = net.status(leader).term;
    let other = net
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("a follower");
    net.isolated.insert(other);
    net.run(200); // many election timeouts: it keeps running PreVotes
    assert_eq!(
        net.status(other).term,
        term,
        "PreVote never raises the term"
    );
    assert_ne!(net.status(other).role, Role::Leader);
    // Its log is as up to date as everybody's: only the lease keeps the others from
    // granting its PreVotes once it is back.
    net.isolated.clear();
    net.run(60);
    assert_eq!(
        (
            net.leader(),
            net.status(leader).term,
            net.status(other).term
        ),
        (Some(leader), term, term)
    );
    net.propose(leader, b"after");
    net.run(3);
    assert_eq!(net.sm(other), vec![b"after".to_vec()]);
}

#[test]
fn a_node_that_only_lost_the_leader_cannot_depose_it() {
    // Node `other` cannot reach the leader but can reach the third node, whose log it
    // matches. Its PreVotes fail because the third node hears from the leader (lease);
    // without the lease it would win and force a new term.
    let mut net = Net::new(3, config, 11);
    let leader = net.run_until_leader(100);
    let term = net.status(leader).term;
    let other = net
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("a follower");
    net.cut.insert((leader.min(other), leader.max(other)));
    net.run(200);
    for id in net.ids() {
        assert_eq!(net.status(id).term, term, "node {id}");
    }
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.status(other).role, Role::PreCandidate);
}

#[test]
fn a_leader_cut_off_from_the_majority_steps_down_and_its_entries_are_replaced() {
    let mut net = Net::new(3, config, 6);
    let old = net.run_until_leader(100);
    net.propose(old, b"committed");
    net.run(3);
    net.isolated.insert(old);
    // Not committed: the old leader cannot reach anybody.
    net.propose(old, b"lost 1");
    net.propose(old, b"lost 2");
    net.run(100);
    assert_ne!(
        net.status(old).role,
        Role::Leader,
        "CheckQuorum made it step down"
    );
    let new = net.leader().expect("the majority elected a leader");
    assert_ne!(new, old);
    net.propose(new, b"kept");
    net.run(5);
    net.isolated.clear();
    net.run(40);
    let expected = vec![b"committed".to_vec(), b"kept".to_vec()];
    for id in net.ids() {
        assert_eq!(net.sm(id), expected, "node {id}");
    }
}

#[test]
fn a_lagging_follower_catches_up_from_a_snapshot() {
    let mut net = Net::new(3, config, 7);
    let leader = net.run_until_leader(100);
    let lagging = net
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("follower");
    net.isolated.insert(lagging);
    for i in 0..30 {
        net.propose(leader, &payload(i));
        net.deliver_all();
    }
    net.run(3);
    for id in net.ids() {
        if id != lagging {
            net.take_snapshot(id);
        }
    }
    assert!(net.status(leader).snapshot_index >= 30);
    net.isolated.clear();
    net.run(40);
    let expected: Vec<Vec<u8>> = (0..30).map(payload).collect();
    assert_eq!(net.sm(lagging), expected);
    assert!(
        net.status(lagging).snapshot_index >= 30,
        "caught up through the snapshot"
    );
    net.propose(leader, b"after");
    net.run(5);
    assert_eq!(net.sm(lagging).last(), Some(&b"after".to_vec()));
}

#[test]
fn a_crashed_node_restarts_from_its_durable_state() {
    let mut net = Net::new(3, config, 8);
    let leader = net.run_until_leader(100);
    for i in 0..5 {
        net.propose(leader, &payload(i));
    }
    net.run(5);
    for id in net.ids() {
        net.crash(id);
    }
    for id in net.ids() {
        net.restart(id);
        // Re-applied at once through the persisted commit index.
        assert_eq!(net.sm(id).len(), 5, "node {id} after restart");
    }
    let leader = net.run_until_leader(200);
    net.propose(leader, b"after restart");
    net.run(5);
    for id in net.ids() {
        assert_eq!(net.sm(id).len(), 6);
    }
}

#[test]
fn followers_are_backed_up_quickly_over_long_divergent_logs() {
    // TestBackup3B: two divergent runs of 50 uncommitted entries must be overwritten in
    // a few round trips, not one entry per round trip.
    let mut net = Net::new(5, config, 9);
    let l1 = net.run_until_leader(200);
    net.propose(l1, b"base");
    net.run(3);
    let f1 = net.ids().into_iter().find(|&i| i != l1).expect("follower");
    for id in net.ids() {
        if id != l1 && id != f1 {
            net.isolated.insert(id);
        }
    }
    for i in 0..50 {
        net.propose(l1, &payload(i));
    }
    net.run(2);
    // Now the other three elect a leader and commit 50 entries of their own.
    net.isolated = [l1, f1].into_iter().collect();
    let others: Vec<NodeId> = net
        .ids()
        .into_iter()
        .filter(|&i| i != l1 && i != f1)
        .collect();
    let l2 = net.run_until_leader_among(&others, 300);
    for i in 100..150 {
        net.propose(l2, &payload(i));
    }
    net.run(5);
    net.isolated.clear();
    let before = net.requests;
    net.run(30);
    let expected: Vec<Vec<u8>> = std::iter::once(b"base".to_vec())
        .chain((100..150).map(payload))
        .collect();
    for id in net.ids() {
        assert_eq!(net.sm(id), expected, "node {id}");
    }
    assert!(
        net.requests - before < 120,
        "{} requests to back up",
        net.requests - before
    );
}

/// How rough a randomized run is; all figures are percentages per round.
#[derive(Debug, Clone, Copy)]
struct Chaos {
    rounds: u32,
    drop_pct: u32,
    /// Cut the current leader off (at most 2 of 5 nodes are cut off at a time).
    isolate_leader_pct: u32,
    /// Cut a random node off (same limit).
    isolate_any_pct: u32,
    heal_pct: u32,
    crash_pct: u32,
    restart_pct: u32,
    snapshot_pct: u32,
}

/// A mix of everything: loss, reordering, partitions, crashes, snapshots.
const MIXED: Chaos = Chaos {
    rounds: 300,
    drop_pct: 10,
    isolate_leader_pct: 0,
    isolate_any_pct: 3,
    heal_pct: 3,
    crash_pct: 1,
    restart_pct: 3,
    snapshot_pct: 1,
};

/// TestFigure8Unreliable-like: leaders are cut off again and again while entries keep
/// being proposed, with loss and reordering, and crashes on top.
const LEADER_CHURN: Chaos = Chaos {
    rounds: 400,
    drop_pct: 10,
    isolate_leader_pct: 8,
    isolate_any_pct: 2,
    heal_pct: 4,
    crash_pct: 2,
    restart_pct: 4,
    snapshot_pct: 2,
};

fn chaos(seed: u64, c: Chaos) {
    let mut net = Net::new(5, config, 100 + seed);
    net.faults = Faults {
        drop_pct: c.drop_pct,
        reorder: true,
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut proposed = 0u32;
    let roll = |rng: &mut SmallRng, pct: u32| rng.gen_range(0..100) < pct;
    for round in 0..c.rounds {
        net.tick_all();
        // Deliver part of the queue: the rest stays for later (delay, reordering).
        for _ in 0..rng.gen_range(0..=net.queue.len()) {
            net.deliver_one();
        }
        if let Some(l) = net.leader()
            && roll(&mut rng, 30)
        {
            let data = format!("s{seed}-{proposed}").into_bytes();
            if net
                .nodes
                .get_mut(&l)
                .expect("leader")
                .core
                .propose(data)
                .is_ok()
            {
                proposed += 1;
                net.process(l);
            }
        }
        if net.isolated.len() < 2 {
            if roll(&mut rng, c.isolate_leader_pct)
                && let Some(l) = net.leader()
            {
                net.isolated.insert(l);
            } else if roll(&mut rng, c.isolate_any_pct) {
                net.isolated.insert(rng.gen_range(1..=5));
            }
        }
        if roll(&mut rng, c.heal_pct) {
            net.isolated.clear();
        }
        let down: Vec<NodeId> = net
            .ids()
            .into_iter()
            .filter(|&i| !net.nodes[&i].up)
            .collect();
        if down.len() < 2 && roll(&mut rng, c.crash_pct) {
            net.crash(rng.gen_range(1..=5));
        }
        if let Some(&id) = down.first()
            && roll(&mut rng, c.restart_pct)
        {
            net.restart(id);
        }
        if roll(&mut rng, c.snapshot_pct) {
            let id = rng.gen_range(1..=5);
            if net.nodes[&id].up {
                net.take_snapshot(id);
            }
        }
        if round % 50 == 49 {
            for id in net.ids() {
                let s = net.status(id);
                assert!(s.applied <= s.commit && s.commit <= s.last_index);
            }
        }
    }
    // Heal everything: a leader emerges and every node converges.
    net.faults = Faults::default();
    net.isolated.clear();
    for id in net.ids() {
        if !net.nodes[&id].up {
            net.restart(id);
        }
    }
    let leader = net.one(b"final", 10);
    let reference = net.sm(leader);
    for id in net.ids() {
        assert_eq!(net.sm(id), reference, "seed {seed}, node {id}");
    }
}

#[test]
fn safety_holds_under_loss_reordering_partitions_and_crashes() {
    for seed in 0..10 {
        chaos(seed, MIXED);
    }
}

#[test]
fn safety_holds_while_leaders_are_cut_off_again_and_again() {
    for seed in 0..10 {
        chaos(seed, LEADER_CHURN);
    }
}
