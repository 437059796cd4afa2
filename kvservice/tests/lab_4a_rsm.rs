//! MIT 6.5840 (2025) Lab 4A, `src/kvraft1/rsm/rsm_test.go` (plus its TestSnapshot4C),
//! ported onto raftkv's replicated state machine ([`Rsm::submit`] on each member of a
//! [`LocalCluster`]).
//!
//! **Adaptation.** The lab's rsm tests run a counter state machine; ours is the KV state
//! machine, so the counter is a key:
//! * `Inc` is an unconditional `Put` of key `"counter"`; the reply's new version is the
//!   lab's `IncRep.N`, and a member's counter is the key's version in its applied state;
//! * `Null` is a `Get` of key `"null"` submitted through the log (it changes nothing);
//! * `Dec` is a `Put` of key `"dec"`. The lab's DoOp treats executing a Dec as fatal;
//!   here no member's applied state may ever hold key `"dec"`, and no Dec submit may
//!   return a reply.
//!
//! Every submission is a fresh (client id, sequence number) pair; the lab's
//! `onePartition` re-submits it to the next member on failure, which our dedup table
//! makes exactly-once. `onePartition` skips disconnected members and gives up after
//! 10 s, as in the lab.
//!
//! TestLeaderPartition4A runs with CheckQuorum off, as the lab's Raft (which has none):
//! the isolated leader keeps believing it leads, so its Dec submits must hang until the
//! heal. `TestLeaderPartition4A_checkquorum` runs it with our default CheckQuorum, where
//! the isolated leader steps down and its Decs fail early with `WrongLeader`; there only
//! "no Dec succeeds or executes" and "all return within 1 s of the heal" are checked.
//!
//! `checkCounter` waits up to 10 s (the lab's backoff allows ~30 s) so that a failure
//! ends within the wall-time budget.
//!
//! The restart and snapshot scenarios also run on the file backend (`_file`) and, with
//! the `rocksdb` feature, on RocksDB (`_rocksdb`).
//!
//! Replay a failure with the seed it prints (best effort: threads are real):
//! `RAFTKV_KVLAB_SEED=<n> cargo test -p raftkv-kvservice --test lab_4a_rsm <name>`.
//!
//! [`Rsm::submit`]: raftkv_kvservice::rsm::Rsm::submit
//! [`LocalCluster`]: raftkv_kvservice::cluster::LocalCluster

#![expect(non_snake_case, reason = "the tests keep the lab's names")]

mod kvlab;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kvlab::{Lab, LabConfig, StorageKind};
use raftkv_kvservice::command::{Command, Op, Reply};
use raftkv_kvservice::rsm::now_ms;
use raftkv_storage::NodeId;

const FILE: &str = "lab_4a_rsm";
const NSRV: u64 = 3;
/// The lab's NSEC: how long `onePartition` keeps trying.
const NSEC: Duration = Duration::from_secs(10);
const COUNTER: &[u8] = b"counter";

/// The rsm tester: a [`Lab`] plus the last known leader and a client id source.
struct RsmTest {
    lab: Lab,
    leader: std::sync::Mutex<NodeId>,
    next_client: AtomicU64,
}

#[derive(Clone, Copy)]
enum Req {
    Inc,
    Null,
    Dec,
}

impl Req {
    fn op(self) -> Op {
        match self {
            Req::Inc => Op::Put {
                key: Bytes::from_static(COUNTER),
                value: Bytes::from_static(b"inc"),
            },
            Req::Null => Op::Get {
                key: Bytes::from_static(b"null"),
            },
            Req::Dec => Op::Put {
                key: Bytes::from_static(b"dec"),
                value: Bytes::from_static(b"dec"),
            },
        }
    }
}

impl RsmTest {
    fn start(name: &'static str, maxraftstate: i64, storage: StorageKind) -> RsmTest {
        RsmTest::start_with(name, maxraftstate, storage, true)
    }

    fn start_with(
        name: &'static str,
        maxraftstate: i64,
        storage: StorageKind,
        check_quorum: bool,
    ) -> RsmTest {
        let config = LabConfig {
            maxraftstate,
            storage,
            ..LabConfig::new(NSRV)
        };
        let lab = Lab::start_with(FILE, name, config, |c| c.raft.check_quorum = check_quorum);
        RsmTest {
            lab,
            leader: std::sync::Mutex::new(1),
            next_client: AtomicU64::new(1),
        }
    }

    fn command(&self, req: Req) -> Command {
        Command {
            client_id: self.next_client.fetch_add(1, Ordering::Relaxed),
            seq: 1,
            ts_ms: now_ms(),
            op: req.op(),
        }
    }

    /// Submits `cmd` directly to member `id`'s RSM (the lab's `srv.rsm.Submit`).
    fn submit_to(&self, id: NodeId, cmd: &Command) -> Option<Result<Reply, String>> {
        let r = self.lab.cluster.replica(id)?;
        Some(r.rsm().submit(cmd.clone()).map_err(|e| e.to_string()))
    }

    /// The lab's `onePartition(p, req)`: tries the members of `p` in turn, starting at the
    /// last known leader, for up to 10 s; `None` on timeout.
    fn one_partition(&self, p: &[NodeId], req: Req) -> Option<Reply> {
        let cmd = self.command(req);
        let ids = self.lab.ids();
        let t0 = Instant::now();
        while t0.elapsed() < NSEC {
            let start = *self.leader.lock().expect("leader");
            for k in 0..ids.len() {
                let id = ids[(ids.iter().position(|&i| i == start).unwrap_or(0) + k) % ids.len()];
                if !p.contains(&id) || !self.lab.cluster.network().is_connected(id) {
                    continue;
                }
                if let Some(Ok(reply)) = self.submit_to(id, &cmd) {
                    *self.leader.lock().expect("leader") = id;
                    return Some(reply);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// An Inc through every member; returns the counter it produced.
    fn one_inc(&self) -> u64 {
        self.inc_in(&self.lab.ids())
    }

    fn inc_in(&self, p: &[NodeId]) -> u64 {
        match self.one_partition(p, Req::Inc) {
            Some(Reply::Written { version }) => version,
            Some(other) => self.lab.fail(&format!("Inc answered {other:?}")),
            None => self.lab.fail("Inc did not complete within 10 s"),
        }
    }

    fn counter(&self, id: NodeId) -> Option<u64> {
        let r = self.lab.cluster.replica(id)?;
        Some(
            r.rsm()
                .with_state(|sm| sm.store().get(COUNTER).map_or(0, |v| v.version)),
        )
    }

    /// The lab's `checkCounter(v, n)`: at least `n` members reach counter `v`.
    fn check_counter(&self, v: u64, n: usize) {
        let t0 = Instant::now();
        let mut wait = Duration::from_millis(10);
        loop {
            let counts: Vec<_> = self.lab.ids().iter().map(|&i| self.counter(i)).collect();
            let at = counts.iter().filter(|c| **c == Some(v)).count();
            if at >= n {
                return;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                self.lab.fail(&format!(
                    "only {at} members reached counter {v}; wanted {n} (counters {counts:?})"
                ));
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    /// No member ever executed a Dec.
    fn check_no_dec(&self) {
        for id in self.lab.ids() {
            if let Some(r) = self.lab.cluster.replica(id) {
                let dec = r.rsm().with_state(|sm| sm.store().get(b"dec").is_some());
                self.lab
                    .check(!dec, || format!("member {id} executed a Dec"));
            }
        }
    }

    /// 100 concurrent Null submits; after 20 ms every member crashes. Every submit must
    /// return within NSEC + 1 s.
    fn nulls_then_crash(self: &Arc<Self>) {
        const N: usize = 100;
        let (tx, rx) = channel();
        let t0 = Instant::now();
        let threads: Vec<_> = (0..N)
            .map(|_| {
                let t = Arc::clone(self);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let all = t.lab.ids();
                    let _ = t.one_partition(&all, Req::Null);
                    let _ = tx.send(());
                })
            })
            .collect();
        drop(tx);
        std::thread::sleep(Duration::from_millis(20));
        for id in self.lab.ids() {
            self.lab.cluster.crash(id);
        }
        for i in 0..N {
            let left = (NSEC + Duration::from_secs(1)).saturating_sub(t0.elapsed());
            if rx.recv_timeout(left).is_err() {
                self.lab.fail(&format!(
                    "{} of {N} submits did not return within {:?} of the shutdown",
                    N - i,
                    NSEC + Duration::from_secs(1)
                ));
            }
        }
        for h in threads {
            let _ = h.join();
        }
    }

    fn restart_all(&self) {
        for id in self.lab.ids() {
            if let Err(e) = self.lab.cluster.restart(id) {
                self.lab.fail(&format!("restart member {id}: {e}"));
            }
        }
    }
}

/// Test that submitted operations are executed in order.
#[test]
fn TestBasic4A() {
    let ts = RsmTest::start("TestBasic4A", -1, StorageKind::Memory);
    for i in 0..10 {
        let r = ts.one_inc();
        ts.lab
            .check(r == i + 1, || format!("expected {} instead of {r}", i + 1));
        ts.check_counter(r, NSRV as usize);
    }
    ts.lab.passed();
}

/// Test concurrent submits.
#[test]
fn TestConcurrent4A() {
    const NINC: u64 = 50;
    let ts = Arc::new(RsmTest::start("TestConcurrent4A", -1, StorageKind::Memory));
    let threads: Vec<_> = (0..NINC)
        .map(|_| {
            let ts = Arc::clone(&ts);
            std::thread::spawn(move || ts.one_inc())
        })
        .collect();
    for h in threads {
        if let Err(e) = h.join() {
            std::panic::resume_unwind(e);
        }
    }
    ts.check_counter(NINC, NSRV as usize);
    ts.lab.passed();
}

/// Test that the leader's failure is handled: the other members continue.
#[test]
fn TestLeaderFailure4A() {
    let ts = RsmTest::start("TestLeaderFailure4A", -1, StorageKind::Memory);
    let r0 = ts.one_inc();
    let Some(l) = ts.lab.cluster.leader() else {
        ts.lab.fail("no leader")
    };
    ts.lab.cluster.network().disconnect(l);
    let r1 = ts.one_inc();
    ts.lab.check(r1 == r0 + 1, || {
        format!("expected {} instead of {r1}", r0 + 1)
    });
    ts.check_counter(r1, NSRV as usize - 1);
    ts.lab.cluster.network().reconnect(l);
    ts.check_counter(r1, NSRV as usize);
    ts.lab.passed();
}

fn leader_partition(name: &'static str, check_quorum: bool) {
    const NDEC: usize = 100;
    let ts = Arc::new(RsmTest::start_with(
        name,
        -1,
        StorageKind::Memory,
        check_quorum,
    ));
    let r = ts.one_inc();
    ts.check_counter(r, NSRV as usize);
    let Some(l) = ts.lab.cluster.leader() else {
        ts.lab.fail("no leader")
    };
    let majority: Vec<NodeId> = ts.lab.ids().into_iter().filter(|&i| i != l).collect();
    ts.lab.cluster.partition(&[&majority, &[l]]);

    // Many Decs to the old leader, which cannot commit them.
    let (tx, done) = channel();
    for _ in 0..NDEC {
        let ts = Arc::clone(&ts);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let cmd = ts.command(Req::Dec);
            let r = ts.submit_to(l, &cmd);
            let _ = tx.send(r);
        });
    }
    drop(tx);
    std::thread::sleep(Duration::from_millis(10));

    // An Inc in the majority.
    let n = ts.inc_in(&majority);
    ts.lab
        .check(n == r + 1, || format!("expected {} instead of {n}", r + 1));

    let mut returned = 0;
    let window = Instant::now() + Duration::from_secs(1);
    while let Ok(res) = done.recv_timeout(window.saturating_duration_since(Instant::now())) {
        returned += 1;
        if let Some(Ok(reply)) = res {
            ts.lab
                .fail(&format!("Dec in the minority returned a reply: {reply:?}"));
        }
    }
    if !check_quorum {
        ts.lab.check(returned < NDEC, || {
            "all Decs in the minority returned within 1 s while partitioned".into()
        });
    }

    ts.lab.cluster.heal();
    let deadline = Instant::now() + Duration::from_secs(1);
    for _ in returned..NDEC {
        match done.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Some(Ok(reply))) => ts
                .lab
                .fail(&format!("Dec in the minority returned a reply: {reply:?}")),
            Ok(_) => {}
            Err(_) => ts
                .lab
                .fail("a Dec did not return within 1 s after the heal"),
        }
    }
    ts.check_counter(n, NSRV as usize);
    ts.check_no_dec();
    ts.lab.passed();
}

/// The old leader, alone in a minority, must not execute operations submitted to it.
#[test]
fn TestLeaderPartition4A() {
    leader_partition("TestLeaderPartition4A", false);
}

/// TestLeaderPartition4A with CheckQuorum on (our default; see the header).
#[test]
fn TestLeaderPartition4A_checkquorum() {
    leader_partition("TestLeaderPartition4A_checkquorum", true);
}

fn restart_replay(name: &'static str, storage: StorageKind) {
    const NINC: u64 = 100;
    let ts = RsmTest::start(name, -1, storage);
    for i in 0..NINC {
        let r = ts.one_inc();
        ts.lab
            .check(r == i + 1, || format!("expected {} instead of {r}", i + 1));
        ts.check_counter(r, NSRV as usize);
    }
    ts.lab.crash_restart_all();
    let r = ts.one_inc();
    ts.lab.check(r == NINC + 1, || {
        format!("expected {} after replay instead of {r}", NINC + 1)
    });
    std::thread::sleep(Duration::from_secs(1));
    ts.check_counter(r, NSRV as usize);
    ts.lab.passed();
}

/// Test that the RSM replays the log into the state machine after a restart.
#[test]
fn TestRestartReplay4A() {
    restart_replay("TestRestartReplay4A", StorageKind::Memory);
}

#[test]
fn TestRestartReplay4A_file() {
    restart_replay("TestRestartReplay4A_file", StorageKind::File);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestRestartReplay4A_rocksdb() {
    restart_replay("TestRestartReplay4A_rocksdb", StorageKind::Rocksdb);
}

/// Test that pending submits return after a shutdown.
#[test]
fn TestShutdown4A() {
    let ts = Arc::new(RsmTest::start("TestShutdown4A", -1, StorageKind::Memory));
    ts.nulls_then_crash();
    ts.lab.passed();
}

fn restart_submit(name: &'static str, storage: StorageKind) {
    const NINC: u64 = 100;
    let ts = Arc::new(RsmTest::start(name, -1, storage));
    for i in 0..NINC {
        let r = ts.one_inc();
        ts.lab
            .check(r == i + 1, || format!("expected {} instead of {r}", i + 1));
        ts.check_counter(r, NSRV as usize);
    }
    ts.lab.crash_restart_all();
    let r = ts.one_inc();
    ts.lab.check(r == NINC + 1, || {
        format!("expected {} after replay instead of {r}", NINC + 1)
    });
    std::thread::sleep(Duration::from_secs(1));
    ts.check_counter(r, NSRV as usize);

    ts.nulls_then_crash();
    ts.restart_all();
    let r = ts.one_inc();
    ts.check_counter(r, NSRV as usize);
    ts.check_no_dec();
    ts.lab.passed();
}

/// Test that old submissions (from before a shutdown) and new ones are not confused.
#[test]
fn TestRestartSubmit4A() {
    restart_submit("TestRestartSubmit4A", StorageKind::Memory);
}

#[test]
fn TestRestartSubmit4A_file() {
    restart_submit("TestRestartSubmit4A_file", StorageKind::File);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestRestartSubmit4A_rocksdb() {
    restart_submit("TestRestartSubmit4A_rocksdb", StorageKind::Rocksdb);
}

fn snapshot(name: &'static str, storage: StorageKind) {
    const NINC: u64 = 100;
    const MAXRAFTSTATE: i64 = 1000;
    let ts = RsmTest::start(name, MAXRAFTSTATE, storage);
    for i in 0..NINC {
        let r = ts.one_inc();
        ts.lab
            .check(r == i + 1, || format!("expected {} instead of {r}", i + 1));
    }
    ts.check_counter(NINC, NSRV as usize);
    let sz = ts.lab.cluster.max_raft_state_size();
    ts.lab.check(sz <= 2 * MAXRAFTSTATE as u64, || {
        format!("logs were not trimmed ({sz} > 2 * {MAXRAFTSTATE})")
    });
    ts.lab.crash_restart_all();
    let r = ts.one_inc();
    ts.lab.check(r == NINC + 1, || {
        format!(
            "expected {} after restoring the snapshot instead of {r}",
            NINC + 1
        )
    });
    ts.check_counter(r, NSRV as usize);
    ts.lab.passed();
}

/// Test that the RSM snapshots (LogSize ≤ 2 × maxraftstate) and restores the snapshot
/// on restart.
#[test]
fn TestSnapshot4C() {
    snapshot("TestSnapshot4C", StorageKind::Memory);
}

#[test]
fn TestSnapshot4C_file() {
    snapshot("TestSnapshot4C_file", StorageKind::File);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshot4C_rocksdb() {
    snapshot("TestSnapshot4C_rocksdb", StorageKind::Rocksdb);
}
