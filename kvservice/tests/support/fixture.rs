//! An in-process 3-member cluster (memory storage) with a `RespServer` per member on
//! 127.0.0.1:0, followers forwarding to the leader through a forwarder over the
//! `LocalCluster`, for the RESP integration tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raftkv_kvservice::cluster::{ClusterConfig, ClusterStorage, LocalCluster};
use raftkv_kvservice::server::{Forwarder, Redirect, RespServer, ServerConfig, serve_forwarded};
use raftkv_storage::NodeId;

use super::resp_client::RespClient;

pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `cond` every 10 ms until it holds, or panics naming `what` after [`WAIT`].
pub fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Forwards over the in-process cluster; links of the members in `cut` fail.
pub struct ClusterForwarder {
    cluster: Arc<LocalCluster>,
    from: NodeId,
    cut: Arc<Mutex<BTreeSet<NodeId>>>,
}

impl Forwarder for ClusterForwarder {
    fn call(
        &self,
        to: NodeId,
        request: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'static>> {
        let blocked = {
            let cut = self.cut.lock();
            cut.contains(&self.from) || cut.contains(&to)
        };
        let replica = self.cluster.replica(to);
        Box::pin(async move {
            if blocked {
                return Err(format!("link to node {to} is cut"));
            }
            let replica = replica.ok_or_else(|| format!("node {to} is down"))?;
            tokio::task::spawn_blocking(move || serve_forwarded(&replica, &request))
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// A raft address for node `id`, as the lead's config would name it.
pub fn raft_addr(id: NodeId) -> String {
    format!("10.0.0.{id}:7000")
}

pub struct Fixture {
    pub cluster: Arc<LocalCluster>,
    pub runtime: tokio::runtime::Runtime,
    pub servers: BTreeMap<NodeId, RespServer>,
    pub cut: Arc<Mutex<BTreeSet<NodeId>>>,
}

impl Fixture {
    pub fn start(tune: impl Fn(&mut ServerConfig)) -> Fixture {
        Self::start_with(|_| {}, move |_, c| tune(c))
    }

    /// Members 1, 2 and 3 in MOVED mode, each serving clients on a port picked in
    /// advance, so that every member knows every client address.
    pub fn start_moved(tune: impl Fn(&mut ServerConfig)) -> Fixture {
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
            .collect();
        let addrs: BTreeMap<NodeId, String> = (1..=3)
            .zip(&listeners)
            .map(|(id, l)| (id, l.local_addr().expect("addr").to_string()))
            .collect();
        drop(listeners);
        Self::start_with(
            |_| {},
            move |id, c| {
                c.listen = addrs[&id].parse().expect("addr");
                c.redirect = Redirect::Moved;
                c.client_addrs = addrs.clone();
                tune(c);
            },
        )
    }

    pub fn start_with(
        tune_cluster: impl FnOnce(&mut ClusterConfig),
        tune: impl Fn(NodeId, &mut ServerConfig),
    ) -> Fixture {
        let mut config = ClusterConfig::new(3, ClusterStorage::Memory);
        tune_cluster(&mut config);
        let cluster = Arc::new(LocalCluster::start(config).expect("start"));
        cluster.wait_ready(WAIT).expect("leader");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let cut = Arc::new(Mutex::new(BTreeSet::new()));
        let mut fixture = Fixture {
            cluster,
            runtime,
            servers: BTreeMap::new(),
            cut,
        };
        for id in fixture.cluster.ids().to_vec() {
            let server = fixture.server(id, &|c: &mut ServerConfig| tune(id, c));
            fixture.servers.insert(id, server);
        }
        fixture
    }

    /// Starts another server for member `id`.
    pub fn server(&self, id: NodeId, tune: &dyn Fn(&mut ServerConfig)) -> RespServer {
        let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.peer_addrs = self
            .cluster
            .ids()
            .iter()
            .map(|&i| (i, raft_addr(i)))
            .collect();
        tune(&mut config);
        let forwarder = Arc::new(ClusterForwarder {
            cluster: Arc::clone(&self.cluster),
            from: id,
            cut: Arc::clone(&self.cut),
        });
        RespServer::start(
            config,
            self.cluster.replica(id).expect("member"),
            Some(forwarder),
            self.runtime.handle(),
        )
        .expect("server")
    }

    pub fn leader(&self) -> NodeId {
        self.cluster.wait_ready(WAIT).expect("leader")
    }

    pub fn follower(&self) -> NodeId {
        let leader = self.leader();
        *self
            .cluster
            .ids()
            .iter()
            .find(|&&id| id != leader)
            .expect("a follower")
    }

    /// Stops leader `old`'s server and crashes it; returns the new leader and the
    /// member that is neither.
    pub fn kill_leader(&self, old: NodeId) -> (NodeId, NodeId) {
        self.servers[&old].shutdown();
        self.cluster.crash(old);
        let new = self.leader();
        assert_ne!(new, old);
        let survivor = *self
            .cluster
            .ids()
            .iter()
            .find(|&&id| id != old && id != new)
            .expect("a survivor that does not lead");
        (new, survivor)
    }

    pub fn client(&self, id: NodeId) -> RespClient {
        RespClient::connect(self.servers[&id].local_addr())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for s in self.servers.values() {
            s.shutdown();
        }
        self.cluster.shutdown();
    }
}
