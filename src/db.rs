//! [`Db`]: raftkv embedded in a process — a durable, linearizable KV store on one node,
//! or on N replicas in this process, with the backend chosen by configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use rand::RngCore;

use raftkv_kvservice::cluster::{ClusterConfig, ClusterStorage, LocalCluster};
use raftkv_kvservice::command::{Command, Op, Reply};
use raftkv_kvservice::error::KvError;
use raftkv_kvservice::rsm::ReadMode;
use raftkv_storage::{Backend, NodeId, StorageConfig, StorageError};

/// How to open a [`Db`].
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Backend and its settings. For `file` and `rocksdb`, `storage.dir` is the data
    /// directory; replica `i` lives in `<dir>/node-<i>`.
    pub storage: StorageConfig,
    /// Replicas in this process (1: a single durable node).
    pub replicas: u64,
    /// Snapshot when the Raft state reaches 90% of this many bytes (negative: never).
    pub max_raft_state: i64,
    /// How linearizable reads are served.
    pub read_mode: ReadMode,
    /// How long [`Db::open`] waits for a leader.
    pub open_timeout: Duration,
    /// How long one call retries before it gives up.
    pub request_timeout: Duration,
}

impl DbConfig {
    /// One replica on `backend` in `dir`, with defaults for the rest.
    pub fn new(backend: Backend, dir: impl Into<PathBuf>) -> Self {
        Self {
            storage: StorageConfig::new(backend, dir),
            replicas: 1,
            max_raft_state: 64 << 20,
            read_mode: ReadMode::ReadIndex,
            open_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// In memory, for tests and throwaway state.
    pub fn memory() -> Self {
        let mut c = Self::new(Backend::Memory, "");
        c.storage.dir = None;
        c
    }
}

/// A [`Db`] error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// `put_if` with a version that does not match; nothing was written.
    #[error("version mismatch: the key is at version {current}")]
    VersionMismatch {
        /// The key's version.
        current: u64,
    },
    /// `put_if` with a non-zero version on a missing key; nothing was written.
    #[error("no such key")]
    NoKey,
    /// The call did not complete in time. A write may still apply.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The configuration cannot be used.
    #[error("config: {0}")]
    Config(String),
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The replicated service failed.
    #[error(transparent)]
    Service(KvError),
}

impl From<KvError> for DbError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Storage(s) => DbError::Storage(s),
            other => DbError::Service(other),
        }
    }
}

/// One client session: an id and the next sequence number. A session serves one call
/// at a time, so its requests apply in order.
struct Session {
    id: u64,
    next_seq: u64,
}

/// A durable, linearizable key/value store.
///
/// ```
/// use raftkv::{Db, DbConfig};
/// use raftkv::storage::Backend;
///
/// let dir = tempfile::tempdir()?;
/// let db = Db::open(DbConfig::new(Backend::File, dir.path()))?;
/// let v1 = db.put(b"greeting", b"hello")?;
/// assert_eq!(db.get(b"greeting")?, Some((b"hello".to_vec().into(), v1)));
/// // Versioned writes: succeed only if the key is still at the version read.
/// let v2 = db.put_if(b"greeting", b"hi", v1)?;
/// assert!(db.put_if(b"greeting", b"stale", v1).is_err());
/// db.close();
///
/// // Everything acknowledged is there after a reopen.
/// let db = Db::open(DbConfig::new(Backend::File, dir.path()))?;
/// assert_eq!(db.get(b"greeting")?, Some((b"hi".to_vec().into(), v2)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Db {
    cluster: Arc<LocalCluster>,
    sessions: Mutex<Vec<Session>>,
    leader: Mutex<Option<NodeId>>,
    request_timeout: Duration,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("replicas", &self.cluster.ids().len())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if needed) the store, recovers its state, and waits until it can
    /// serve linearizable reads.
    pub fn open(config: DbConfig) -> Result<Db, DbError> {
        if config.replicas == 0 {
            return Err(DbError::Config("replicas must be at least 1".into()));
        }
        let storage = match config.storage.backend {
            Backend::Memory => ClusterStorage::Memory,
            _ => {
                config.storage.validate()?;
                let base = config
                    .storage
                    .dir
                    .clone()
                    .ok_or_else(|| DbError::Config("storage.dir is required".into()))?;
                std::fs::create_dir_all(&base)
                    .map_err(|e| StorageError::io("create data directory", &base, e))?;
                ClusterStorage::Dir {
                    base,
                    config: config.storage.clone(),
                }
            }
        };
        let mut cc = ClusterConfig::new(config.replicas, storage);
        cc.rsm.max_raft_state = config.max_raft_state;
        cc.rsm.read_mode = config.read_mode;
        cc.rsm.commit_timeout = config.request_timeout;
        cc.seed = rand::thread_rng().next_u64();
        let cluster = Arc::new(LocalCluster::start(cc)?);
        let leader = cluster.wait_ready(config.open_timeout)?;
        Ok(Db {
            cluster,
            sessions: Mutex::new(Vec::new()),
            leader: Mutex::new(Some(leader)),
            request_timeout: config.request_timeout,
        })
    }

    /// The value and version of `key`, read linearizably.
    pub fn get(&self, key: &[u8]) -> Result<Option<(Bytes, u64)>, DbError> {
        match self.call(Op::Get {
            key: Bytes::copy_from_slice(key),
        })? {
            Reply::Value {
                value: Some(v),
                version,
            } => Ok(Some((v, version))),
            Reply::Value { value: None, .. } => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// Stores `value`; returns the key's new version.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<u64, DbError> {
        match self.call(Op::Put {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        })? {
            Reply::Written { version } => Ok(version),
            other => Err(unexpected(&other)),
        }
    }

    /// Stores `value` only if `key` is at `version` (0: the key must not exist).
    pub fn put_if(&self, key: &[u8], value: &[u8], version: u64) -> Result<u64, DbError> {
        match self.call(Op::PutIf {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            version,
        })? {
            Reply::Written { version } => Ok(version),
            Reply::ErrVersion { current } => Err(DbError::VersionMismatch { current }),
            Reply::ErrNoKey => Err(DbError::NoKey),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&self, key: &[u8]) -> Result<bool, DbError> {
        match self.call(Op::Delete {
            key: Bytes::copy_from_slice(key),
        })? {
            Reply::Deleted { existed } => Ok(existed),
            other => Err(unexpected(&other)),
        }
    }

    /// The in-process replicas (for inspection and tests).
    pub fn cluster(&self) -> &Arc<LocalCluster> {
        &self.cluster
    }

    /// Stops every replica cleanly.
    pub fn close(self) {
        self.cluster.shutdown();
    }

    /// Runs `op` under a session of its own, retrying at the leader with the same
    /// sequence number until it applies or the request timeout passes.
    fn call(&self, op: Op) -> Result<Reply, DbError> {
        let mut session = self.sessions.lock().pop().unwrap_or_else(|| Session {
            id: rand::thread_rng().next_u64() | 1,
            next_seq: 1,
        });
        let cmd = Command::in_session(session.id, &mut session.next_seq, op);
        let result = self.call_session(&cmd);
        self.sessions.lock().push(session);
        result
    }

    fn call_session(&self, cmd: &Command) -> Result<Reply, DbError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(1);
        loop {
            let target = (*self.leader.lock()).or_else(|| self.cluster.leader());
            if let Some(id) = target {
                match self.cluster.handle(id, cmd) {
                    Ok(reply) => return Ok(reply),
                    Err(KvError::WrongLeader { leader_hint }) => {
                        *self.leader.lock() = leader_hint.filter(|h| *h != id);
                    }
                    Err(KvError::Timeout { .. }) => {
                        *self.leader.lock() = None;
                    }
                    Err(e @ (KvError::Storage(_) | KvError::TooLarge { .. })) => {
                        return Err(e.into());
                    }
                    Err(KvError::Shutdown) if self.cluster.replica(id).is_none() => {
                        *self.leader.lock() = None;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "retrying");
                        *self.leader.lock() = None;
                    }
                }
            }
            if started.elapsed() >= self.request_timeout {
                return Err(DbError::Timeout(started.elapsed()));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }
}

fn unexpected(reply: &Reply) -> DbError {
    DbError::Service(KvError::Consensus(format!(
        "the state machine answered {reply:?}, which does not match the operation"
    )))
}
