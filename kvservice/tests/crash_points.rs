//! A member crashed at each named persistence step, under load, then restarted: no
//! acknowledged write may be lost, and the members must converge.
//!
//! Each case runs a 3-member [`LocalCluster`] with small limits (snapshots every few
//! hundred writes, 64 KiB log segments, 4 KiB snapshot frames), so that every step is
//! reached many times a second. Three writers put unique keys through exactly-once
//! clerks and record each write the cluster acknowledged. The case arms one failpoint
//! on one member, waits until it fired, crashes that member (a memory member keeps
//! only what it had made durable: its crash image; a file member keeps its directory
//! as the failure left it), lets the others take more writes, and restarts it without
//! failpoints. After more writes it stops the load, writes a last key, and checks that
//! every member holds the same data and that every acknowledged write is there with
//! its value.
//!
//! The steps of applying a snapshot sent by the leader are crashed on a follower that
//! was cut off until the leader compacted past it (`installed_*` cases).
//!
//! Each case prints its seed; replay one with
//! `RAFTKV_KVLAB_SEED=<seed> cargo test -p raftkv-kvservice --test crash_points <case>`.

mod kvlab;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvlab::{Lab, LabConfig, StorageKind};
use parking_lot::Mutex;
use raftkv_kvservice::clerk::{Clerk, ClerkConfig, ClerkTransport};
use raftkv_kvservice::cluster::{ClusterClient, ClusterStorage};
use raftkv_kvservice::command::{Command, Reply};
use raftkv_kvservice::error::KvError;
use raftkv_kvservice::resp::Value;
use raftkv_kvservice::server::{RespServer, ServerConfig};
use raftkv_kvservice::store::KvStore;
use raftkv_storage::NodeId;
use raftkv_storage::fault::FaultPlan;
use support::resp_client::RespClient;

/// How long any awaited condition may take before the case fails.
const WAIT: Duration = Duration::from_secs(40);
/// Writes acknowledged between two steps of a case.
const PROGRESS: usize = 150;
const WRITERS: u64 = 3;

/// A clerk's way in: every member, straight to its handler.
struct Direct(Arc<ClusterClient>);

impl ClerkTransport for Direct {
    fn servers(&self) -> Vec<NodeId> {
        self.0.servers()
    }

    fn call(&self, server: NodeId, cmd: &Command) -> Option<Result<Reply, KvError>> {
        self.0.call(server, cmd)
    }
}

/// Writers putting unique keys until stopped, recording what was acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(lab: &Lab) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let threads = (1..=WRITERS)
            .map(|w| {
                let client = Arc::new(ClusterClient::new(Arc::clone(&lab.cluster)));
                let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
                std::thread::spawn(move || {
                    let mut clerk = Clerk::new(Direct(client), 1000 + w, ClerkConfig::default());
                    for i in 0u64.. {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        let key = format!("w{w}-{i:06}");
                        let value = format!("value {i} of writer {w} {}", "x".repeat(64));
                        // A write that fails (deadline) may or may not have applied; only
                        // acknowledged ones are checked.
                        if clerk.put(key.clone(), value.clone()).is_ok() {
                            acked.lock().insert(key, value);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            threads,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().len()
    }

    /// Waits until `n` more writes were acknowledged.
    fn progress(&self, lab: &Lab, n: usize, what: &str) {
        let target = self.acked() + n;
        wait_until(lab, what, || self.acked() >= target);
    }

    fn stop(mut self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            t.join().expect("writer thread");
        }
        std::mem::take(&mut *self.acked.lock())
    }
}

/// Polls `cond` (every 5 ms) until it holds; fails the case after [`WAIT`].
fn wait_until(lab: &Lab, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > WAIT {
            lab.fail(&format!("timed out after {WAIT:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The leader, while it takes writes.
    Leader,
    /// A follower, while it installs a snapshot the leader sends after it was cut off.
    InstallingFollower,
}

fn start_lab(name: &'static str, storage: StorageKind) -> (Lab, BTreeMap<NodeId, Arc<FaultPlan>>) {
    let mut config = LabConfig::new(3);
    config.maxraftstate = 24 << 10;
    config.storage = storage;
    let plans: BTreeMap<NodeId, Arc<FaultPlan>> =
        (1..=3).map(|id| (id, Arc::new(FaultPlan::new()))).collect();
    let lab = Lab::start_with("crash_points", name, config, |cc| {
        cc.faults = plans.clone();
        if let ClusterStorage::Dir { config, .. } = &mut cc.storage {
            config.segment_bytes = 64 << 10;
            config.snapshot_frame_bytes = 4096;
        }
    });
    (lab, plans)
}

fn crash_at(name: &'static str, storage: StorageKind, target: Target, point: &'static str) {
    let (lab, plans) = start_lab(name, storage);
    let load = Load::start(&lab);
    load.progress(&lab, PROGRESS, "the first writes");
    let leader = lab.cluster.wait_ready(WAIT).expect("leader");
    let victim = match target {
        Target::Leader => leader,
        Target::InstallingFollower => {
            let f = *lab
                .ids()
                .iter()
                .find(|&&id| id != leader)
                .expect("follower");
            let others: Vec<NodeId> = lab.ids().into_iter().filter(|&id| id != f).collect();
            lab.cluster.partition(&[&others, &[f]]);
            let taken = |id: NodeId| {
                lab.cluster
                    .replica(id)
                    .map_or(0, |r| r.rsm().snapshot_stats().taken)
            };
            let before = taken(leader);
            // Two snapshots later the leader's log starts after everything `f` has.
            wait_until(
                &lab,
                "the leader to compact past the cut-off follower",
                || taken(leader) >= before + 2,
            );
            f
        }
    };
    // A cut-off follower installs one snapshot when it rejoins: its first hit.
    let nth = match target {
        Target::Leader => 1 + lab.rand_u64() % 3,
        Target::InstallingFollower => 1,
    };
    eprintln!("{name}: crashing member {victim} at hit {nth} of {point}");
    plans[&victim].fail_at(point, nth);
    if target == Target::InstallingFollower {
        lab.cluster.heal();
    }
    wait_until(&lab, &format!("{point} to fire on member {victim}"), || {
        plans[&victim].has_fired(point)
    });
    lab.cluster.crash(victim);
    lab.cluster.set_faults(victim, None);
    load.progress(&lab, PROGRESS / 3, "writes while the member is down");
    lab.cluster
        .restart(victim)
        .unwrap_or_else(|e| lab.fail(&format!("restart of member {victim} after {point}: {e}")));
    load.progress(&lab, PROGRESS, "writes after the restart");
    let acked = load.stop();

    // A last write in the current term, then every member must reach the same state.
    let mut clerk = Clerk::new(
        Direct(Arc::new(ClusterClient::new(Arc::clone(&lab.cluster)))),
        1,
        ClerkConfig::default(),
    );
    clerk.put("last", "write").expect("last write");
    let stores = || -> Vec<Option<KvStore>> {
        lab.ids()
            .into_iter()
            .map(|id| {
                lab.cluster
                    .replica(id)
                    .map(|r| r.rsm().with_state(|sm| sm.store().clone()))
            })
            .collect()
    };
    wait_until(&lab, "the members to converge", || {
        let s = stores();
        s.iter()
            .all(|x| x.as_ref().is_some_and(|x| x.get(b"last").is_some()))
            && s.windows(2).all(|w| w[0] == w[1])
    });
    let store = stores().remove(0).expect("member 1 runs");
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(k, v)| store.get(k.as_bytes()).map(|x| &x.value[..]) != Some(v.as_bytes()))
        .map(|(k, _)| k)
        .collect();
    lab.check(lost.is_empty(), || {
        format!(
            "{point} on member {victim}: {} of {} acknowledged writes lost or changed, e.g. {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)]
        )
    });
    eprintln!(
        "{name}: {} acknowledged writes kept, {} keys on every member",
        acked.len(),
        store.len()
    );
    lab.passed();
}

macro_rules! cases {
    ($($name:ident: $storage:ident, $target:ident, $point:literal;)*) => {
        $(
            #[test]
            fn $name() {
                crash_at(stringify!($name), StorageKind::$storage, Target::$target, $point);
            }
        )*
        /// Every case's point, for the coverage check.
        const POINTS: &[(&str, StorageKind)] = &[$(($point, StorageKind::$storage)),*];
    };
}

cases! {
    file_log_before_write: File, Leader, "log.before_write";
    file_log_after_write: File, Leader, "log.after_write";
    file_log_before_fsync: File, Leader, "log.before_fsync";
    file_log_after_fsync: File, Leader, "log.after_fsync";
    file_log_before_rotate: File, Leader, "log.before_rotate";
    file_log_after_rotate: File, Leader, "log.after_rotate";
    file_snapshot_write_frame: File, Leader, "snapshot.write_frame";
    file_snapshot_before_write: File, Leader, "snapshot.before_write";
    file_snapshot_after_write: File, Leader, "snapshot.after_write";
    file_snapshot_before_fsync: File, Leader, "snapshot.before_fsync";
    file_snapshot_after_fsync: File, Leader, "snapshot.after_fsync";
    file_snapshot_before_rename: File, Leader, "snapshot.before_rename";
    file_snapshot_after_rename: File, Leader, "snapshot.after_rename";
    file_snapshot_before_dir_fsync: File, Leader, "snapshot.before_dir_fsync";
    file_snapshot_after_dir_fsync: File, Leader, "snapshot.after_dir_fsync";
    file_compact_before_delete: File, Leader, "compact.before_delete";
    file_compact_after_delete: File, Leader, "compact.after_delete";
    file_installed_snapshot_before_rename: File, InstallingFollower, "snapshot.before_rename";
    file_installed_snapshot_after_dir_fsync: File, InstallingFollower, "snapshot.after_dir_fsync";
    file_installed_before_apply: File, InstallingFollower, "rsm.before_install_snapshot";
    file_installed_after_apply: File, InstallingFollower, "rsm.after_install_snapshot";
    memory_write: Memory, Leader, "memory.write";
    memory_snapshot_commit: Memory, Leader, "memory.snapshot_commit";
    memory_installed_snapshot_commit: Memory, InstallingFollower, "memory.snapshot_commit";
    memory_installed_before_apply: Memory, InstallingFollower, "rsm.before_install_snapshot";
    memory_installed_after_apply: Memory, InstallingFollower, "rsm.after_install_snapshot";
}

/// The cases cover every failpoint a member reaches under this load, so a new point
/// added to a backend without a case here fails this test.
#[test]
fn every_reached_point_has_a_case() {
    for storage in [StorageKind::File, StorageKind::Memory] {
        let (lab, plans) = start_lab("every_reached_point_has_a_case", storage);
        let load = Load::start(&lab);
        wait_until(&lab, "snapshots on every member", || {
            lab.ids().into_iter().all(|id| {
                lab.cluster
                    .replica(id)
                    .is_some_and(|r| r.rsm().snapshot_stats().taken >= 3)
            })
        });
        load.stop();
        let mut reached: Vec<String> = plans.values().flat_map(|p| p.distinct_points()).collect();
        reached.sort();
        reached.dedup();
        let missing: Vec<&String> = reached
            .iter()
            .filter(|p| !POINTS.iter().any(|(q, s)| q == p && *s == storage))
            .collect();
        lab.check(missing.is_empty(), || {
            format!("{storage:?}: points reached without a crash case: {missing:?}")
        });
        lab.passed();
    }
}

/// Reads `field` from the `INFO persistence` reply of `server`.
fn info_field(server: &RespServer, field: &str) -> Option<String> {
    let mut c = RespClient::connect(server.local_addr());
    let reply = c.value(&["INFO", "persistence"]);
    let Value::BulkString(Some(text)) = reply else {
        panic!("INFO answered {reply:?}");
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

/// A full disk while snapshots are written (ENOSPC on every snapshot frame): each
/// snapshot fails, the member keeps taking writes on its log and says so in `INFO`,
/// and once there is room the next snapshot succeeds.
#[test]
fn a_full_disk_fails_snapshots_and_the_member_keeps_serving() {
    let name = "a_full_disk_fails_snapshots_and_the_member_keeps_serving";
    let mut config = LabConfig::new(1);
    config.maxraftstate = 24 << 10;
    config.storage = StorageKind::File;
    let plan = Arc::new(FaultPlan::new());
    let lab = Lab::start_with("crash_points", name, config, |cc| {
        cc.faults = BTreeMap::from([(1, Arc::clone(&plan))]);
        if let ClusterStorage::Dir { config, .. } = &mut cc.storage {
            config.snapshot_frame_bytes = 4096;
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let replica = lab.cluster.replica(1).expect("member 1");
    let server = RespServer::start(
        ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))),
        Arc::clone(&replica),
        None,
        runtime.handle(),
    )
    .expect("server");
    let load = Load::start(&lab);
    load.progress(&lab, PROGRESS, "the first writes");
    let taken_before = replica.rsm().snapshot_stats().taken;
    plan.disk_full("snapshot.write_frame");
    wait_until(&lab, "three snapshots to hit the full disk", || {
        replica.rsm().snapshot_stats().failed >= 3
    });
    load.progress(&lab, PROGRESS, "writes while snapshots fail");
    assert_eq!(
        info_field(&server, "last_snapshot_status").as_deref(),
        Some("err")
    );
    let error = info_field(&server, "last_snapshot_error").expect("last_snapshot_error");
    assert!(
        error.contains("No space left on device") && error.contains("snapshot.write_frame"),
        "{error}"
    );
    assert!(
        info_field(&server, "snapshot_failures")
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n >= 3))
    );
    let taken_while_full = replica.rsm().snapshot_stats().taken;
    assert_eq!(
        taken_while_full, taken_before,
        "a snapshot landed on a full disk"
    );
    plan.clear();
    wait_until(&lab, "a snapshot once there is room again", || {
        replica.rsm().snapshot_stats().taken > taken_before
    });
    load.progress(&lab, PROGRESS / 3, "writes after the disk has room");
    assert_eq!(
        info_field(&server, "last_snapshot_status").as_deref(),
        Some("ok")
    );
    assert_eq!(info_field(&server, "last_snapshot_error"), None);
    let acked = load.stop();
    let store = replica.rsm().with_state(|sm| sm.store().clone());
    assert!(
        acked
            .iter()
            .all(|(k, v)| store.get(k.as_bytes()).map(|x| &x.value[..]) == Some(v.as_bytes())),
        "an acknowledged write is missing"
    );
    server.shutdown();
    lab.passed();
}
