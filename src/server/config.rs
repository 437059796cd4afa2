//! [`NodeConfig`]: everything one cluster member (`raftkv server`) is started with, read
//! from an optional TOML file and overridden by command-line flags.
//!
//! ```toml
//! id = 1
//! listen = "127.0.0.1:6381"          # client (RESP) address
//! data_dir = "/var/lib/raftkv/1"
//! backend = "file"                   # file | rocksdb | memory
//! max_raft_state = 67108864          # snapshot at 90% of this many bytes; -1: never
//!
//! redirect = "forward"               # forward (default) | moved (Redis Cluster MOVED)
//!
//! max_clients = 10000                # maxclients
//! max_bulk_bytes = 536870912         # proto-max-bulk-len
//! max_request_bytes = 1073807360     # client-query-buffer-limit (2 bulks + 64 KiB)
//! max_pending_proposals = 10000      # more writes in flight get -BUSY
//! commit_timeout_ms = 5000           # then a command gets an error
//!
//! [peers]                            # every member, this one included: Raft addresses
//! 1 = "10.0.0.1:7001"
//! 2 = "10.0.0.2:7001"
//! 3 = "10.0.0.3:7001"
//!
//! [clients]                          # every member's client address, as clients dial
//! 1 = "10.0.0.1:6379"                # it: MOVED targets and CLUSTER replies (needed
//! 2 = "10.0.0.2:6379"                # with redirect = "moved")
//! 3 = "10.0.0.3:6379"
//! ```

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use raftkv_consensus::transport::tcp::ClusterSecret;
use raftkv_kvservice::rsm::ReadMode;
use raftkv_kvservice::server::{Password, Redirect, split_host_port};
use raftkv_storage::{Backend, Durability, NodeId, StorageConfig};

/// A configuration error: which setting, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML file does not parse, or holds an unknown or mistyped key.
    #[error("parse config {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the line and key).
        reason: String,
    },
    /// A setting is missing or has a bad value.
    #[error("config `{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The TOML file's shape: every field optional, so flags can supply the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// This member's id.
    pub id: Option<NodeId>,
    /// Raft addresses of every member, this one included.
    pub peers: Option<BTreeMap<String, String>>,
    /// Client (RESP) listen address.
    pub listen: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Storage backend.
    pub backend: Option<Backend>,
    /// Snapshot threshold in bytes (-1: never).
    pub max_raft_state: Option<i64>,
    /// `always` (fsync before acknowledging; the default) or `never` (benchmarks only).
    pub fsync: Option<String>,
    /// Largest bulk string a client may send (Redis's `proto-max-bulk-len`).
    #[serde(alias = "proto-max-bulk-len")]
    pub max_bulk_bytes: Option<usize>,
    /// Most client connections (Redis's `maxclients`).
    #[serde(alias = "maxclients")]
    pub max_clients: Option<usize>,
    /// Largest request a connection buffers (Redis's `client-query-buffer-limit`).
    #[serde(alias = "client-query-buffer-limit")]
    pub max_request_bytes: Option<usize>,
    /// Most client writes pending on this member before more get `-BUSY`.
    pub max_pending_proposals: Option<usize>,
    /// How long a client command may wait for its commit before it gets an error.
    pub commit_timeout_ms: Option<u64>,
    /// `readindex` (default) or `log`.
    pub read_mode: Option<ReadMode>,
    /// Length of one Raft tick in milliseconds (default 10).
    pub tick_ms: Option<u64>,
    /// Election timeout in ticks (randomised in [n, 2n); default 30).
    pub election_ticks: Option<u32>,
    /// Heartbeat interval in ticks (default 5).
    pub heartbeat_ticks: Option<u32>,
    /// zstd level of snapshots.
    pub zstd_level: Option<i32>,
    /// Identifies the cluster on the wire (default: derived from the member list).
    pub cluster_id: Option<u64>,
    /// The password clients must send with `AUTH` (also `RAFTKV_REQUIREPASS`).
    pub requirepass: Option<String>,
    /// The secret every member shares; peers prove it to each other on every Raft
    /// connection (also `RAFTKV_CLUSTER_SECRET`).
    pub cluster_secret: Option<String>,
    /// Allow a client address other than loopback without a password, and a Raft
    /// address other than loopback without a cluster secret.
    pub insecure: Option<bool>,
    /// `forward` (default: a follower runs commands at the leader) or `moved` (it
    /// answers `-MOVED`, as a Redis Cluster node).
    pub redirect: Option<Redirect>,
    /// Client (RESP) addresses of every member, this one included, as clients should
    /// dial them (`[clients]`, `--clients`); required with `redirect = "moved"`.
    pub clients: Option<BTreeMap<String, String>>,
    /// Prometheus metrics address, `HOST:PORT` or a bare port (on 127.0.0.1); unset:
    /// no metrics endpoint.
    pub metrics: Option<String>,
}

impl NodeFile {
    /// Reads and parses a TOML file.
    pub fn load(path: &std::path::Path) -> Result<NodeFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The settings taken from the environment, read through `var`:
    /// `RAFTKV_REQUIREPASS`, `RAFTKV_CLUSTER_SECRET`, `RAFTKV_REDIRECT` (`forward` | `moved`) and
    /// `RAFTKV_CLIENTS` (`1=HOST:PORT,...`), and the limits `RAFTKV_MAX_CLIENTS`,
    /// `RAFTKV_MAX_BULK_BYTES`, `RAFTKV_MAX_REQUEST_BYTES`,
    /// `RAFTKV_MAX_PENDING_PROPOSALS` and `RAFTKV_COMMIT_TIMEOUT_MS`, and `RAFTKV_METRICS`
    /// (the metrics address). They override the TOML file; flags override them.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<NodeFile, ConfigError> {
        let redirect = var("RAFTKV_REDIRECT")
            .map(|v| {
                v.parse::<Redirect>()
                    .map_err(|e| invalid("redirect", format!("RAFTKV_REDIRECT: {e}")))
            })
            .transpose()?;
        let clients = var("RAFTKV_CLIENTS")
            .map(|v| parse_members("clients", &v))
            .transpose()?;
        Ok(NodeFile {
            max_clients: env_number(&var, "max_clients", "RAFTKV_MAX_CLIENTS")?,
            max_bulk_bytes: env_number(&var, "max_bulk_bytes", "RAFTKV_MAX_BULK_BYTES")?,
            max_request_bytes: env_number(&var, "max_request_bytes", "RAFTKV_MAX_REQUEST_BYTES")?,
            max_pending_proposals: env_number(
                &var,
                "max_pending_proposals",
                "RAFTKV_MAX_PENDING_PROPOSALS",
            )?,
            commit_timeout_ms: env_number(&var, "commit_timeout_ms", "RAFTKV_COMMIT_TIMEOUT_MS")?,
            requirepass: var("RAFTKV_REQUIREPASS"),
            cluster_secret: var("RAFTKV_CLUSTER_SECRET"),
            metrics: var("RAFTKV_METRICS"),
            redirect,
            clients,
            ..NodeFile::default()
        })
    }

    /// Overlays `other`'s set fields on this one (flags over file).
    pub fn overlay(mut self, other: NodeFile) -> NodeFile {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            id,
            peers,
            listen,
            data_dir,
            backend,
            max_raft_state,
            fsync,
            max_bulk_bytes,
            max_clients,
            max_request_bytes,
            max_pending_proposals,
            commit_timeout_ms,
            read_mode,
            tick_ms,
            election_ticks,
            heartbeat_ticks,
            zstd_level,
            cluster_id,
            requirepass,
            cluster_secret,
            insecure,
            redirect,
            clients,
            metrics
        );
        self
    }
}

/// Reads the number in environment variable `name` (for setting `field`), if set.
fn env_number<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    field: &'static str,
    name: &str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    var(name)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|e| invalid(field, format!("{name}={v:?}: {e}")))
        })
        .transpose()
}

/// A validated member configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This member's id (non-zero, one of `peers`).
    pub id: NodeId,
    /// Raft address of every member, this one included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The peers as written (host names kept), for messages.
    pub peer_names: BTreeMap<NodeId, String>,
    /// Client (RESP) listen address.
    pub listen: SocketAddr,
    /// Storage settings (backend, data directory, durability).
    pub storage: StorageConfig,
    /// Snapshot threshold (-1: never).
    pub max_raft_state: i64,
    /// Largest client bulk string.
    pub max_bulk_bytes: usize,
    /// Most client connections.
    pub max_clients: usize,
    /// Largest request a connection buffers.
    pub max_request_bytes: usize,
    /// Most client writes pending on this member.
    pub max_pending_proposals: usize,
    /// How long a client command may wait for its commit (and retries) before an error.
    pub commit_timeout: Duration,
    /// A non-loopback `listen` without a password, or a non-loopback Raft address
    /// without a cluster secret, was allowed.
    pub insecure: bool,
    /// How linearizable reads are served.
    pub read_mode: ReadMode,
    /// One Raft tick.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Cluster id checked in every peer connection's hello.
    pub cluster_id: u64,
    /// The password clients must give with `AUTH`, if any.
    pub requirepass: Option<Password>,
    /// The secret peers prove to each other (none: peers are not authenticated).
    pub cluster_secret: ClusterSecret,
    /// How a follower answers commands the leader must run.
    pub redirect: Redirect,
    /// Every member's client address, as clients dial it (empty if not configured;
    /// one per member of `peers` when given).
    pub client_addrs: BTreeMap<NodeId, String>,
    /// Where Prometheus scrapes `GET /metrics`, if anywhere.
    pub metrics: Option<SocketAddr>,
}

/// Where clients are served when `listen` is not set: loopback only, as Redis's
/// protected mode.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6379";

/// Default largest request: room for a key and a value of the largest bulk size.
pub fn default_max_request_bytes(max_bulk_bytes: usize) -> usize {
    max_bulk_bytes.saturating_mul(2).saturating_add(64 << 10)
}

/// Default ceiling on a member's pending client writes.
pub use raftkv_kvservice::replica::DEFAULT_MAX_PENDING_PROPOSALS;

/// Default commit timeout, in milliseconds.
pub const DEFAULT_COMMIT_TIMEOUT_MS: u64 = 5_000;

/// Default snapshot threshold: 64 MiB of Raft state.
pub const DEFAULT_MAX_RAFT_STATE: i64 = 64 << 20;

/// Parses `1=host:port,2=host:port,...` (`--peers`).
pub fn parse_peers(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    parse_members("peers", text)
}

/// Parses `1=host:port,2=host:port,...` for the setting `field`.
pub fn parse_members(
    field: &'static str,
    text: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| invalid(field, format!("`{part}` is not ID=HOST:PORT")))?;
        if out
            .insert(id.trim().to_string(), addr.trim().to_string())
            .is_some()
        {
            return Err(invalid(
                field,
                format!("member {} is listed twice", id.trim()),
            ));
        }
    }
    Ok(out)
}

/// Member ids of a `[peers]` / `[clients]` table: non-zero numbers.
fn member_id(field: &'static str, key: &str) -> Result<NodeId, ConfigError> {
    key.parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| invalid(field, format!("`{key}` is not a non-zero member id")))
}

/// Checks `[clients]` against the members: each a member of `peers`, each `HOST:PORT`,
/// and with MOVED redirects, one for every member.
fn client_addrs(
    raw: Option<BTreeMap<String, String>>,
    peers: &BTreeMap<NodeId, SocketAddr>,
    redirect: Redirect,
) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in raw.unwrap_or_default() {
        let id = member_id("clients", &k)?;
        if !peers.contains_key(&id) {
            return Err(invalid("clients", format!("member {id} is not in `peers`")));
        }
        if split_host_port(&v).is_none() {
            return Err(invalid(
                "clients",
                format!("member {id}'s address `{v}` is not HOST:PORT"),
            ));
        }
        out.insert(id, v);
    }
    if redirect == Redirect::Moved {
        if let Some(missing) = peers.keys().find(|id| !out.contains_key(id)) {
            return Err(invalid(
                "clients",
                format!(
                    "redirect = \"moved\" needs every member's client address \
                     (`[clients]` or --clients); member {missing} has none"
                ),
            ));
        }
    }
    Ok(out)
}

fn resolve(field: &'static str, addr: &str) -> Result<SocketAddr, ConfigError> {
    addr.to_socket_addrs()
        .map_err(|e| invalid(field, format!("cannot resolve `{addr}`: {e}")))?
        .next()
        .ok_or_else(|| invalid(field, format!("`{addr}` resolves to no address")))
}

/// Resolves the metrics address: a bare port is on loopback; another address than
/// loopback needs what a client address needs (a password, or `insecure`).
fn metrics_addr(text: &str, open_allowed: bool) -> Result<SocketAddr, ConfigError> {
    let addr = match text.trim().parse::<u16>() {
        Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => resolve("metrics", text)?,
    };
    if !addr.ip().is_loopback() && !open_allowed {
        return Err(invalid(
            "metrics",
            format!(
                "{addr} is not a loopback address: set a password (`requirepass`, \
                 RAFTKV_REQUIREPASS) or pass --insecure to serve it"
            ),
        ));
    }
    Ok(addr)
}

impl NodeConfig {
    /// Validates a merged file + flags configuration.
    pub fn from_file(f: NodeFile) -> Result<NodeConfig, ConfigError> {
        let id = f.id.ok_or_else(|| invalid("id", "is required (--id)"))?;
        if id == 0 {
            return Err(invalid("id", "must be non-zero"));
        }
        let raw = f
            .peers
            .ok_or_else(|| invalid("peers", "is required (--peers)"))?;
        let mut peers = BTreeMap::new();
        let mut peer_names = BTreeMap::new();
        for (k, v) in raw {
            let pid = member_id("peers", &k)?;
            peers.insert(pid, resolve("peers", &v)?);
            peer_names.insert(pid, v);
        }
        if !peers.contains_key(&id) {
            return Err(invalid(
                "peers",
                format!("must include this member (id {id}): it gives its Raft address"),
            ));
        }
        let mut seen = BTreeMap::new();
        for (pid, addr) in &peers {
            if let Some(other) = seen.insert(*addr, *pid) {
                return Err(invalid(
                    "peers",
                    format!("members {other} and {pid} share the address {addr}"),
                ));
            }
        }
        let listen = resolve("listen", f.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
        let requirepass = f.requirepass.and_then(Password::new);
        if !listen.ip().is_loopback() && requirepass.is_none() && f.insecure != Some(true) {
            return Err(invalid(
                "listen",
                format!(
                    "{listen} is not a loopback address: set a password (`requirepass`, \
                     RAFTKV_REQUIREPASS) or pass --insecure to serve it without one"
                ),
            ));
        }
        let cluster_secret = ClusterSecret::new(f.cluster_secret.as_deref().unwrap_or(""));
        let raft_addr = peers[&id];
        if !raft_addr.ip().is_loopback() && !cluster_secret.is_set() && f.insecure != Some(true) {
            return Err(invalid(
                "peers",
                format!(
                    "this member's Raft address {raft_addr} is not a loopback address: set a \
                     cluster secret (`cluster_secret`, RAFTKV_CLUSTER_SECRET) so that peers \
                     authenticate each other, or pass --insecure to run without one"
                ),
            ));
        }
        let metrics = f
            .metrics
            .as_deref()
            .map(|m| metrics_addr(m, requirepass.is_some() || f.insecure == Some(true)))
            .transpose()?;
        if let Some(m) = metrics
            && (m == listen || peers.values().any(|a| *a == m))
        {
            return Err(invalid(
                "metrics",
                format!("{m} is also the client or a Raft peer address"),
            ));
        }
        if peers.values().any(|a| *a == listen) {
            return Err(invalid(
                "listen",
                format!("{listen} is also a Raft peer address"),
            ));
        }
        let backend = f.backend.unwrap_or_default();
        let mut storage = match (&f.data_dir, backend) {
            (_, Backend::Memory) => {
                let mut s = StorageConfig::new(Backend::Memory, "");
                s.dir = None;
                s
            }
            (Some(d), b) => StorageConfig::new(b, d),
            (None, b) => {
                return Err(invalid(
                    "data_dir",
                    format!("is required for backend {b} (--data-dir)"),
                ));
            }
        };
        storage.durability = match f.fsync.as_deref() {
            None | Some("always") => Durability::Immediate,
            Some("never") => Durability::None,
            Some(other) => {
                return Err(invalid(
                    "fsync",
                    format!("`{other}` is not `always` or `never`"),
                ));
            }
        };
        if let Some(level) = f.zstd_level {
            storage.zstd_level = level;
        }
        storage
            .validate()
            .map_err(|e| invalid("storage", e.to_string()))?;
        let max_raft_state = f.max_raft_state.unwrap_or(DEFAULT_MAX_RAFT_STATE);
        if (0..4096).contains(&max_raft_state) {
            return Err(invalid(
                "max_raft_state",
                format!("{max_raft_state} bytes is too small (at least 4096, or -1 for never)"),
            ));
        }
        let max_bulk_bytes = f.max_bulk_bytes.unwrap_or(512 << 20);
        if max_bulk_bytes == 0 || max_bulk_bytes > (1 << 30) {
            return Err(invalid("max_bulk_bytes", "must be in 1..=1 GiB"));
        }
        let max_clients = f.max_clients.unwrap_or(10_000);
        if max_clients == 0 {
            return Err(invalid("max_clients", "must be at least 1"));
        }
        let max_request_bytes = f
            .max_request_bytes
            .unwrap_or_else(|| default_max_request_bytes(max_bulk_bytes));
        if max_request_bytes < 1024 {
            return Err(invalid(
                "max_request_bytes",
                format!("{max_request_bytes} bytes is too small (at least 1024)"),
            ));
        }
        let max_pending_proposals = f
            .max_pending_proposals
            .unwrap_or(DEFAULT_MAX_PENDING_PROPOSALS);
        if max_pending_proposals == 0 {
            return Err(invalid("max_pending_proposals", "must be at least 1"));
        }
        let commit_timeout_ms = f.commit_timeout_ms.unwrap_or(DEFAULT_COMMIT_TIMEOUT_MS);
        if !(10..=600_000).contains(&commit_timeout_ms) {
            return Err(invalid(
                "commit_timeout_ms",
                format!("{commit_timeout_ms} is outside 10..=600000"),
            ));
        }
        let tick_ms = f.tick_ms.unwrap_or(10);
        if !(1..=1000).contains(&tick_ms) {
            return Err(invalid("tick_ms", format!("{tick_ms} is outside 1..=1000")));
        }
        let election_ticks = f.election_ticks.unwrap_or(30);
        let heartbeat_ticks = f.heartbeat_ticks.unwrap_or(5);
        if heartbeat_ticks == 0 || heartbeat_ticks >= election_ticks {
            return Err(invalid(
                "heartbeat_ticks",
                format!(
                    "{heartbeat_ticks} must be at least 1 and below election_ticks ({election_ticks})"
                ),
            ));
        }
        let cluster_id = f.cluster_id.unwrap_or_else(|| derive_cluster_id(&peers));
        let redirect = f.redirect.unwrap_or_default();
        let client_addrs = client_addrs(f.clients, &peers, redirect)?;
        Ok(NodeConfig {
            id,
            peers,
            peer_names,
            listen,
            storage,
            max_raft_state,
            max_bulk_bytes,
            max_clients,
            max_request_bytes,
            max_pending_proposals,
            commit_timeout: Duration::from_millis(commit_timeout_ms),
            insecure: f.insecure == Some(true),
            read_mode: f.read_mode.unwrap_or_default(),
            tick: Duration::from_millis(tick_ms),
            election_ticks,
            heartbeat_ticks,
            cluster_id,
            requirepass,
            cluster_secret,
            redirect,
            client_addrs,
            metrics,
        })
    }
}

/// A cluster id every member computes alike from the member list (ids and addresses),
/// so that members of two different clusters refuse each other's connections.
pub fn derive_cluster_id(peers: &BTreeMap<NodeId, SocketAddr>) -> u64 {
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in peers {
        for b in id
            .to_le_bytes()
            .iter()
            .chain(addr.to_string().as_bytes())
            .chain(b";")
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(id: u64) -> NodeFile {
        NodeFile {
            id: Some(id),
            peers: Some(
                parse_peers("1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003")
                    .expect("must succeed"),
            ),
            listen: Some("127.0.0.1:6381".into()),
            data_dir: Some("/tmp/x".into()),
            ..NodeFile::default()
        }
    }

    #[test]
    fn flags_alone_make_a_valid_config() {
        let c = NodeConfig::from_file(flags(2)).expect("must succeed");
        assert_eq!(c.id, 2);
        assert_eq!(c.peers.len(), 3);
        assert_eq!(c.storage.backend, Backend::File);
        assert_eq!(c.max_raft_state, DEFAULT_MAX_RAFT_STATE);
        assert_eq!(
            c.cluster_id,
            NodeConfig::from_file(flags(1))
                .expect("must succeed")
                .cluster_id
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file: NodeFile = toml::from_str(
            "id = 3\nlisten = \"127.0.0.1:9999\"\nbackend = \"memory\"\nmax_raft_state = 100000\n[peers]\n3 = \"127.0.0.1:7003\"\n",
        )
        .expect("must succeed");
        let c = NodeConfig::from_file(file.overlay(flags(1))).expect("must succeed");
        assert_eq!(c.id, 1, "flag wins");
        assert_eq!(c.listen.port(), 6381, "flag wins");
        assert_eq!(c.storage.backend, Backend::Memory, "file value kept");
        assert_eq!(c.max_raft_state, 100_000);
    }

    #[test]
    fn a_raft_address_off_loopback_needs_a_cluster_secret_or_insecure() {
        let open = |secret: Option<&str>, insecure: Option<bool>| {
            NodeConfig::from_file(NodeFile {
                peers: Some(parse_peers("1=0.0.0.0:7101,2=127.0.0.1:7102").expect("peers")),
                cluster_secret: secret.map(str::to_string),
                insecure,
                ..flags(1)
            })
        };
        let refused = open(None, None).expect_err("no secret").to_string();
        assert!(
            refused.contains("0.0.0.0:7101")
                && refused.contains("cluster_secret")
                && refused.contains("--insecure"),
            "{refused}"
        );
        let with_secret = open(Some("s"), None).expect("a secret");
        assert!(with_secret.cluster_secret.is_set());
        assert!(!format!("{with_secret:?}").contains("\"s\""));
        assert!(
            !open(None, Some(true))
                .expect("insecure")
                .cluster_secret
                .is_set()
        );
        // An empty secret is no secret.
        assert!(open(Some(""), None).is_err());
    }

    #[test]
    fn clients_are_served_on_loopback_unless_a_password_or_insecure_says_otherwise() {
        let defaulted = NodeConfig::from_file(NodeFile {
            listen: None,
            ..flags(1)
        })
        .expect("listen defaults");
        assert_eq!(defaulted.listen.to_string(), DEFAULT_LISTEN);
        assert!(defaulted.requirepass.is_none());

        let open = |requirepass: Option<&str>, insecure: Option<bool>| {
            NodeConfig::from_file(NodeFile {
                listen: Some("0.0.0.0:6390".into()),
                requirepass: requirepass.map(str::to_string),
                insecure,
                ..flags(1)
            })
        };
        let refused = open(None, None)
            .expect_err("no password, not insecure")
            .to_string();
        assert!(
            refused.contains("`listen`") && refused.contains("--insecure"),
            "{refused}"
        );
        // An empty password is no password, as in Redis.
        assert!(open(Some(""), None).is_err());
        let with_password = open(Some("s3cret"), None).expect("a password opens it");
        assert_eq!(
            with_password.requirepass.as_ref().map(|p| p.expose()),
            Some("s3cret")
        );
        assert!(
            !format!("{with_password:?}").contains("s3cret"),
            "the password stays out of Debug output"
        );
        assert!(open(None, Some(true)).is_ok());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let err = |f: NodeFile| NodeConfig::from_file(f).expect_err("must fail").to_string();
        assert!(
            err(NodeFile {
                id: Some(4),
                ..flags(1)
            })
            .contains("`peers`")
        );
        assert!(
            err(NodeFile {
                id: None,
                ..flags(1)
            })
            .contains("`id`")
        );
        assert!(
            err(NodeFile {
                listen: Some("127.0.0.1:7001".into()),
                ..flags(1)
            })
            .contains("`listen`")
        );
        assert!(
            err(NodeFile {
                fsync: Some("sometimes".into()),
                ..flags(1)
            })
            .contains("`fsync`")
        );
        assert!(
            err(NodeFile {
                max_raft_state: Some(10),
                ..flags(1)
            })
            .contains("`max_raft_state`")
        );
        assert!(
            err(NodeFile {
                data_dir: None,
                ..flags(1)
            })
            .contains("`data_dir`")
        );
        assert!(
            parse_peers("1=a:1,1=b:2")
                .expect_err("must fail")
                .to_string()
                .contains("twice")
        );
        assert!(
            parse_peers("1:a")
                .expect_err("must fail")
                .to_string()
                .contains("ID=HOST:PORT")
        );
        let unknown = toml::from_str::<NodeFile>("idd = 1")
            .expect_err("must fail")
            .to_string();
        assert!(unknown.contains("idd"), "{unknown}");
    }

    #[test]
    fn moved_redirects_need_every_members_client_address() {
        let clients = |text: &str| Some(parse_members("clients", text).expect("parse"));
        let moved = |c| NodeFile {
            redirect: Some(Redirect::Moved),
            clients: c,
            ..flags(1)
        };
        let err = |f: NodeFile| NodeConfig::from_file(f).expect_err("must fail").to_string();
        assert!(err(moved(None)).contains("member 1 has none"));
        assert!(err(moved(clients("1=127.0.0.1:6381,2=127.0.0.1:6382"))).contains("member 3"));
        assert!(
            err(moved(clients("1=a:1,2=b:2,3=c:3,4=d:4"))).contains("member 4 is not in `peers`")
        );
        assert!(err(moved(clients("1=a:1,2=b,3=c:3"))).contains("not HOST:PORT"));
        let c = NodeConfig::from_file(moved(clients(
            "1=127.0.0.1:6381, 2=127.0.0.1:6382,3=db3.local:6383",
        )))
        .expect("valid");
        assert_eq!(c.redirect, Redirect::Moved);
        assert_eq!(c.client_addrs[&3], "db3.local:6383");
        // Forwarding is the default and needs no client addresses.
        let f = NodeConfig::from_file(flags(1)).expect("valid");
        assert_eq!(f.redirect, Redirect::Forward);
        assert!(f.client_addrs.is_empty());
        // The TOML form.
        let file: NodeFile = toml::from_str(
            "redirect = \"moved\"\n[clients]\n1 = \"127.0.0.1:6381\"\n2 = \"127.0.0.1:6382\"\n3 = \"127.0.0.1:6383\"\n",
        )
        .expect("parse");
        let c = NodeConfig::from_file(file.overlay(flags(2))).expect("valid");
        assert_eq!(c.redirect, Redirect::Moved);
        assert_eq!(c.client_addrs.len(), 3);
        let bad = toml::from_str::<NodeFile>("redirect = \"sideways\"")
            .expect_err("unknown mode")
            .to_string();
        assert!(
            bad.contains("redirect") && bad.contains("sideways"),
            "{bad}"
        );
    }

    #[test]
    fn the_environment_sets_redirects_between_the_file_and_the_flags() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            NodeFile::from_env(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_string())
            })
        };
        let file: NodeFile = toml::from_str("redirect = \"forward\"").expect("parse");
        let e = env(&[
            ("RAFTKV_REDIRECT", "moved"),
            (
                "RAFTKV_CLIENTS",
                "1=127.0.0.1:6381,2=127.0.0.1:6382,3=127.0.0.1:6383",
            ),
        ])
        .expect("valid environment");
        let c = NodeConfig::from_file(file.overlay(e).overlay(flags(1))).expect("valid");
        assert_eq!(c.redirect, Redirect::Moved);
        assert_eq!(c.client_addrs[&2], "127.0.0.1:6382");
        // Flags win over the environment.
        let e = env(&[("RAFTKV_REDIRECT", "moved")]).expect("valid environment");
        let f = NodeFile {
            redirect: Some(Redirect::Forward),
            ..flags(1)
        };
        let c = NodeConfig::from_file(NodeFile::default().overlay(e).overlay(f)).expect("valid");
        assert_eq!(c.redirect, Redirect::Forward);
        // Bad values name the setting and the value.
        let bad = env(&[("RAFTKV_REDIRECT", "sideways")])
            .expect_err("unknown mode")
            .to_string();
        assert!(
            bad.contains("`redirect`")
                && bad.contains("RAFTKV_REDIRECT")
                && bad.contains("sideways"),
            "{bad}"
        );
        let bad = env(&[("RAFTKV_CLIENTS", "1=127.0.0.1:6381,2")])
            .expect_err("not ID=HOST:PORT")
            .to_string();
        assert!(bad.contains("`clients`") && bad.contains("`2`"), "{bad}");
        let bad = NodeConfig::from_file(NodeFile {
            redirect: Some(Redirect::Moved),
            clients: Some(parse_members("clients", "1=a:1,2=b:99999,3=c:3").expect("parse")),
            ..flags(1)
        })
        .expect_err("port out of range")
        .to_string();
        assert!(
            bad.contains("`clients`") && bad.contains("b:99999"),
            "{bad}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// The twin of the `node_config` fuzz target: any text is a config or an error.
        #[test]
        fn any_text_is_a_config_or_an_error(text in "[a-z_=\"0-9 .:,\n\\[\\]-]{0,160}") {
            if let Ok(file) = toml::from_str::<NodeFile>(&text) {
                let literal = |a: &str| a.parse::<SocketAddr>().is_ok();
                if file.peers.as_ref().is_none_or(|p| p.values().all(|a| literal(a)))
                    && file.listen.as_deref().is_none_or(literal)
                {
                    let _ = NodeConfig::from_file(file);
                }
            }
        }
    }

    #[test]
    fn metrics_bind_loopback_for_a_bare_port_and_elsewhere_only_as_clients_may() {
        let with = |metrics: &str, requirepass: Option<&str>, insecure: Option<bool>| {
            NodeConfig::from_file(NodeFile {
                metrics: Some(metrics.into()),
                requirepass: requirepass.map(str::to_string),
                insecure,
                backend: Some(Backend::Memory),
                ..flags(1)
            })
        };
        let bare = with("9187", None, None).expect("a bare port");
        assert_eq!(
            bare.metrics.map(|m| m.to_string()).as_deref(),
            Some("127.0.0.1:9187")
        );
        let refused = with("0.0.0.0:9187", None, None)
            .expect_err("open without password")
            .to_string();
        assert!(
            refused.contains("`metrics`") && refused.contains("--insecure"),
            "{refused}"
        );
        assert!(with("0.0.0.0:9187", Some("pw"), None).is_ok());
        assert!(with("0.0.0.0:9187", None, Some(true)).is_ok());
        let clash = with("127.0.0.1:7001", None, None).expect_err("a peer address");
        assert!(clash.to_string().contains("Raft peer"), "{clash}");
        let unset = NodeConfig::from_file(NodeFile {
            backend: Some(Backend::Memory),
            ..flags(1)
        })
        .expect("no metrics");
        assert_eq!(unset.metrics, None);
        // The environment overrides the file; flags override both.
        let file = NodeFile {
            metrics: Some("9001".into()),
            ..NodeFile::default()
        };
        let env = NodeFile::from_env(|n| (n == "RAFTKV_METRICS").then(|| "9002".to_string()))
            .expect("valid environment");
        assert_eq!(file.overlay(env).metrics.as_deref(), Some("9002"));
    }
}
