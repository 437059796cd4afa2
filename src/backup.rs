//! Hot backup and restore: what `raftkv backup`, `raftkv restore` and
//! `raftkv inspect FILE` do.
//!
//! * [`fetch`] asks a running cluster for a backup (`RAFTKV.BACKUP START` on the
//!   leader, found through any member), streams it in chunks into a temporary file
//!   beside the output, checks its length and crc32, makes it durable and renames it
//!   into place, then [`verify`]s it.
//! * [`verify`] checks a backup file completely: the snapshot file's structure and every
//!   checksum (`storage/FORMAT.md`, "Backup file"), then decodes the KV payload.
//! * [`restore`] seeds an empty data directory from a backup: the backup becomes the
//!   member's snapshot, the hard state starts at its term and index, and the `MEMBER`
//!   file names the member and the new cluster.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftkv_kvservice::resp::Value;
use raftkv_kvservice::sessions::SessionTable;
use raftkv_kvservice::state_machine::KvStateMachine;
use raftkv_storage::snapshot::{SnapshotFileInfo, SnapshotFileReader, validate_file};
use raftkv_storage::{HardState, NodeId, SnapshotMeta, StorageConfig, StorageError, WriteBatch};

use crate::client::{ClientError, RespClient};
use crate::server::member_file;

/// Why a backup, a restore or a check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A local file could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The backup file is corrupt or unreadable (names the file and the offset).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The backup file's snapshot is sound but its KV payload is not.
    #[error("{}: {detail}", path.display())]
    Payload {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A member could not be reached or broke the protocol.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A member refused (its error reply).
    #[error("{addr}: {reply}")]
    Refused {
        /// The member.
        addr: String,
        /// Its error.
        reply: String,
    },
    /// What arrived is not what the member announced.
    #[error("{addr}: {detail}")]
    Transfer {
        /// The member.
        addr: String,
        /// What differs.
        detail: String,
    },
    /// No member could start a backup before the deadline.
    #[error("no member started a backup within {waited:?}; last: {last}")]
    Unavailable {
        /// How long it tried.
        waited: Duration,
        /// The last refusal or error.
        last: String,
    },
    /// The target directory already holds data.
    #[error(
        "{}: not empty; restore seeds a new member's data directory (move or delete \
         what is there first)",
        dir.display()
    )]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// The `MEMBER` file could not be written.
    #[error("{0}")]
    Member(String),
}

/// What a verified backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The snapshot file's figures (path, index and term, sizes, frames).
    pub file: SnapshotFileInfo,
    /// Keys.
    pub keys: u64,
    /// Client sessions (the exactly-once table).
    pub sessions: u64,
}

impl BackupSummary {
    /// The log index and term of the state.
    pub fn meta(&self) -> SnapshotMeta {
        self.file.meta
    }
}

/// Checks `path` completely: structure, every checksum, then the KV payload, which must
/// decode to a state at the snapshot's index.
pub fn verify(path: &Path) -> Result<BackupSummary, BackupError> {
    let file = validate_file(path)?;
    let reader = SnapshotFileReader::open(path)?;
    let payload = |detail: String| BackupError::Payload {
        path: path.to_path_buf(),
        detail,
    };
    let sm = KvStateMachine::read_snapshot(reader, SessionTable::default())
        .map_err(|e| payload(format!("the KV payload does not decode: {e}")))?;
    if sm.applied_index() != file.meta.index {
        return Err(payload(format!(
            "the payload is at index {} but the file says {}",
            sm.applied_index(),
            file.meta.index
        )));
    }
    Ok(BackupSummary {
        file,
        keys: sm.store().len() as u64,
        sessions: sm.sessions().len() as u64,
    })
}

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Members' client addresses; any will do (a follower names the leader).
    pub addrs: Vec<String>,
    /// `requirepass`, if the members have one.
    pub password: Option<String>,
    /// Give up starting a backup after this long (each reply may take as long).
    pub timeout: Duration,
}

/// The members' announcement of a backup.
struct Started {
    client: RespClient,
    id: String,
    bytes: u64,
    crc32: u32,
}

/// Streams a consistent backup of the cluster into `out` (replacing it atomically),
/// then verifies it.
pub fn fetch(options: &FetchOptions, out: &Path) -> Result<BackupSummary, BackupError> {
    let Started {
        mut client,
        id,
        bytes,
        crc32,
    } = start(options)?;
    let addr = client.addr().to_string();
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { op, path, source }
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".raftkv-backup-")
        .tempfile_in(&parent)
        .map_err(io("create a temporary file in", &parent))?;
    let mut crc = crc32fast::Hasher::new();
    let mut offset = 0u64;
    while offset < bytes {
        let chunk = match client.command(&["RAFTKV.BACKUP", "CHUNK", &id, &offset.to_string()])? {
            Value::BulkString(Some(b)) if !b.is_empty() => b,
            Value::Error(e) => {
                return Err(BackupError::Refused {
                    addr,
                    reply: String::from_utf8_lossy(&e).into_owned(),
                });
            }
            other => {
                return Err(BackupError::Transfer {
                    addr,
                    detail: format!("at offset {offset} of {bytes}: unexpected reply {other:?}"),
                });
            }
        };
        crc.update(&chunk);
        tmp.write_all(&chunk).map_err(io("write", tmp.path()))?;
        offset += chunk.len() as u64;
    }
    if offset != bytes || crc.clone().finalize() != crc32 {
        return Err(BackupError::Transfer {
            addr,
            detail: format!(
                "received {offset} bytes with crc32 {:#010x}; the member announced {bytes} \
                 with {crc32:#010x}",
                crc.finalize()
            ),
        });
    }
    tmp.as_file().sync_all().map_err(io("fsync", tmp.path()))?;
    tmp.persist(out).map_err(|e| BackupError::Io {
        op: "rename the backup to",
        path: out.to_path_buf(),
        source: e.error,
    })?;
    File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", &parent))?;
    if let Err(e) = client.command(&["RAFTKV.BACKUP", "DONE", &id]) {
        tracing::warn!(%addr, error = %e, "could not release the backup (it expires by itself)");
    }
    verify(out)
}

/// Finds a member that starts a backup: each address in turn, the leader a follower
/// names first, again with a growing pause until the deadline.
fn start(options: &FetchOptions) -> Result<Started, BackupError> {
    let begun = Instant::now();
    let mut last = String::from("no address given");
    let mut pause = Duration::from_millis(50);
    while begun.elapsed() < options.timeout && !options.addrs.is_empty() {
        let mut queue: Vec<String> = options.addrs.iter().rev().cloned().collect();
        let mut tried = Vec::new();
        while let Some(addr) = queue.pop() {
            if tried.contains(&addr) {
                continue;
            }
            tried.push(addr.clone());
            match try_start(&addr, options) {
                Ok(started) => return Ok(started),
                Err(Attempt::Redirect(to, why)) => {
                    last = why;
                    if let Some(to) = to {
                        queue.push(to);
                    }
                }
                Err(Attempt::Failed(why)) => last = why,
                Err(Attempt::Fatal(e)) => return Err(e),
            }
        }
        std::thread::sleep(pause.min(options.timeout.saturating_sub(begun.elapsed())));
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    Err(BackupError::Unavailable {
        waited: begun.elapsed(),
        last,
    })
}

enum Attempt {
    /// Not the leader: ask `addr` if known.
    Redirect(Option<String>, String),
    /// Unreachable, loading, busy: try another member or later.
    Failed(String),
    /// Wrong password and the like: stop.
    Fatal(BackupError),
}

fn try_start(addr: &str, options: &FetchOptions) -> Result<Started, Attempt> {
    let per_call = options.timeout.max(Duration::from_secs(30));
    let mut client =
        RespClient::connect(addr, per_call).map_err(|e| Attempt::Failed(e.to_string()))?;
    if let Some(p) = &options.password {
        match client.command(&["AUTH", p]) {
            Ok(Value::SimpleString(_)) => {}
            Ok(other) => {
                return Err(Attempt::Fatal(BackupError::Refused {
                    addr: addr.into(),
                    reply: format!("AUTH: {other:?}"),
                }));
            }
            Err(e) => return Err(Attempt::Failed(e.to_string())),
        }
    }
    let reply = client
        .command(&["RAFTKV.BACKUP", "START"])
        .map_err(|e| Attempt::Failed(e.to_string()))?;
    let items = match reply {
        Value::Array(Some(items)) if items.len() == 6 => items,
        Value::Error(e) => {
            let msg = String::from_utf8_lossy(&e).into_owned();
            let why = format!("{addr}: {msg}");
            if msg.starts_with("NOTLEADER") {
                let to = msg
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .map(str::to_string);
                return Err(Attempt::Redirect(to, why));
            }
            if msg.starts_with("NOAUTH") || msg.starts_with("WRONGPASS") {
                return Err(Attempt::Fatal(BackupError::Refused {
                    addr: addr.into(),
                    reply: msg,
                }));
            }
            return Err(Attempt::Failed(why));
        }
        other => {
            return Err(Attempt::Failed(format!(
                "{addr}: unexpected reply {other:?}"
            )));
        }
    };
    let int = |v: &Value| match v {
        Value::Integer(n) => u64::try_from(*n).ok(),
        _ => None,
    };
    match (&items[0], int(&items[1]), int(&items[5])) {
        (Value::BulkString(Some(id)), Some(bytes), Some(crc)) => Ok(Started {
            client,
            id: String::from_utf8_lossy(id).into_owned(),
            bytes,
            crc32: u32::try_from(crc).unwrap_or(0),
        }),
        _ => Err(Attempt::Failed(format!(
            "{addr}: malformed START reply {items:?}"
        ))),
    }
}

/// What [`restore`] made.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    /// The backup it came from.
    pub backup: BackupSummary,
    /// The member id recorded.
    pub id: NodeId,
    /// The cluster id recorded (0: the member adopts its configured one at first start).
    pub cluster_id: u64,
}

/// Seeds the empty (or missing) directory `storage.dir` as member `id` of cluster
/// `cluster_id` (0: the one the member is configured for at its first start) from the
/// backup at `input`. Nothing is left behind if it fails.
pub fn restore(
    input: &Path,
    storage: &StorageConfig,
    id: NodeId,
    cluster_id: u64,
) -> Result<RestoreSummary, BackupError> {
    let backup = verify(input)?;
    let dir = storage
        .dir
        .clone()
        .ok_or_else(|| BackupError::Member("restore needs --data-dir".into()))?;
    let existed = dir.exists();
    if existed {
        let mut entries = fs::read_dir(&dir).map_err(|source| BackupError::Io {
            op: "read directory",
            path: dir.clone(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty { dir });
        }
    }
    let seeded = seed(input, storage, &dir, id, cluster_id, backup.meta());
    if seeded.is_err() {
        // Leave the directory as it was, so that a retry starts clean.
        let _ = if existed {
            fs::read_dir(&dir).map(|entries| {
                for e in entries.flatten() {
                    let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
                }
            })
        } else {
            fs::remove_dir_all(&dir)
        };
    }
    seeded?;
    Ok(RestoreSummary {
        backup,
        id,
        cluster_id,
    })
}

fn seed(
    input: &Path,
    storage: &StorageConfig,
    dir: &Path,
    id: NodeId,
    cluster_id: u64,
    meta: SnapshotMeta,
) -> Result<(), BackupError> {
    fs::create_dir_all(dir).map_err(|source| BackupError::Io {
        op: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let persister = storage.open()?;
    let mut reader = SnapshotFileReader::open(input)?;
    let mut writer = persister.begin_snapshot(meta)?;
    io::copy(&mut reader, &mut writer).map_err(|source| BackupError::Io {
        op: "copy the backup into",
        path: dir.to_path_buf(),
        source,
    })?;
    writer.commit()?;
    persister.write(&WriteBatch::new().hard_state(HardState {
        term: meta.term,
        voted_for: None,
        commit: meta.index,
    }))?;
    drop(persister);
    member_file::write(dir, id, cluster_id).map_err(BackupError::Member)
}
