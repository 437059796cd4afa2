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
    /// How a member that does not lead answers commands the leader must run. Default
    /// [`Redirect::Forward`].
    pub redirect: Redirect,
    /// Every member's client (RESP) address, `host:port` as clients should dial it,
    /// this member included. [`Redirect::Moved`] needs it (the `MOVED` targets and the
    /// `CLUSTER` replies); [`RespServer::start`](super::RespServer::start) refuses a
    /// MOVED server without this member's address or with an entry that is not
    /// `host:port`. May be empty otherwise.
    pub client_addrs: BTreeMap<NodeId, String>,
    /// Where hot backups (`RAFTKV.BACKUP`) are written while clients fetch them: the
    /// data directory, say. `None`: the system's temporary directory.
    pub backup_dir: Option<std::path::PathBuf>,
}

/// How a member that does not lead answers a command that must run on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redirect {
    /// Run it at the leader through the [`Forwarder`](super::Forwarder) and answer as
    /// the leader did: any member serves any client, as one Redis server would.
    #[default]
    Forward,
    /// Answer as a Redis Cluster does: `-MOVED <slot> <leader host>:<port>`, with the
    /// slot of the command's first key (0 for a command without keys), and
    /// `-CLUSTERDOWN The cluster is down` when no leader is known within the retry
    /// budget. `CLUSTER SLOTS|SHARDS|NODES` then describe one shard holding all 16384
    /// slots, the leader its master, and `INFO` reports `cluster_enabled:1`, so that
    /// cluster clients (`redis-cli -c`, redis-py's `RedisCluster`) send each command
    /// to the leader and follow a failover.
    Moved,
}

impl std::str::FromStr for Redirect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forward" => Ok(Redirect::Forward),
            "moved" => Ok(Redirect::Moved),
            other => Err(format!(
                "unknown redirect {other:?}: expected `forward` or `moved`"
            )),
        }
    }
}

/// Splits `host:port` (the port after the last `:`; a bracketed IPv6 host loses its
/// brackets), or `None` when there is no valid port.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
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
            redirect: Redirect::Forward,
            client_addrs: BTreeMap::new(),
            backup_dir: None,
        }
    }

    /// The parser limits connections use.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk_bytes: self.max_bulk_bytes,
            ..Limits::DEFAULT
        }
    }

    /// Checks the settings that depend on each other: every client address must be
    /// `host:port`, and with [`Redirect::Moved`] this member (`me`) and every member of
    /// [`peer_addrs`](Self::peer_addrs) must have one.
    pub fn validate(&self, me: NodeId) -> Result<(), String> {
        if self.max_clients == 0 {
            return Err("max_clients must be at least 1".into());
        }
        if let Some((id, addr)) = self
            .client_addrs
            .iter()
            .find(|(_, a)| split_host_port(a).is_none())
        {
            return Err(format!(
                "client_addrs: the client address of member {id} ({addr:?}) is not HOST:PORT"
            ));
        }
        if self.redirect == Redirect::Moved {
            let mut members = std::iter::once(&me).chain(self.peer_addrs.keys());
            if let Some(id) = members.find(|id| !self.client_addrs.contains_key(id)) {
                return Err(format!(
                    "client_addrs: redirect = moved needs every member's client address, \
                     and member {id}'s is missing"
                ));
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_needs_this_members_client_address() {
        let mut c = ServerConfig::default();
        assert_eq!(c.validate(1), Ok(()));
        c.redirect = Redirect::Moved;
        assert!(c.validate(1).expect_err("no address").contains("member 1"));
        c.client_addrs.insert(1, "127.0.0.1:6381".into());
        assert_eq!(c.validate(1), Ok(()));
        c.peer_addrs = (1..=3).map(|i| (i, format!("10.0.0.{i}:7000"))).collect();
        let missing = c.validate(1).expect_err("members 2 and 3 have no address");
        assert!(
            missing.contains("client_addrs") && missing.contains("member 2"),
            "{missing}"
        );
        c.client_addrs.insert(2, "127.0.0.1:6382".into());
        c.client_addrs.insert(3, "127.0.0.1:6383".into());
        assert_eq!(c.validate(1), Ok(()));
        c.client_addrs.insert(2, "nohost".into());
        let bad = c.validate(1).expect_err("bad");
        assert!(
            bad.contains("HOST:PORT") && bad.contains("\"nohost\""),
            "{bad}"
        );
        c.max_clients = 0;
        assert!(c.validate(1).is_err());
    }

    #[test]
    fn host_port_splits_at_the_last_colon() {
        assert_eq!(split_host_port("10.0.0.1:6379"), Some(("10.0.0.1", 6379)));
        assert_eq!(split_host_port("db.example:1"), Some(("db.example", 1)));
        assert_eq!(split_host_port("[::1]:6379"), Some(("::1", 6379)));
        assert_eq!(split_host_port("host:99999"), None);
        assert_eq!(split_host_port(":6379"), None);
        assert_eq!(split_host_port("host"), None);
        assert_eq!("moved".parse(), Ok(Redirect::Moved));
        assert_eq!("forward".parse(), Ok(Redirect::Forward));
        assert!("Moved".parse::<Redirect>().is_err());
    }
}
