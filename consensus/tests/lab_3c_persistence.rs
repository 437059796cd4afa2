//! MIT 6.5840 Lab 3C (persistence), ported onto the deterministic simulator.
//!
//! Source: `src/raft1/raft_test.go` of the 2025 lab (catalogued in the team's
//! `lab-tests.md`, §2.2). Same scenarios and thresholds; every sleep is virtual time
//! and the lab's 120 s per-test limit is checked in virtual time. A crash is the lab's
//! `ShutdownServer` (disconnect, then the instance is dropped; it restarts from
//! `MemoryPersister::crash_image()`, the lab's `Persister.Copy()`, or by reopening its
//! directory with the file backend), and `restart` is the 2025 `ts.restart`: start the
//! server, then connect the whole group. Messages in flight to or from a crashed
//! instance are dropped. Servers are `1..=n`; `(leader + k) % servers` is
//! `sim.peer(leader, k)`. Commands are integers as decimal strings. A failure names
//! the seed (`RAFTKV_LAB_SEED` replays or varies it).
//!
//! Every test runs twice: on the memory backend and on the file backend (a tempdir).
//!
//! **Adaptation (no-op entries).** Our leader appends an empty no-op entry when it
//! takes office. TestPersist13C's "wait until index 4 is on all 3" waits for the index
//! at which 14 was committed (index 4 in the lab). The churn tests' final pass reads
//! every index up to `lastIndex`; the lab requires each to hold an int, and the
//! leaders' no-ops (empty commands) are skipped there instead. Nothing else looks at
//! indices.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use raftkv_consensus::sim::harness::{RAFT_ELECTION_TIMEOUT, cmd, cmd_value, lab_seed};
use raftkv_consensus::sim::{MS, SimConfig, Simulation, StorageMode, TaskStep};

/// The backend a test runs on; keeps the tempdir alive for the file backend.
enum Backend {
    Memory,
    File(tempfile::TempDir),
}

impl Backend {
    fn file() -> Self {
        Backend::File(tempfile::tempdir().expect("create a tempdir"))
    }

    fn mode(&self) -> StorageMode {
        match self {
            Backend::Memory => StorageMode::Memory,
            Backend::File(d) => StorageMode::File(d.path().to_path_buf()),
        }
    }
}

fn make(test: &str, servers: usize, reliable: bool, backend: &Backend) -> Simulation {
    Simulation::new(
        SimConfig::lab(lab_seed(test), servers, reliable, false).with_storage(backend.mode()),
    )
}

fn rand_cmd(ts: &mut Simulation) -> Vec<u8> {
    let x = ts.rng().next_u64() >> 1;
    cmd(x)
}

/// The lab's Figure 8 sleep: 0–499 ms with 10 % probability, otherwise 0–12 ms.
fn figure8_sleep(ts: &mut Simulation) {
    let ms = if ts.rng().below(1000) < 100 {
        ts.rng().below(RAFT_ELECTION_TIMEOUT.as_millis() as u64 / 2)
    } else {
        ts.rng().below(13)
    };
    ts.run_for(ms * MS);
}

/// TestPersist13C: basic persistence.
fn persist1(backend: Backend) {
    let servers = 3;
    let mut ts = make("TestPersist13C", servers, true, &backend);
    let start = ts.now();

    ts.one(cmd(11), servers, true);

    ts.shutdown_all();
    ts.start_servers();

    ts.one(cmd(12), servers, true);

    let leader1 = ts.check_one_leader();
    ts.shutdown_server(leader1);
    ts.restart(leader1);

    ts.one(cmd(13), servers, true);

    let leader2 = ts.check_one_leader();
    ts.shutdown_server(leader2);

    let i14 = ts.one(cmd(14), servers - 1, true);

    ts.restart(leader2);

    // Wait for leader2 to join before killing i3 (lab: index 4, where 14 went).
    ts.wait(i14, servers, None);

    let leader3 = ts.check_one_leader();
    let i3 = ts.peer(leader3, 1);
    ts.shutdown_server(i3);

    ts.one(cmd(15), servers - 1, true);

    ts.restart(i3);

    ts.one(cmd(16), servers, true);
    ts.check_time_limit(start);
}

#[test]
fn persist1_3c_memory() {
    persist1(Backend::Memory);
}

#[test]
fn persist1_3c_file() {
    persist1(Backend::file());
}

/// TestPersist23C: more persistence: 5 rounds of crashing and restarting 2 and 3
/// servers in a 5-server cluster.
fn persist2(backend: Backend) {
    let servers = 5;
    let mut ts = make("TestPersist23C", servers, true, &backend);
    let start = ts.now();

    let mut index = 1;
    for _ in 0..5 {
        ts.one(cmd(10 + index), servers, true);
        index += 1;

        let leader1 = ts.check_one_leader();

        ts.shutdown_server(ts.peer(leader1, 1));
        ts.shutdown_server(ts.peer(leader1, 2));

        ts.one(cmd(10 + index), servers - 2, true);
        index += 1;

        ts.shutdown_server(leader1);
        ts.shutdown_server(ts.peer(leader1, 3));
        ts.shutdown_server(ts.peer(leader1, 4));

        ts.restart(ts.peer(leader1, 1));
        ts.restart(ts.peer(leader1, 2));

        ts.sleep(RAFT_ELECTION_TIMEOUT);

        ts.restart(ts.peer(leader1, 3));

        ts.one(cmd(10 + index), servers - 2, true);
        index += 1;

        ts.restart(ts.peer(leader1, 4));
        ts.restart(leader1);
    }

    ts.one(cmd(1000), servers, true);
    ts.check_time_limit(start);
}

#[test]
fn persist2_3c_memory() {
    persist2(Backend::Memory);
}

#[test]
fn persist2_3c_file() {
    persist2(Backend::file());
}

/// TestPersist33C: partitioned leader and one follower crash, leader restarts.
fn persist3(backend: Backend) {
    let servers = 3;
    let mut ts = make("TestPersist33C", servers, true, &backend);
    let start = ts.now();

    ts.one(cmd(101), 3, true);

    let leader = ts.check_one_leader();
    ts.disconnect(ts.peer(leader, 2));

    ts.one(cmd(102), 2, true);

    ts.shutdown_server(leader);
    ts.shutdown_server(ts.peer(leader, 1));
    ts.connect(ts.peer(leader, 2));
    ts.restart(leader);

    ts.one(cmd(103), 2, true);

    ts.restart(ts.peer(leader, 1));

    ts.one(cmd(104), servers, true);
    ts.check_time_limit(start);
}

#[test]
fn persist3_3c_memory() {
    persist3(Backend::Memory);
}

#[test]
fn persist3_3c_file() {
    persist3(Backend::file());
}

/// TestFigure83C: the scenarios of Figure 8 of the extended Raft paper: 1000
/// iterations of Start() on every live server, a random sleep, crashing the server
/// that accepted, and restarting one when fewer than 3 are up.
fn figure8(backend: Backend) {
    let servers = 5;
    let mut ts = make("TestFigure83C", servers, true, &backend);
    let start = ts.now();

    let c = rand_cmd(&mut ts);
    ts.one(c, 1, true);

    let mut nup = servers;
    for _ in 0..1000 {
        let mut leader = None;
        for i in ts.ids() {
            if ts.is_alive(i) {
                let c = rand_cmd(&mut ts);
                if ts.start(i, c).is_some() {
                    leader = Some(i);
                }
            }
        }

        figure8_sleep(&mut ts);

        if let Some(l) = leader {
            ts.shutdown_server(l);
            nup -= 1;
        }

        if nup < 3 {
            let s = ts.rng().below(servers as u64) + 1;
            if !ts.is_alive(s) {
                ts.restart(s);
                nup += 1;
            }
        }
    }

    for i in ts.ids() {
        if !ts.is_alive(i) {
            ts.restart(i);
        }
    }

    let c = rand_cmd(&mut ts);
    ts.one(c, servers, true);
    ts.check_time_limit(start);
}

#[test]
fn figure8_3c_memory() {
    figure8(Backend::Memory);
}

#[test]
fn figure8_3c_file() {
    figure8(Backend::file());
}

/// TestUnreliableAgree3C: 49 iterations of 4 concurrent `one(…, 1, retry)` plus one
/// sequential one on an unreliable network; then reliable, and `one(100, 5)`.
fn unreliable_agree(backend: Backend) {
    let servers = 5;
    let mut ts = make("TestUnreliableAgree3C", servers, false, &backend);
    let start = ts.now();

    let mut results = Vec::new();
    for iters in 1..50u64 {
        for j in 0..4u64 {
            results.push(ts.spawn_one(cmd(100 * iters + j), 1, true));
        }
        ts.one(cmd(iters), 1, true);
    }

    ts.set_reliable(true);

    ts.join_tasks(Duration::from_secs(30));
    assert!(results.iter().all(|r| r.borrow().is_some()));

    ts.one(cmd(100), servers, true);
    ts.check_time_limit(start);
}

#[test]
fn unreliable_agree_3c_memory() {
    unreliable_agree(Backend::Memory);
}

#[test]
fn unreliable_agree_3c_file() {
    unreliable_agree(Backend::file());
}

/// TestFigure8Unreliable3C: Figure 8 on an unreliable network with long reordering
/// from iteration 200: 1000 iterations of Start() on every server, a random sleep,
/// disconnecting the connected leader with 50 % probability, reconnecting one when
/// fewer than 3 are connected.
fn figure8_unreliable(backend: Backend) {
    let servers = 5;
    let mut ts = make("TestFigure8Unreliable3C", servers, false, &backend);
    let start = ts.now();

    let x = ts.rng().below(10_000);
    ts.one(cmd(x), 1, true);

    let mut nup = servers;
    for iters in 0..1000 {
        if iters == 200 {
            ts.set_long_reordering(true);
        }
        let mut leader = None;
        for i in ts.ids() {
            let x = ts.rng().below(10_000);
            let ok = ts.start(i, cmd(x)).is_some();
            if ok && ts.is_connected(i) {
                leader = Some(i);
            }
        }

        figure8_sleep(&mut ts);

        if let Some(l) = leader
            && ts.rng().below(1000) < RAFT_ELECTION_TIMEOUT.as_millis() as u64 / 2
        {
            ts.disconnect(l);
            nup -= 1;
        }

        if nup < 3 {
            let s = ts.rng().below(servers as u64) + 1;
            if !ts.is_connected(s) {
                ts.connect(s);
                nup += 1;
            }
        }
    }

    for i in ts.ids() {
        if !ts.is_connected(i) {
            ts.connect(i);
        }
    }

    let x = ts.rng().below(10_000);
    ts.one(cmd(x), servers, true);
    ts.check_time_limit(start);
}

#[test]
fn figure8_unreliable_3c_memory() {
    figure8_unreliable(Backend::Memory);
}

#[test]
fn figure8_unreliable_3c_file() {
    figure8_unreliable(Backend::file());
}

/// One of the churn test's clients: keeps Start()ing random values on every live
/// server and polls for their commit (10, 20, 50, 100, 200 ms), recording every value
/// it saw committed.
struct ChurnClient {
    me: u64,
    stop: Rc<Cell<bool>>,
    values: Rc<RefCell<Vec<u64>>>,
    polling: Option<(u64, u64, usize)>,
}

impl ChurnClient {
    fn step(&mut self, ts: &mut Simulation) -> TaskStep {
        const BACKOFF_MS: [u64; 5] = [10, 20, 50, 100, 200];
        loop {
            if let Some((index, x, k)) = self.polling {
                if k == BACKOFF_MS.len() {
                    // Gave up on this value after the last sleep, as the lab does.
                    self.polling = None;
                    continue;
                }
                let (nd, value) = ts.n_committed(index);
                if nd > 0 {
                    match value.as_deref().map(cmd_value) {
                        Some(Some(v)) => {
                            if v == x {
                                self.values.borrow_mut().push(x);
                            }
                        }
                        // A leader's no-op took the index: the value was not ours.
                        Some(None) if value.as_deref() == Some(&[][..]) => {}
                        _ => ts.fatal("wrong command type"),
                    }
                    self.polling = None;
                    continue;
                }
                self.polling = Some((index, x, k + 1));
                return TaskStep::SleepUntil(ts.now() + BACKOFF_MS[k] * MS);
            }
            if self.stop.get() {
                return TaskStep::Done;
            }
            let x = ts.rng().next_u64() >> 1;
            let mut index = None;
            for i in ts.ids() {
                // Try them all, maybe one of them is a leader.
                if let Some((index1, _)) = ts.start(i, cmd(x)) {
                    index = Some(index1);
                }
            }
            match index {
                // Maybe the leader will commit our value, maybe not, but don't wait
                // forever.
                Some(index) => self.polling = Some((index, x, 0)),
                None => return TaskStep::SleepUntil(ts.now() + (79 + self.me * 17) * MS),
            }
        }
    }
}

/// TestReliableChurn3C / TestUnreliableChurn3C.
fn churn(test: &str, reliable: bool, backend: Backend) {
    let servers = 5;
    let mut ts = make(test, servers, reliable, &backend);
    let start = ts.now();

    let stop = Rc::new(Cell::new(false));
    let ncli = 3;
    let mut all_values = Vec::new();
    for me in 0..ncli {
        let values = Rc::new(RefCell::new(Vec::new()));
        all_values.push(Rc::clone(&values));
        let mut client = ChurnClient {
            me,
            stop: Rc::clone(&stop),
            values,
            polling: None,
        };
        ts.spawn(move |ts| client.step(ts));
    }

    for _ in 0..20 {
        if ts.rng().below(1000) < 200 {
            let i = ts.rng().below(servers as u64) + 1;
            ts.disconnect(i);
        }

        if ts.rng().below(1000) < 500 {
            let i = ts.rng().below(servers as u64) + 1;
            if !ts.is_alive(i) {
                ts.restart(i);
            }
            ts.connect(i);
        }

        if ts.rng().below(1000) < 200 {
            let i = ts.rng().below(servers as u64) + 1;
            if ts.is_alive(i) {
                ts.shutdown_server(i);
            }
        }

        // Make crash/restart infrequent enough that the peers can often keep up, but
        // not so infrequent that everything has settled down from one change to the
        // next. Pick a value smaller than the election timeout, but not hugely smaller.
        ts.sleep(RAFT_ELECTION_TIMEOUT * 7 / 10);
    }

    ts.sleep(RAFT_ELECTION_TIMEOUT);
    ts.set_reliable(true);
    for i in ts.ids() {
        if !ts.is_alive(i) {
            ts.restart(i);
        }
        ts.connect(i);
    }

    stop.set(true);
    ts.join_tasks(Duration::from_secs(10));
    let values: Vec<u64> = all_values.iter().flat_map(|v| v.borrow().clone()).collect();

    ts.sleep(RAFT_ELECTION_TIMEOUT);

    let c = rand_cmd(&mut ts);
    let last_index = ts.one(c, servers, true);

    let mut really = Vec::new();
    for index in 1..=last_index {
        let Some(v) = ts.wait(index, servers, None) else {
            unreachable!("wait without a start term never gives up early");
        };
        if v.is_empty() {
            // A leader's no-op (see the header).
            continue;
        }
        match cmd_value(&v) {
            Some(x) => really.push(x),
            None => panic!("committed value {v:?} is not an integer"),
        }
    }

    for v1 in &values {
        assert!(really.contains(v1), "didn't find a value ({v1})");
    }
    ts.check_time_limit(start);
}

#[test]
fn reliable_churn_3c_memory() {
    churn("TestReliableChurn3C", true, Backend::Memory);
}

#[test]
fn reliable_churn_3c_file() {
    churn("TestReliableChurn3C", true, Backend::file());
}

#[test]
fn unreliable_churn_3c_memory() {
    churn("TestUnreliableChurn3C", false, Backend::Memory);
}

#[test]
fn unreliable_churn_3c_file() {
    churn("TestUnreliableChurn3C", false, Backend::file());
}
