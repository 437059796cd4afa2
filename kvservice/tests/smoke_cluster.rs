//! End to end through every layer: three replicas on the memory backend, a clerk, a
//! leader crash, a restart from the crash image.

use std::sync::Arc;
use std::time::Duration;

use raftkv_kvservice::clerk::{Clerk, ClerkConfig};
use raftkv_kvservice::cluster::{ClusterClient, ClusterConfig, ClusterStorage, LocalCluster};

#[test]
fn three_replicas_survive_a_leader_crash() {
    let cluster = Arc::new(
        LocalCluster::start(ClusterConfig::new(3, ClusterStorage::Memory)).expect("start"),
    );
    let l = cluster.wait_ready(Duration::from_secs(20)).expect("leader");
    eprintln!("leader {l}");
    let mut clerk = Clerk::new(
        ClusterClient::new(Arc::clone(&cluster)),
        1,
        ClerkConfig::default(),
    );
    for i in 0..50u64 {
        assert_eq!(clerk.put_if("k", format!("v{i}"), i).expect("put"), i + 1);
    }
    let leader = cluster.leader().expect("leader");
    cluster.crash(leader);
    for i in 50..100u64 {
        assert_eq!(clerk.put_if("k", format!("v{i}"), i).expect("put"), i + 1);
    }
    cluster.restart(leader).expect("restart");
    assert_eq!(
        clerk.get("k").expect("get"),
        (Some(bytes::Bytes::from("v99")), 100)
    );
    cluster.shutdown();
}
