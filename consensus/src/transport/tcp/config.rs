//! [`TcpConfig`]: addresses, limits and timeouts of a [`TcpTransport`](super::TcpTransport).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use raftkv_storage::NodeId;

use super::{ClusterSecret, TcpError};
use crate::transport::SNAPSHOT_CHUNK_BYTES;
use crate::transport::frame::{DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, MAX_REASON_BYTES};

/// The smallest accepted [`TcpConfig::max_frame_bytes`]: a full snapshot chunk, or a
/// status frame with the longest reason, must fit.
pub const MIN_MAX_FRAME_BYTES: usize = SNAPSHOT_CHUNK_BYTES + FRAME_HEADER_BYTES + MAX_REASON_BYTES;

/// Settings of one node's [`TcpTransport`](super::TcpTransport).
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// This node.
    pub id: NodeId,
    /// Identifies the cluster in every connection's Hello; a peer with another id is
    /// refused. Default 0.
    pub cluster_id: u64,
    /// The shared secret with which every connection's two ends prove they are members
    /// (see the handshake in `storage/FORMAT.md`). Default none: peers are identified
    /// by the Hello but not authenticated.
    pub secret: ClusterSecret,
    /// Where to listen (port 0 picks a free port, see
    /// [`TcpTransport::local_addr`](super::TcpTransport::local_addr)).
    pub listen: SocketAddr,
    /// Every member's address, this node's included (its own entry is not dialed).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The largest frame, header included, sent or accepted. Default
    /// [`DEFAULT_MAX_FRAME_BYTES`] (16 MiB); at least [`MIN_MAX_FRAME_BYTES`].
    pub max_frame_bytes: usize,
    /// Raft messages queued per peer before new ones are dropped. Default 4096.
    pub queue_messages: usize,
    /// Encoded bytes of Raft messages queued per peer before new ones are dropped.
    /// Default 64 MiB.
    pub queue_bytes: usize,
    /// Application requests queued per peer before [`call`](super::TcpTransport::call)
    /// fails with [`TcpError::QueueFull`]. Default 1024.
    pub queue_requests: usize,
    /// Requests one inbound connection may have in its handler at once; beyond that
    /// they are answered at once with an "overloaded" error. Default 1024.
    pub max_inflight_requests: usize,
    /// Inbound connections served at once; beyond that new ones are closed. Default
    /// 1024.
    pub max_connections: usize,
    /// Limit on establishing an outbound connection. Default 3 s.
    pub connect_timeout: Duration,
    /// How long each step of a connection's handshake may take (the acceptor waiting
    /// for the Hello and the Proof, the dialer for the Challenge). Default 5 s.
    pub handshake_timeout: Duration,
    /// How long one write may stall (the peer not reading) before the connection is
    /// dropped and redialed. Default 15 s.
    pub write_timeout: Duration,
    /// First reconnection delay; it doubles per failed attempt. Default 50 ms.
    pub backoff_min: Duration,
    /// Largest reconnection delay (jitter draws each delay from its upper half).
    /// Default 2 s. A connection that lasted this long resets the delay.
    pub backoff_max: Duration,
    /// A suggested timeout for [`call`](super::TcpTransport::call) (the transport only
    /// uses the timeout passed to each call). Default 5 s.
    pub request_timeout: Duration,
    /// Limit on each step of a snapshot stream: a stalled chunk write, the gap between
    /// two frames on the receiving side, and the wait for the receiver's outcome after
    /// the last chunk. Default 30 s.
    pub snapshot_timeout: Duration,
}

impl TcpConfig {
    /// A config with the default limits and timeouts and cluster id 0.
    pub fn new(id: NodeId, listen: SocketAddr, peers: BTreeMap<NodeId, SocketAddr>) -> Self {
        Self {
            id,
            cluster_id: 0,
            secret: ClusterSecret::none(),
            listen,
            peers,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            queue_messages: 4096,
            queue_bytes: 64 << 20,
            queue_requests: 1024,
            max_inflight_requests: 1024,
            max_connections: 1024,
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(15),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            snapshot_timeout: Duration::from_secs(30),
        }
    }

    /// The same config for cluster `cluster_id`.
    pub fn with_cluster_id(mut self, cluster_id: u64) -> Self {
        self.cluster_id = cluster_id;
        self
    }

    /// Checks the settings; the error names the first bad one.
    pub fn validate(&self) -> Result<(), TcpError> {
        let bad = |detail: String| Err(TcpError::Config { detail });
        if self.id == 0 {
            return bad("node id 0 is reserved".to_owned());
        }
        if !self.peers.contains_key(&self.id) {
            return bad(format!("peers do not include this node ({})", self.id));
        }
        if self.peers.contains_key(&0) {
            return bad("peers include node id 0".to_owned());
        }
        if self.max_frame_bytes < MIN_MAX_FRAME_BYTES || self.max_frame_bytes > u32::MAX as usize {
            return bad(format!(
                "max_frame_bytes {} is outside {MIN_MAX_FRAME_BYTES}..={}",
                self.max_frame_bytes,
                u32::MAX
            ));
        }
        for (name, value) in [
            ("queue_messages", self.queue_messages),
            ("queue_bytes", self.queue_bytes),
            ("queue_requests", self.queue_requests),
            ("max_inflight_requests", self.max_inflight_requests),
            ("max_connections", self.max_connections),
        ] {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("write_timeout", self.write_timeout),
            ("backoff_min", self.backoff_min),
            ("request_timeout", self.request_timeout),
            ("snapshot_timeout", self.snapshot_timeout),
        ] {
            if value.is_zero() {
                return bad(format!("{name} must not be zero"));
            }
        }
        if self.backoff_max < self.backoff_min {
            return bad(format!(
                "backoff_max {:?} is below backoff_min {:?}",
                self.backoff_max, self.backoff_min
            ));
        }
        Ok(())
    }
}
