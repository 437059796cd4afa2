//! MIT 6.5840 (2025) Lab 4B, `src/kvraft1/kvraft_test.go`, ported onto raftkv's KV
//! service (see `kvlab/mod.rs` for how the lab's tester maps onto [`LocalCluster`]).
//!
//! Every 4B test is here under its lab name, with the lab's client counts, server counts,
//! network, crash and partition settings, 3 iterations of 1 s of client activity, and
//! thresholds: CheckPutConcurrent (version == Nok when reliable, ≤ Nok + Nmaybe
//! otherwise), a linearizability check of the cumulative history after every iteration
//! (1 s timeout; a timeout passes with a message), `SnapshotSize() == 0` with
//! maxraftstate = −1, TestSpeed4B's ≤ 33.3 ms/op, and TestOnePartition4B's "minority
//! operations do not complete within 1 s, and the minority Put completes within 3 s of
//! the heal".
//!
//! The persistence tests also run on the file backend (`_file`) and, with the
//! `rocksdb` feature, on RocksDB (`_rocksdb`).
//!
//! Replay a failure with the seed it prints (best effort: threads are real):
//! `RAFTKV_KVLAB_SEED=<n> cargo test -p raftkv-kvservice --test lab_4b_kv <name>`.
//!
//! [`LocalCluster`]: raftkv_kvservice::cluster::LocalCluster

#![expect(non_snake_case, reason = "the tests keep the lab's names")]

mod kvlab;

use std::sync::mpsc::channel;
use std::time::Duration;

use kvlab::{ELECTION_TIMEOUT, Lab, LabConfig, StorageKind};

const FILE: &str = "lab_4b_kv";

fn generic(name: &'static str, nclients: usize, config: LabConfig) {
    let lab = Lab::start(FILE, name, config);
    lab.generic_test(nclients);
}

fn cfg(servers: u64, unreliable: bool, crash: bool, partitions: bool) -> LabConfig {
    LabConfig {
        unreliable,
        crash,
        partitions,
        ..LabConfig::new(servers)
    }
}

fn on(mut c: LabConfig, storage: StorageKind) -> LabConfig {
    c.storage = storage;
    c
}

#[test]
fn TestBasic4B() {
    generic("TestBasic4B", 1, cfg(5, false, false, false));
}

#[test]
fn TestSpeed4B() {
    Lab::start(FILE, "TestSpeed4B", cfg(3, false, false, false)).generic_test_speed();
}

#[test]
fn TestConcurrent4B() {
    generic("TestConcurrent4B", 5, cfg(5, false, false, false));
}

#[test]
fn TestUnreliable4B() {
    generic("TestUnreliable4B", 5, cfg(5, true, false, false));
}

/// Submit a request in the minority partition and check that the request doesn't go
/// through until the partition heals; the leader in the original network ends up in
/// the minority partition.
#[test]
fn TestOnePartition4B() {
    let lab = Lab::start(FILE, "TestOnePartition4B", cfg(5, true, false, false));
    let mut ck = lab.clerk();
    let ver0 = ck.put_at_least_once("1", "13", 0);

    let Some(leader) = lab.cluster.leader() else {
        lab.fail("no leader after the first put")
    };
    let others: Vec<u64> = lab.ids().into_iter().filter(|&i| i != leader).collect();
    // Majority: three members without the leader; minority: the leader and one other.
    let p1: Vec<u64> = others[..3].to_vec();
    let p2: Vec<u64> = vec![leader, others[3]];
    eprintln!("TestOnePartition4B: leader {leader}; majority {p1:?}, minority {p2:?}");
    lab.cluster.partition(&[&p1, &p2]);

    let mut ckp1 = lab.clerk_to(&p1);
    let mut ckp2a = lab.clerk_to(&p2);
    let mut ckp2b = lab.clerk_to(&p2);

    let ver1 = ckp1.put_at_least_once("1", "14", ver0);
    ckp1.check_get("1", "14", ver1);

    // Minority operations must not complete.
    let (done0_tx, done0) = channel();
    let (done1_tx, done1) = channel();
    // The clerks move into their threads; the test reconnects them through their
    // shared transports, which it keeps.
    let ta = ckp2a.transport();
    let tb = ckp2b.transport();
    let put = std::thread::spawn(move || {
        let v = ckp2a.put_at_least_once("1", "15", ver1 + 1);
        let _ = done0_tx.send(v);
    });
    let get = std::thread::spawn(move || {
        let r = ckp2b.get("1");
        let _ = done1_tx.send(r);
    });

    if let Ok(v) = done0.recv_timeout(Duration::from_secs(1)) {
        lab.fail(&format!("Put in minority completed (version {v})"));
    }
    if let Ok(r) = done1.try_recv() {
        lab.fail(&format!("Get in minority completed ({r:?})"));
    }

    ckp1.check_get("1", "14", ver1);
    let ver2 = ckp1.put_at_least_once("1", "16", ver1);
    ckp1.check_get("1", "16", ver2);

    // Heal the network and the clerks' connections.
    lab.cluster.heal();
    let all = lab.ids();
    ta.reach_only(&all);
    tb.reach_only(&all);
    std::thread::sleep(ELECTION_TIMEOUT);

    let ver = match done0.recv_timeout(Duration::from_millis(30 * 100)) {
        Ok(v) => v,
        Err(_) => lab.fail("Put did not complete within 3 s after the heal"),
    };
    // The minority Get is polled once, as in the lab.
    let _ = done1.try_recv();
    ck.check_get("1", "15", ver);
    let _ = put.join();
    let _ = get.join();
    lab.check_linearizable();
    lab.passed();
}

#[test]
fn TestManyPartitionsOneClient4B() {
    generic(
        "TestManyPartitionsOneClient4B",
        1,
        cfg(5, false, false, true),
    );
}

#[test]
fn TestManyPartitionsManyClients4B() {
    generic(
        "TestManyPartitionsManyClients4B",
        5,
        cfg(5, false, false, true),
    );
}

#[test]
fn TestPersistOneClient4B() {
    generic("TestPersistOneClient4B", 1, cfg(5, false, true, false));
}

#[test]
fn TestPersistOneClient4B_file() {
    let c = on(cfg(5, false, true, false), StorageKind::File);
    generic("TestPersistOneClient4B_file", 1, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestPersistOneClient4B_rocksdb() {
    let c = on(cfg(5, false, true, false), StorageKind::Rocksdb);
    generic("TestPersistOneClient4B_rocksdb", 1, c);
}

#[test]
fn TestPersistConcurrent4B() {
    generic("TestPersistConcurrent4B", 5, cfg(5, false, true, false));
}

#[test]
fn TestPersistConcurrent4B_file() {
    let c = on(cfg(5, false, true, false), StorageKind::File);
    generic("TestPersistConcurrent4B_file", 5, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestPersistConcurrent4B_rocksdb() {
    let c = on(cfg(5, false, true, false), StorageKind::Rocksdb);
    generic("TestPersistConcurrent4B_rocksdb", 5, c);
}

#[test]
fn TestPersistConcurrentUnreliable4B() {
    generic(
        "TestPersistConcurrentUnreliable4B",
        5,
        cfg(5, true, true, false),
    );
}

#[test]
fn TestPersistConcurrentUnreliable4B_file() {
    let c = on(cfg(5, true, true, false), StorageKind::File);
    generic("TestPersistConcurrentUnreliable4B_file", 5, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestPersistConcurrentUnreliable4B_rocksdb() {
    let c = on(cfg(5, true, true, false), StorageKind::Rocksdb);
    generic("TestPersistConcurrentUnreliable4B_rocksdb", 5, c);
}

#[test]
fn TestPersistPartition4B() {
    generic("TestPersistPartition4B", 5, cfg(5, false, true, true));
}

#[test]
fn TestPersistPartition4B_file() {
    let c = on(cfg(5, false, true, true), StorageKind::File);
    generic("TestPersistPartition4B_file", 5, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestPersistPartition4B_rocksdb() {
    let c = on(cfg(5, false, true, true), StorageKind::Rocksdb);
    generic("TestPersistPartition4B_rocksdb", 5, c);
}

#[test]
fn TestPersistPartitionUnreliable4B() {
    generic(
        "TestPersistPartitionUnreliable4B",
        5,
        cfg(5, true, true, true),
    );
}

#[test]
fn TestPersistPartitionUnreliable4B_file() {
    let c = on(cfg(5, true, true, true), StorageKind::File);
    generic("TestPersistPartitionUnreliable4B_file", 5, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestPersistPartitionUnreliable4B_rocksdb() {
    let c = on(cfg(5, true, true, true), StorageKind::Rocksdb);
    generic("TestPersistPartitionUnreliable4B_rocksdb", 5, c);
}

#[test]
fn TestPersistPartitionUnreliableLinearizable4B() {
    let mut c = cfg(7, true, true, true);
    c.randomkeys = true;
    generic("TestPersistPartitionUnreliableLinearizable4B", 15, c);
}

#[test]
fn TestPersistPartitionUnreliableLinearizable4B_file() {
    let mut c = on(cfg(7, true, true, true), StorageKind::File);
    c.randomkeys = true;
    generic("TestPersistPartitionUnreliableLinearizable4B_file", 15, c);
}

#[cfg(feature = "rocksdb")]
#[test]
fn TestPersistPartitionUnreliableLinearizable4B_rocksdb() {
    let mut c = on(cfg(7, true, true, true), StorageKind::Rocksdb);
    c.randomkeys = true;
    generic(
        "TestPersistPartitionUnreliableLinearizable4B_rocksdb",
        15,
        c,
    );
}
