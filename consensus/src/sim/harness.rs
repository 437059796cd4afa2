//! The MIT 6.5840 Raft tester's helpers (`src/raft1/test.go`, 2025 layout), on a
//! [`Simulation`].
//!
//! Same names, same loops, same thresholds; every wait is virtual time. Node ids are
//! `1..=n` (the lab's servers are `0..n`), so the lab's `(leader + k) % servers`
//! becomes [`Simulation::peer`]`(leader, k)`.
//!
//! The tester's per-server applied log (`rfsrv.logs`) is the simulation's
//! [`applied_view`](Simulation::applied_view): a server "has committed" index `i` if it
//! has applied `1..=i` (entries it applied one by one, or received in a snapshot). The
//! value at `i` is the canonical one; that no server ever applied a different value is
//! checked on every apply by the state machine safety invariant, which is stricter than
//! the lab's `checkLogs` (it also compares the whole prefix).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use raftkv_storage::NodeId;

use super::{MS, Micros, SECOND, Simulation, TaskStep};

/// The lab's `RaftElectionTimeout`: how long tests wait for an election (1 s).
pub const RAFT_ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// The lab's per-test limit, here in virtual time.
pub const LAB_TEST_LIMIT: Duration = Duration::from_secs(120);

/// The seed of a lab test: `RAFTKV_LAB_SEED` if set, otherwise a fixed value derived
/// from the test's name (so CI runs are reproducible; the seed is in every failure).
pub fn lab_seed(test: &str) -> u64 {
    match std::env::var("RAFTKV_LAB_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("RAFTKV_LAB_SEED={s:?} is not a u64")),
        Err(_) => super::rng::hash_bytes(test.as_bytes()),
    }
}

/// A lab command: an integer, encoded as its decimal digits.
pub fn cmd(x: u64) -> Vec<u8> {
    x.to_string().into_bytes()
}

/// Decodes a command made by [`cmd`].
pub fn cmd_value(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The result of polling a [`OneTask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll<T> {
    /// Done.
    Ready(T),
    /// Poll again at this instant.
    Pending(Micros),
}

#[derive(Debug, Clone, Copy)]
enum OneState {
    Submit,
    Waiting { index: u64, since: Micros },
}

/// The lab's `one(cmd, expectedServers, retry)` as a pollable state machine, so that
/// several can run "concurrently" (as the lab's goroutines do) in virtual time.
#[derive(Debug, Clone)]
pub struct OneTask {
    cmd: Vec<u8>,
    expected: usize,
    retry: bool,
    limit: Micros,
    t0: Micros,
    starts: usize,
    state: OneState,
}

impl OneTask {
    /// A new agreement round for `cmd`, started now.
    pub fn new(sim: &Simulation, cmd: Vec<u8>, expected: usize, retry: bool) -> Self {
        Self {
            cmd,
            expected,
            retry,
            limit: 10 * SECOND,
            t0: sim.now(),
            starts: 0,
            state: OneState::Submit,
        }
    }

    /// The same round with another overall limit than the lab's 10 s.
    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = super::clock::micros(limit);
        self
    }

    /// Advances the round; fails the test like the lab's `one()` does.
    pub fn poll(&mut self, sim: &mut Simulation) -> Poll<u64> {
        loop {
            match self.state {
                OneState::Submit => {
                    if sim.now() - self.t0 >= self.limit {
                        sim.fatal(format_args!(
                            "one({}) failed to reach agreement within {} s",
                            show(&self.cmd),
                            self.limit / SECOND
                        ));
                    }
                    let n = sim.n();
                    let mut index = None;
                    for _ in 0..n {
                        self.starts = (self.starts + 1) % n;
                        let id = self.starts as NodeId + 1;
                        if sim.is_connected(id)
                            && let Some((i, _)) = sim.start(id, self.cmd.clone())
                        {
                            index = Some(i);
                            break;
                        }
                    }
                    match index {
                        Some(index) => {
                            self.state = OneState::Waiting {
                                index,
                                since: sim.now(),
                            };
                        }
                        None => return Poll::Pending(sim.now() + 50 * MS),
                    }
                }
                OneState::Waiting { index, since } => {
                    if sim.now() - since < 2 * SECOND {
                        let (nd, cmd1) = sim.n_committed(index);
                        if nd > 0 && nd >= self.expected && cmd1.as_deref() == Some(&self.cmd[..]) {
                            return Poll::Ready(index);
                        }
                        return Poll::Pending(sim.now() + 20 * MS);
                    }
                    if !self.retry {
                        sim.fatal(format_args!(
                            "one({}) failed to reach agreement",
                            show(&self.cmd)
                        ));
                    }
                    self.state = OneState::Submit;
                }
            }
        }
    }
}

fn show(cmd: &[u8]) -> String {
    let s = String::from_utf8_lossy(&cmd[..cmd.len().min(16)]).into_owned();
    if cmd.len() > 16 { format!("{s}…") } else { s }
}

impl Simulation {
    /// The node `k` places after `id`, cyclically (the lab's `(id + k) % servers`).
    pub fn peer(&self, id: NodeId, k: usize) -> NodeId {
        let n = self.n() as u64;
        (id - 1 + k as u64) % n + 1
    }

    /// The lab's `ts.restart(i)`: start the server, then connect the whole group.
    pub fn restart(&mut self, id: NodeId) {
        self.start_server(id);
        self.connect_all();
    }

    /// The lab's `checkOneLeader`: up to 10 rounds of sleeping 450–549 ms and asking
    /// every connected server; fails if a term has two leaders or none is found.
    pub fn check_one_leader(&mut self) -> NodeId {
        for _ in 0..10 {
            let ms = 450 + self.rng().below(100);
            self.run_for(ms * MS);
            let mut leaders: BTreeMap<u64, Vec<NodeId>> = BTreeMap::new();
            for id in self.ids() {
                if self.is_connected(id)
                    && let Some((term, true)) = self.get_state(id)
                {
                    leaders.entry(term).or_default().push(id);
                }
            }
            for (term, ls) in &leaders {
                if ls.len() > 1 {
                    self.fatal(format_args!(
                        "term {term} has {} (>1) leaders: {ls:?}",
                        ls.len()
                    ));
                }
            }
            if let Some((_, ls)) = leaders.iter().next_back() {
                return ls[0];
            }
        }
        self.fatal("expected one leader, got none")
    }

    /// The lab's `checkTerms`: every connected server reports the same term.
    pub fn check_terms(&self) -> u64 {
        let mut term = None;
        for id in self.ids() {
            if !self.is_connected(id) {
                continue;
            }
            let Some((t, _)) = self.get_state(id) else {
                continue;
            };
            match term {
                None => term = Some(t),
                Some(x) if x != t => self.fatal(format_args!(
                    "servers disagree on term ({x} vs {t} at node {id})"
                )),
                Some(_) => {}
            }
        }
        term.unwrap_or(0)
    }

    /// The lab's `checkNoLeader`: no connected server thinks it is leader.
    pub fn check_no_leader(&self) {
        for id in self.ids() {
            if self.is_connected(id) && matches!(self.get_state(id), Some((_, true))) {
                self.fatal(format_args!(
                    "expected no leader among connected servers, but {id} is one"
                ));
            }
        }
    }

    /// The lab's `checkNoAgreement(index)`.
    pub fn check_no_agreement(&self, index: u64) {
        let (n, _) = self.n_committed(index);
        if n > 0 {
            self.fatal(format_args!("{n} committed index {index} but no majority"));
        }
    }

    /// The lab's `nCommitted(index)`: how many servers have applied `index`, and the
    /// value there.
    pub fn n_committed(&self, index: u64) -> (usize, Option<Arc<[u8]>>) {
        let count = self
            .ids()
            .filter(|&id| index > 0 && self.applied_view(id) >= index)
            .count();
        let value = if count > 0 {
            self.committed_value(index)
        } else {
            None
        };
        (count, value)
    }

    /// The lab's `one(cmd, expectedServers, retry)`; returns the index.
    pub fn one(&mut self, cmd: impl Into<Vec<u8>>, expected: usize, retry: bool) -> u64 {
        let task = OneTask::new(self, cmd.into(), expected, retry);
        self.run_one_task(task)
    }

    /// `one()` with another overall limit than the lab's 10 s (with retries).
    pub fn one_within(&mut self, cmd: impl Into<Vec<u8>>, expected: usize, limit: Duration) -> u64 {
        let task = OneTask::new(self, cmd.into(), expected, true).with_limit(limit);
        self.run_one_task(task)
    }

    fn run_one_task(&mut self, mut task: OneTask) -> u64 {
        loop {
            match task.poll(self) {
                Poll::Ready(index) => return index,
                Poll::Pending(at) => self.run_until(at),
            }
        }
    }

    /// Starts the lab's `one()` as a background task (a goroutine); the index it
    /// reaches appears in the returned cell.
    pub fn spawn_one(
        &mut self,
        cmd: impl Into<Vec<u8>>,
        expected: usize,
        retry: bool,
    ) -> Rc<RefCell<Option<u64>>> {
        let result = Rc::new(RefCell::new(None));
        let out = Rc::clone(&result);
        let mut task: Option<OneTask> = None;
        let cmd = cmd.into();
        self.spawn(move |sim| {
            let t = task.get_or_insert_with(|| OneTask::new(sim, cmd.clone(), expected, retry));
            match t.poll(sim) {
                Poll::Ready(index) => {
                    *out.borrow_mut() = Some(index);
                    TaskStep::Done
                }
                Poll::Pending(at) => TaskStep::SleepUntil(at),
            }
        });
        result
    }

    /// The lab's `wait(index, n, startTerm)`: up to 30 polls with backoff from 10 ms to
    /// about 1 s for at least `n` servers to commit `index`. `None` if some server's
    /// term passed `start_term` (the lab's `-1` return); fails if too few commit.
    pub fn wait(&mut self, index: u64, n: usize, start_term: Option<u64>) -> Option<Arc<[u8]>> {
        let mut to = 10 * MS;
        for _ in 0..30 {
            let (nd, _) = self.n_committed(index);
            if nd >= n {
                break;
            }
            self.run_for(to);
            if to < SECOND {
                to *= 2;
            }
            if let Some(st) = start_term {
                for id in self.ids() {
                    if let Some((t, _)) = self.get_state(id)
                        && t > st
                    {
                        return None;
                    }
                }
            }
        }
        let (nd, value) = self.n_committed(index);
        if nd < n {
            self.fatal(format_args!(
                "only {nd} decided for index {index}; wanted {n}"
            ));
        }
        value
    }

    /// The no-op adaptation of the lab's exact-index checks ("the index must be
    /// `prev + 1`"): our leaders append an empty no-op entry when they take office, so
    /// a command lands at `prev + 1` *plus one slot per no-op in between*. Checks that
    /// `index` (just returned by `one()` or `Start()`) is the accepting leader's last
    /// index + 1, is above `prev`, and that every index strictly between `prev` and
    /// `index` that some server applied holds a no-op (no other command slipped in).
    pub fn check_next_index(&self, prev: u64, index: u64) {
        let Some(rec) = self.last_start() else {
            self.fatal("check_next_index: no Start() was accepted");
        };
        if rec.index != index {
            self.fatal(format_args!(
                "check_next_index: the last accepted Start() was at index {} (node {}), not {index}",
                rec.index, rec.node
            ));
        }
        if index != rec.last_index_before + 1 {
            self.fatal(format_args!(
                "got index {index} but expected {} (leader {}'s last index + 1)",
                rec.last_index_before + 1,
                rec.node
            ));
        }
        if index <= prev {
            self.fatal(format_args!(
                "got index {index} but expected one above {prev}"
            ));
        }
        for i in prev + 1..index {
            if let Some(v) = self.committed_value(i)
                && !v.is_empty()
            {
                self.fatal(format_args!(
                    "got index {index} after {prev}, but index {i} holds the command {:?}, not a \
                     leader's no-op",
                    String::from_utf8_lossy(&v)
                ));
            }
        }
    }

    /// Fails if more than the lab's 120 s have passed (in virtual time) since `start`.
    /// Also prints what the test did (shown with `--nocapture`).
    pub fn check_time_limit(&self, start: Micros) {
        let stats = self.stats();
        let net = self.net_stats();
        println!(
            "seed={}: {} of virtual time, {} events, {} messages ({} lost, {} cut), {} crashes, \
             {} elected terms, {} entries committed, {} snapshots installed",
            self.seed(),
            super::fmt_time(self.now() - start),
            stats.events,
            net.messages_sent,
            net.messages_lost,
            net.messages_cut,
            stats.crashes,
            stats.leaders,
            stats.max_applied,
            net.snapshots_installed,
        );
        if self.now() - start > super::clock::micros(LAB_TEST_LIMIT) {
            self.fatal("test took longer than 120 seconds (virtual time)");
        }
    }
}
