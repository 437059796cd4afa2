//! [`ServerConfig`]: the RESP server's settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use raftkv_storage::NodeId;

use crate::resp::Limits;

/// Settings of a [`RespServer`](super::RespServer).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port; see
    /// [`RespServer::local_addr`](super::RespServer::local_addr)).
    pub listen: SocketAddr,
    /// Largest bulk string accepted, in bytes (Redis's `proto-max-bulk-len`, 512 MiB).
    /// A larger one is refused as soon as its header arrives, before its payload is
    /// read, and the connection is closed.
    pub max_bulk_bytes: usize,
    /// Largest request (all its arguments) a connection buffers, in bytes. `None`:
    /// twice `max_bulk_bytes` plus 64 KiB (a key and a value of the largest size).
    pub max_request_bytes: Option<usize>,
    /// Most connections served at once; one more is answered
    /// `-ERR max number of clients reached` and closed. Default 10,000.
    pub max_clients: usize,
    /// How long a command is retried on transient failures (no leader, leader change,
    /// timeout, forwarding failure) before the client gets an error. Default 5 s. An
    /// attempt under way when it runs out finishes first (bounded by the state
    /// machine's commit timeout).
    pub retry_budget: Duration,
    /// The members' addresses (Raft addresses), for error messages and `INFO`. May be
    /// empty.
    pub peer_addrs: BTreeMap<NodeId, String>,
    /// Most pipelined requests run as one batch. Default 1024.
    pub max_batch: usize,
    /// Consecutive writes of a batch are packed into one replicated command while
    /// their keys and values add up to at most this many bytes (a larger write goes
    /// alone). Default 64 KiB; keep it well under Raft's entry size limit, or a pack
    /// of writes that would fit one by one is refused as too large.
    pub max_write_command_bytes: usize,
    /// The password clients must give with `AUTH` before any other command (Redis's
    /// `requirepass`). `None`: no authentication. Default `None`.
    pub requirepass: Option<Password>,
}

/// A password, kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps `text`; `None` for an empty one (Redis: an empty `requirepass` is none).
    pub fn new(text: impl Into<String>) -> Option<Password> {
        let text = text.into();
        (!text.is_empty()).then_some(Password(text))
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl ServerConfig {
    /// Defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            max_bulk_bytes: 512 << 20,
            max_request_bytes: None,
            max_clients: 10_000,
            retry_budget: Duration::from_secs(5),
            peer_addrs: BTreeMap::new(),
            max_batch: 1024,
            max_write_command_bytes: 64 << 10,
            requirepass: None,
        }
    }

    /// The parser limits connections use.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk_bytes: self.max_bulk_bytes,
            ..Limits::DEFAULT
        }
    }

    /// The most bytes a connection buffers for one request.
    pub fn request_limit(&self) -> usize {
        self.max_request_bytes.unwrap_or_else(|| {
            self.max_bulk_bytes
                .saturating_mul(2)
                .saturating_add(64 << 10)
        })
    }
}

impl Default for ServerConfig {
    /// Defaults on `127.0.0.1:6379`.
    fn default() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 6379)))
    }
}
