//! [`TcpError`]: what the TCP transport's API reports.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use raftkv_storage::NodeId;

/// An error of the TCP transport's API. Each names the operation and the address or
/// peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcpError {
    /// The settings are inconsistent.
    #[error("invalid TCP transport config: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// The listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The listen address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A listener handed to the transport could not be used.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The listener's address (as far as known).
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// The peer is not in the configuration.
    #[error("call to node {to}: not a configured peer")]
    UnknownPeer {
        /// The intended receiver.
        to: NodeId,
    },
    /// No connection to the peer is up (it is down, unreachable, or being redialed).
    #[error("call to node {to}: not connected")]
    NotConnected {
        /// The intended receiver.
        to: NodeId,
    },
    /// Too many requests are queued for the peer.
    #[error("call to node {to}: request queue full")]
    QueueFull {
        /// The intended receiver.
        to: NodeId,
    },
    /// The request does not fit in one frame.
    #[error("call to node {to}: request of {bytes} bytes exceeds the frame limit of {limit} bytes")]
    TooLarge {
        /// The intended receiver.
        to: NodeId,
        /// The request body's size.
        bytes: usize,
        /// The transport's `max_frame_bytes`.
        limit: usize,
    },
    /// No reply came in time (the request may still have been served).
    #[error("call to node {to}: timed out after {after:?}")]
    Timeout {
        /// The intended receiver.
        to: NodeId,
        /// The timeout.
        after: Duration,
    },
    /// The connection broke before the reply arrived (the request may have been
    /// served).
    #[error("call to node {to}: connection lost before the reply")]
    ConnectionLost {
        /// The intended receiver.
        to: NodeId,
    },
    /// The peer answered with an error (no handler, handler panicked, overloaded, reply
    /// too large).
    #[error("call to node {to}: remote error: {message}")]
    Remote {
        /// The peer.
        to: NodeId,
        /// The peer's message.
        message: String,
    },
    /// The transport was shut down.
    #[error("call to node {to}: the transport is shut down")]
    Shutdown {
        /// The intended receiver.
        to: NodeId,
    },
}
