//! [`TcpStats`]: counters of a TCP transport, in total and per peer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use raftkv_storage::NodeId;

/// Counters of one [`TcpTransport`](super::TcpTransport) since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Raft messages written to peers.
    pub messages_sent: u64,
    /// Raft messages received from peers (delivered or not).
    pub messages_received: u64,
    /// Frame bytes written, on every connection (snapshot streams included).
    pub bytes_sent: u64,
    /// Frame bytes read, on every connection (snapshot streams included).
    pub bytes_received: u64,
    /// Outgoing messages dropped because a peer's queue was full.
    pub dropped_queue_full: u64,
    /// Outgoing messages dropped because no connection to the peer was up (or the
    /// peer is not configured).
    pub dropped_disconnected: u64,
    /// Outgoing messages dropped because they do not fit in a frame.
    pub dropped_too_large: u64,
    /// Incoming messages dropped because no node was attached yet.
    pub dropped_unattached: u64,
    /// Outbound connections established.
    pub connects: u64,
    /// Outbound connections established after an earlier one to the same peer broke.
    pub reconnects: u64,
    /// Outbound connection attempts that failed.
    pub connect_failures: u64,
    /// Inbound connections accepted whose Hello was valid.
    pub accepted: u64,
    /// Inbound connections closed during the handshake: malformed or oversized frame,
    /// bad Hello (magic, cluster id, node id), no Hello in time, or too many
    /// connections.
    pub rejected_connections: u64,
    /// Connections (either side) closed after the handshake because of a malformed
    /// frame or a protocol violation.
    pub protocol_errors: u64,
    /// Application requests written to peers.
    pub requests_sent: u64,
    /// Application requests received from peers.
    pub requests_received: u64,
    /// Replies received for this node's calls.
    pub responses_received: u64,
    /// Snapshot streams started to peers.
    pub snapshots_sent: u64,
    /// Snapshot streams to peers that the receiver installed.
    pub snapshots_installed: u64,
    /// Snapshot streams to peers that failed (any reason but installed).
    pub snapshots_failed: u64,
    /// Snapshot payload bytes written to peers.
    pub snapshot_bytes_sent: u64,
    /// Snapshot streams received from peers.
    pub snapshots_received: u64,
    /// Per configured peer (this node excluded), by id.
    pub peers: Vec<PeerStats>,
}

/// Counters of the outbound link to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer.
    pub id: NodeId,
    /// Its configured address.
    pub addr: SocketAddr,
    /// Whether a connection to it is up now.
    pub connected: bool,
    /// Messages waiting in its queue now.
    pub queued_messages: u64,
    /// Raft messages written to it.
    pub messages_sent: u64,
    /// Bytes written on its outbound connections.
    pub bytes_sent: u64,
    /// Messages to it dropped because its queue was full.
    pub dropped_queue_full: u64,
    /// Messages to it dropped because no connection was up.
    pub dropped_disconnected: u64,
    /// Connections to it established.
    pub connects: u64,
}

/// The transport's atomic counters (field meanings as in [`TcpStats`]).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) messages_sent: AtomicU64,
    pub(super) messages_received: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) bytes_received: AtomicU64,
    pub(super) dropped_queue_full: AtomicU64,
    pub(super) dropped_disconnected: AtomicU64,
    pub(super) dropped_too_large: AtomicU64,
    pub(super) dropped_unattached: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) accepted: AtomicU64,
    pub(super) rejected_connections: AtomicU64,
    pub(super) protocol_errors: AtomicU64,
    pub(super) requests_sent: AtomicU64,
    pub(super) requests_received: AtomicU64,
    pub(super) responses_received: AtomicU64,
    pub(super) snapshots_sent: AtomicU64,
    pub(super) snapshots_installed: AtomicU64,
    pub(super) snapshots_failed: AtomicU64,
    pub(super) snapshot_bytes_sent: AtomicU64,
    pub(super) snapshots_received: AtomicU64,
}

/// Adds `n` to a counter.
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub(super) fn inc(counter: &AtomicU64) {
    add(counter, 1);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    pub(super) fn load(&self, peers: Vec<PeerStats>) -> TcpStats {
        TcpStats {
            messages_sent: get(&self.messages_sent),
            messages_received: get(&self.messages_received),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_disconnected: get(&self.dropped_disconnected),
            dropped_too_large: get(&self.dropped_too_large),
            dropped_unattached: get(&self.dropped_unattached),
            connects: get(&self.connects),
            reconnects: get(&self.reconnects),
            connect_failures: get(&self.connect_failures),
            accepted: get(&self.accepted),
            rejected_connections: get(&self.rejected_connections),
            protocol_errors: get(&self.protocol_errors),
            requests_sent: get(&self.requests_sent),
            requests_received: get(&self.requests_received),
            responses_received: get(&self.responses_received),
            snapshots_sent: get(&self.snapshots_sent),
            snapshots_installed: get(&self.snapshots_installed),
            snapshots_failed: get(&self.snapshots_failed),
            snapshot_bytes_sent: get(&self.snapshot_bytes_sent),
            snapshots_received: get(&self.snapshots_received),
            peers,
        }
    }
}

/// One peer link's atomic counters.
#[derive(Debug, Default)]
pub(super) struct PeerCounters {
    pub(super) messages_sent: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) dropped_queue_full: AtomicU64,
    pub(super) dropped_disconnected: AtomicU64,
    pub(super) connects: AtomicU64,
}

impl PeerCounters {
    pub(super) fn load(
        &self,
        id: NodeId,
        addr: SocketAddr,
        connected: bool,
        queued: u64,
    ) -> PeerStats {
        PeerStats {
            id,
            addr,
            connected,
            queued_messages: queued,
            messages_sent: get(&self.messages_sent),
            bytes_sent: get(&self.bytes_sent),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_disconnected: get(&self.dropped_disconnected),
            connects: get(&self.connects),
        }
    }
}
