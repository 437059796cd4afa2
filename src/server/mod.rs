//! [`Server`]: one cluster member in a process — storage, a Raft node talking TCP to
//! its peers, the replicated KV state machine, and the Redis-protocol front end.
//!
//! ```text
//!   clients ──RESP──▶ RespServer ──▶ Replica (Rsm + Node) ──▶ Persister
//!                        │  ▲                │  ▲
//!        forward to leader│  │serve forwarded │  │ Raft messages, snapshots
//!                        ▼  │                ▼  │
//!                     TcpTransport ◀──────── peers (frames over TCP)
//! ```
//!
//! `raftkv server` builds one from a [`NodeConfig`], then [`Server::run_until_signal`].

mod config;
mod effective;
mod forward;
mod handover;
pub mod member_file;
pub mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv_consensus::Config as RaftConfig;
use raftkv_consensus::node::NodeOptions;
use raftkv_consensus::transport::tcp::{TcpConfig, TcpTransport};
use raftkv_kvservice::error::KvError;
use raftkv_kvservice::replica::{Replica, ReplicaConfig};
use raftkv_kvservice::rsm::RsmConfig;
use raftkv_kvservice::server::{RespServer, ServerConfig};
use raftkv_storage::{Persister, StorageError};

pub use config::{
    ConfigError, DEFAULT_COMMIT_TIMEOUT_MS, DEFAULT_MAX_PENDING_PROPOSALS, DEFAULT_MAX_RAFT_STATE,
    NodeConfig, NodeFile, default_max_request_bytes, derive_cluster_id, parse_members, parse_peers,
};
pub use effective::{REDACTED, effective_toml};
use forward::{ForwardHandler, TcpForwarder};

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be opened or recovered.
    #[error("storage ({dir}): {source}")]
    Storage {
        /// The data directory (or "memory").
        dir: String,
        /// Why.
        source: StorageError,
    },
    /// The data directory belongs to another member, or its `MEMBER` file is bad.
    #[error("data directory: {reason}")]
    Member {
        /// What is wrong, naming the directory.
        reason: String,
    },
    /// The IO runtime could not start.
    #[error("start the IO runtime: {0}")]
    Runtime(std::io::Error),
    /// The Raft transport could not start (its listen address is named).
    #[error("raft transport: {0}")]
    Transport(String),
    /// The Raft node or state machine could not start.
    #[error("replica: {0}")]
    Replica(KvError),
    /// The client listener could not start (its address is named).
    #[error("client listener: {0}")]
    Client(String),
    /// The metrics listener could not start (its address is named).
    #[error("metrics listener: {0}")]
    Metrics(String),
    /// The member started but could not load its state (an unreadable snapshot).
    #[error("loading the state: {0}")]
    Load(String),
    /// Waiting for signals failed.
    #[error("waiting for signals: {0}")]
    Signal(std::io::Error),
}

/// A running member.
pub struct Server {
    config: NodeConfig,
    runtime: Option<tokio::runtime::Runtime>,
    transport: Arc<TcpTransport>,
    replica: Arc<Replica>,
    resp: RespServer,
    metrics: Option<metrics::MetricsServer>,
    started: Instant,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.config.id)
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the data directory, recovers, joins the peers and starts serving clients.
    pub fn start(config: NodeConfig) -> Result<Server, ServerError> {
        let started = Instant::now();
        let dir = config
            .storage
            .dir
            .as_ref()
            .map_or_else(|| "memory".to_string(), |d| d.display().to_string());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("raftkv-io")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let persister: Arc<dyn Persister> = Arc::from(
            config
                .storage
                .open()
                .map_err(|source| ServerError::Storage { dir, source })?,
        );
        if let Some(dir) = &config.storage.dir {
            member_file::ensure(dir, config.id, config.cluster_id)
                .map_err(|reason| ServerError::Member { reason })?;
        }
        let raft_addr = config.peers[&config.id];
        let mut tcp = TcpConfig::new(config.id, raft_addr, config.peers.clone());
        tcp.cluster_id = config.cluster_id;
        tcp.secret = config.cluster_secret.clone();
        let transport = TcpTransport::start(tcp, runtime.handle().clone())
            .map_err(|e| ServerError::Transport(e.to_string()))?;

        let mut raft = RaftConfig::new(config.id, config.peers.keys().copied().collect());
        raft.election_ticks = config.election_ticks;
        raft.heartbeat_ticks = config.heartbeat_ticks;
        let node = NodeOptions {
            tick: config.tick,
            seed: rand::random(),
            ..NodeOptions::default()
        };
        let rsm = RsmConfig {
            max_raft_state: config.max_raft_state,
            read_mode: config.read_mode,
            commit_timeout: config.commit_timeout,
            ..RsmConfig::default()
        };
        let replica = match Replica::start(
            ReplicaConfig {
                raft,
                node,
                rsm,
                max_pending_proposals: config.max_pending_proposals,
            },
            persister,
            Arc::clone(&transport) as _,
        ) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                transport.shutdown();
                return Err(ServerError::Replica(e));
            }
        };
        transport.attach(replica.node().clone());
        transport.set_request_handler(Arc::new(ForwardHandler::new(Arc::clone(&replica))));

        let mut client = ServerConfig::new(config.listen);
        client.max_bulk_bytes = config.max_bulk_bytes;
        client.max_clients = config.max_clients;
        client.max_request_bytes = Some(config.max_request_bytes);
        client.retry_budget = config.commit_timeout;
        client.peer_addrs = config.peer_names.clone();
        client.requirepass = config.requirepass.clone();
        client.redirect = config.redirect;
        client.client_addrs = config.client_addrs.clone();
        client.backup_dir = config.storage.dir.clone();
        let forwarder = Arc::new(TcpForwarder::new(Arc::clone(&transport)));
        let resp = match RespServer::start(
            client,
            Arc::clone(&replica),
            Some(forwarder),
            runtime.handle(),
        ) {
            Ok(r) => r,
            Err(e) => {
                replica.shutdown();
                transport.shutdown();
                return Err(ServerError::Client(e.to_string()));
            }
        };
        let metrics = match config.metrics {
            Some(addr) => {
                let exporter = metrics::Exporter::new(Arc::clone(&replica), started);
                match metrics::MetricsServer::start(addr, exporter, runtime.handle()) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        resp.shutdown();
                        replica.shutdown();
                        transport.shutdown();
                        return Err(ServerError::Metrics(e.to_string()));
                    }
                }
            }
            None => None,
        };
        let status = replica.node().status();
        tracing::info!(
            id = config.id,
            raft = %raft_addr,
            client = %resp.local_addr(),
            metrics = %metrics.as_ref().map_or("-".into(), |m| m.local_addr().to_string()),
            backend = replica.persister().backend_name(),
            data_dir = %config.storage.dir.as_ref().map_or("-".into(), |d| d.display().to_string()),
            term = status.term,
            snapshot_index = status.snapshot_index,
            recovered_index = status.last_index,
            restart_ms = started.elapsed().as_secs_f64() * 1e3,
            "raftkv member started"
        );
        Ok(Server {
            config,
            runtime: Some(runtime),
            transport,
            replica,
            resp,
            metrics,
            started,
        })
    }

    /// The client (RESP) address actually bound.
    pub fn client_addr(&self) -> std::net::SocketAddr {
        self.resp.local_addr()
    }

    /// The metrics address actually bound, if serving metrics.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .map(metrics::MetricsServer::local_addr)
    }

    /// The replica (for status and tests).
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Serves until SIGINT (Ctrl-C) or SIGTERM, then stops gracefully: a leader first
    /// hands leadership to another member, so that a rolling restart costs no election
    /// timeout. Ends with an error if the member cannot load its state.
    pub fn run_until_signal(mut self) -> Result<(), ServerError> {
        let runtime = self.runtime.take().expect("runtime present until shutdown");
        let progress = Arc::clone(self.replica.rsm().load_progress());
        let ended = runtime.block_on(async move {
            tokio::select! {
                signal = wait_for_signal() => signal.map_err(ServerError::Signal),
                reason = load_failure(progress) => Err(ServerError::Load(reason)),
            }
        });
        self.runtime = Some(runtime);
        match ended {
            Ok(signal) => {
                tracing::info!(id = self.config.id, signal, "stopping");
                self.hand_over();
                self.shutdown();
                Ok(())
            }
            Err(e) => {
                tracing::error!(id = self.config.id, error = %e, "stopping");
                self.shutdown();
                Err(e)
            }
        }
    }

    /// If this member leads, asks another to take over (bounded: a few election
    /// timeouts), while clients are still served.
    pub fn hand_over(&self) -> Option<raftkv_storage::NodeId> {
        let election = self.config.tick * self.config.election_ticks;
        let peers: Vec<_> = self.config.peers.keys().copied().collect();
        handover::hand_over(self.replica.node(), &peers, election * 2, election * 6)
    }

    /// Stops serving clients, then Raft and the state machine, then the transport.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        self.metrics = None;
        self.resp.shutdown();
        self.replica.shutdown();
        self.transport.shutdown();
        runtime.shutdown_timeout(Duration::from_secs(5));
        tracing::info!(
            id = self.config.id,
            uptime_s = self.started.elapsed().as_secs(),
            "raftkv member stopped"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resolves with the reason if loading the state fails; pends otherwise.
async fn load_failure(progress: Arc<raftkv_kvservice::load_progress::LoadProgress>) -> String {
    loop {
        let p = Arc::clone(&progress);
        let waited = tokio::task::spawn_blocking(move || p.wait(Duration::from_secs(3600))).await;
        match waited {
            Ok(Ok(())) => std::future::pending::<()>().await,
            Ok(Err(reason)) if !progress.is_loading() => return reason,
            Ok(Err(_)) => {}
            Err(e) => return format!("watching the load: {e}"),
        }
    }
}

/// Waits for SIGINT or SIGTERM and names it.
pub async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
