//! [`ServerError`]: why a RESP server could not start.

use std::net::SocketAddr;

/// Why [`RespServer::start`](super::RespServer::start) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket could not be set up for the async runtime.
    #[error("cannot set up the listener on {addr}: {source}")]
    Listener {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("invalid server config: {0}")]
    Config(String),
}
