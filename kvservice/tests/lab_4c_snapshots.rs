//! MIT 6.5840 (2025) Lab 4C, `src/kvraft1/kvraft_test.go`, ported onto raftkv's KV
//! service (see `kvlab/mod.rs` for how the lab's tester maps onto [`LocalCluster`]).
//!
//! Every 4C KV test is here under its lab name with maxraftstate = 1000 and the lab's
//! thresholds: `LogSize() ≤ 8 × maxraftstate` after every GenericTest iteration and in
//! TestSnapshotRPC4C, `LogSize() ≤ 8000` and `SnapshotSize() ≤ 500` bytes in
//! TestSnapshotSize4C, ≤ 33.3 ms/op in TestSpeed4C, CheckPutConcurrent and a
//! linearizability check of the cumulative history after every iteration. (The rsm
//! layer's TestSnapshot4C is in `lab_4a_rsm.rs`.)
//!
//! The snapshot-and-crash scenarios also run on the file backend (`_file`) and, with
//! the `rocksdb` feature, on RocksDB (`_rocksdb`).
//!
//! Replay a failure with the seed it prints (best effort: threads are real):
//! `RAFTKV_KVLAB_SEED=<n> cargo test -p raftkv-kvservice --test lab_4c_snapshots <name>`.
//!
//! [`LocalCluster`]: raftkv_kvservice::cluster::LocalCluster

#![expect(non_snake_case, reason = "the tests keep the lab's names")]

mod kvlab;

use std::time::Duration;

use kvlab::{Lab, LabConfig, StorageKind};

const FILE: &str = "lab_4c_snapshots";
const MAXRAFTSTATE: i64 = 1000;

fn generic(name: &'static str, nclients: usize, config: LabConfig) {
    let lab = Lab::start(FILE, name, config);
    lab.generic_test(nclients);
}

fn cfg(servers: u64, unreliable: bool, crash: bool, partitions: bool) -> LabConfig {
    LabConfig {
        unreliable,
        crash,
        partitions,
        maxraftstate: MAXRAFTSTATE,
        ..LabConfig::new(servers)
    }
}

fn on(mut c: LabConfig, storage: StorageKind) -> LabConfig {
    c.storage = storage;
    c
}

fn snapshot_rpc(name: &'static str, storage: StorageKind) {
    let lab = Lab::start(FILE, name, on(cfg(3, false, false, false), storage));
    let mut ck = lab.clerk();
    let ids = lab.ids();
    let (a, b, c) = (ids[0], ids[1], ids[2]);

    let mut verm = std::collections::BTreeMap::new();
    verm.insert("a", ck.put_at_least_once("a", "A", 0));
    ck.check_get("a", "A", verm["a"]);

    // A bunch of puts into the majority partition.
    lab.cluster.partition(&[&[a, b], &[c]]);
    {
        let mut ck1 = lab.clerk_to(&[a, b]);
        for i in 0..50 {
            let k = i.to_string();
            ck1.put_at_least_once(&k, &k, 0);
        }
        std::thread::sleep(Duration::from_secs(1));
        verm.insert("b", ck1.put_at_least_once("b", "B", 0));
    }

    // Check that the majority partition has thrown away most of its log entries.
    lab.check_sizes(8);

    // Now make the group that requires participation of the lagging server, so that it
    // has to catch up with the leader via InstallSnapshot.
    lab.cluster.partition(&[&[a, c], &[b]]);
    {
        let mut ck1 = lab.clerk_to(&[a, c]);
        verm.insert("c", ck1.put_at_least_once("c", "C", 0));
        verm.insert("d", ck1.put_at_least_once("d", "D", 0));
        ck1.check_get("a", "A", verm["a"]);
        ck1.check_get("b", "B", verm["b"]);
        ck1.check_get("1", "1", 1);
        ck1.check_get("49", "49", 1);
    }

    // Now everybody.
    lab.cluster.heal();
    verm.insert("e", ck.put_at_least_once("e", "E", 0));
    ck.check_get("c", "C", verm["c"]);
    ck.check_get("e", "E", verm["e"]);
    ck.check_get("1", "1", 1);
    lab.check_linearizable();
    lab.passed();
}

/// Check that snapshots decrease the size of the Raft state.
#[test]
fn TestSnapshotRPC4C() {
    snapshot_rpc("TestSnapshotRPC4C", StorageKind::Memory);
}

#[test]
fn TestSnapshotRPC4C_file() {
    snapshot_rpc("TestSnapshotRPC4C_file", StorageKind::File);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshotRPC4C_rocksdb() {
    snapshot_rpc("TestSnapshotRPC4C_rocksdb", StorageKind::Rocksdb);
}

fn snapshot_size(name: &'static str, storage: StorageKind) {
    let lab = Lab::start(FILE, name, on(cfg(3, false, false, false), storage));
    let mut ck = lab.clerk();
    let mut ver = 0;
    for _ in 0..200 {
        ck.put("x", "0", ver)
            .unwrap_or_else(|e| lab.fail(&format!("Put(x, 0, {ver}): {e:?}")));
        ver += 1;
        ck.check_get("x", "0", ver);
        ck.put("x", "1", ver)
            .unwrap_or_else(|e| lab.fail(&format!("Put(x, 1, {ver}): {e:?}")));
        ver += 1;
        ck.check_get("x", "1", ver);
    }
    // Check that the servers have thrown away most of their log entries.
    lab.check_sizes(8);
    // Check that the snapshots are not unreasonably large.
    let ssz = lab.cluster.max_snapshot_size();
    lab.check(ssz <= 500, || {
        format!("snapshot too large ({ssz} > 500 bytes)")
    });
    lab.check_linearizable();
    lab.passed();
}

/// Check that snapshots decrease the size of the Raft state, and that the snapshot holds
/// only the KV and dedup state.
#[test]
fn TestSnapshotSize4C() {
    snapshot_size("TestSnapshotSize4C", StorageKind::Memory);
}

#[test]
fn TestSnapshotSize4C_file() {
    snapshot_size("TestSnapshotSize4C_file", StorageKind::File);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshotSize4C_rocksdb() {
    snapshot_size("TestSnapshotSize4C_rocksdb", StorageKind::Rocksdb);
}

#[test]
fn TestSpeed4C() {
    Lab::start(FILE, "TestSpeed4C", cfg(3, false, false, false)).generic_test_speed();
}

#[test]
fn TestSnapshotRecover4C() {
    generic("TestSnapshotRecover4C", 1, cfg(5, false, true, false));
}

#[test]
fn TestSnapshotRecover4C_file() {
    let c = on(cfg(5, false, true, false), StorageKind::File);
    generic("TestSnapshotRecover4C_file", 1, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshotRecover4C_rocksdb() {
    let c = on(cfg(5, false, true, false), StorageKind::Rocksdb);
    generic("TestSnapshotRecover4C_rocksdb", 1, c);
}

#[test]
fn TestSnapshotRecoverManyClients4C() {
    generic(
        "TestSnapshotRecoverManyClients4C",
        20,
        cfg(5, false, true, false),
    );
}

#[test]
fn TestSnapshotRecoverManyClients4C_file() {
    let c = on(cfg(5, false, true, false), StorageKind::File);
    generic("TestSnapshotRecoverManyClients4C_file", 20, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshotRecoverManyClients4C_rocksdb() {
    let c = on(cfg(5, false, true, false), StorageKind::Rocksdb);
    generic("TestSnapshotRecoverManyClients4C_rocksdb", 20, c);
}

#[test]
fn TestSnapshotUnreliable4C() {
    generic("TestSnapshotUnreliable4C", 5, cfg(5, true, false, false));
}

#[test]
fn TestSnapshotUnreliableRecover4C() {
    generic(
        "TestSnapshotUnreliableRecover4C",
        5,
        cfg(5, true, true, false),
    );
}

#[test]
fn TestSnapshotUnreliableRecover4C_file() {
    let c = on(cfg(5, true, true, false), StorageKind::File);
    generic("TestSnapshotUnreliableRecover4C_file", 5, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshotUnreliableRecover4C_rocksdb() {
    let c = on(cfg(5, true, true, false), StorageKind::Rocksdb);
    generic("TestSnapshotUnreliableRecover4C_rocksdb", 5, c);
}

#[test]
fn TestSnapshotUnreliableRecoverConcurrentPartition4C() {
    generic(
        "TestSnapshotUnreliableRecoverConcurrentPartition4C",
        5,
        cfg(5, true, true, true),
    );
}

#[test]
fn TestSnapshotUnreliableRecoverConcurrentPartition4C_file() {
    let c = on(cfg(5, true, true, true), StorageKind::File);
    generic(
        "TestSnapshotUnreliableRecoverConcurrentPartition4C_file",
        5,
        c,
    );
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshotUnreliableRecoverConcurrentPartition4C_rocksdb() {
    let c = on(cfg(5, true, true, true), StorageKind::Rocksdb);
    generic(
        "TestSnapshotUnreliableRecoverConcurrentPartition4C_rocksdb",
        5,
        c,
    );
}

#[test]
fn TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C() {
    let mut c = cfg(7, true, true, true);
    c.randomkeys = true;
    generic(
        "TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C",
        15,
        c,
    );
}

#[test]
fn TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C_file() {
    let mut c = on(cfg(7, true, true, true), StorageKind::File);
    c.randomkeys = true;
    generic(
        "TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C_file",
        15,
        c,
    );
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C_rocksdb() {
    let mut c = on(cfg(7, true, true, true), StorageKind::Rocksdb);
    c.randomkeys = true;
    generic(
        "TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C_rocksdb",
        15,
        c,
    );
}
