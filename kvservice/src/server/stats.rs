//! [`ServerStats`]: what a RESP server has done so far.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a [`RespServer`](super::RespServer), as of one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections open now.
    pub connected_clients: u64,
    /// Connections accepted since start (not counting rejected ones).
    pub total_connections: u64,
    /// Connections refused because `max_clients` were open.
    pub rejected_connections: u64,
    /// Requests answered (including error replies).
    pub commands_processed: u64,
    /// Connections closed on malformed or over-limit input.
    pub protocol_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicU64,
    pub(crate) total_connections: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) commands: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ServerStats {
        ServerStats {
            connected_clients: self.connected.load(Ordering::Relaxed),
            total_connections: self.total_connections.load(Ordering::Relaxed),
            rejected_connections: self.rejected.load(Ordering::Relaxed),
            commands_processed: self.commands.load(Ordering::Relaxed),
            protocol_errors: self.protocol_errors.load(Ordering::Relaxed),
        }
    }
}
