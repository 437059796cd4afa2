//! [`Backups`]: hot backups a running member serves to `raftkv backup`.
//!
//! A backup is the state at one linearizable moment (taken behind a read barrier, so it
//! holds every write acknowledged before it started), written as a snapshot file in the
//! storage layer's format (zstd frames, a crc32 per frame and one over the file; see
//! `storage/FORMAT.md`, "Backup file"). The file is written to a temporary directory
//! and served in chunks of at most [`BACKUP_CHUNK`] bytes by offset, so that neither
//! side holds it in memory and a client can retry a chunk. At most [`MAX_BACKUPS`] are
//! held at once; one that no client touched for [`BACKUP_IDLE_TTL`] is dropped.
//!
//! The protocol (`RAFTKV.BACKUP`, see the server) is `START` → `[id, bytes, index,
//! term, keys, crc32]`, then `CHUNK id offset` → up to 1 MiB, then `DONE id`.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raftkv_storage::snapshot::SnapshotStore;
use raftkv_storage::{Durability, SnapshotMeta, StorageConfig, StorageError};

use crate::state_machine::KvStateMachine;

/// Largest chunk served at once.
pub const BACKUP_CHUNK: usize = 1 << 20;
/// Most backups held at once.
pub const MAX_BACKUPS: usize = 4;
/// A backup no one asked for a chunk of for this long is dropped.
pub const BACKUP_IDLE_TTL: Duration = Duration::from_secs(600);

/// The name prefix of the temporary directories backups are written to.
const TEMP_PREFIX: &str = "backup-";

/// What `START` reports about a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupInfo {
    /// The handle for `CHUNK` and `DONE`.
    pub id: u64,
    /// Bytes of the backup file.
    pub bytes: u64,
    /// The log index and term the state is at.
    pub meta: SnapshotMeta,
    /// Keys it holds.
    pub keys: u64,
    /// crc32 (IEEE) of the whole file, for the client to check what it received.
    pub crc32: u32,
}

/// Why a backup request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// [`MAX_BACKUPS`] are held already.
    #[error("BUSY {max} backups are in progress; finish one (RAFTKV.BACKUP DONE) or wait")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// No backup has this id (finished, expired or never started).
    #[error(
        "ERR no backup {id:#x}: it was finished, expired after {} s idle, or never started",
        BACKUP_IDLE_TTL.as_secs()
    )]
    Unknown {
        /// The id asked for.
        id: u64,
    },
    /// The offset is past the end.
    #[error("ERR backup {id:#x}: offset {offset} is past its end ({bytes} bytes)")]
    Offset {
        /// The backup.
        id: u64,
        /// The offset asked for.
        offset: u64,
        /// Its length.
        bytes: u64,
    },
    /// Writing or reading the backup file failed.
    #[error("ERR backup: {0}")]
    Storage(#[from] StorageError),
}

struct Held {
    info: BackupInfo,
    file: File,
    path: PathBuf,
    /// Removed (with the file) when the backup is dropped.
    _dir: tempfile::TempDir,
    last_used: Instant,
}

struct Table {
    held: HashMap<u64, Held>,
    /// Backups being written (they count against the limit).
    creating: usize,
}

/// The backups one server holds. See the module documentation.
pub struct Backups {
    /// Where the temporary backup directories go (the data directory, or the system's
    /// temporary directory).
    parent: Option<PathBuf>,
    table: Mutex<Table>,
    ttl: Duration,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups")
            .field("parent", &self.parent)
            .field("held", &self.table.lock().held.len())
            .finish_non_exhaustive()
    }
}

impl Backups {
    /// Backups written under `parent` (None: the system's temporary directory). What
    /// an earlier process left there (it stopped while a backup was held) is removed.
    pub fn new(parent: Option<PathBuf>) -> Backups {
        if let Some(dir) = &parent
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_string_lossy().starts_with(TEMP_PREFIX) && e.path().is_dir() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Backups::with_ttl(parent, BACKUP_IDLE_TTL)
    }

    /// [`new`](Self::new) with another idle limit (tests).
    pub fn with_ttl(parent: Option<PathBuf>, ttl: Duration) -> Backups {
        Backups {
            parent,
            table: Mutex::new(Table {
                held: HashMap::new(),
                creating: 0,
            }),
            ttl,
        }
    }

    /// Writes `state` (taken behind a read barrier by the caller) as a new backup.
    /// Blocking: it compresses the whole state.
    pub fn create(&self, state: &KvStateMachine) -> Result<BackupInfo, BackupError> {
        {
            let mut t = self.table.lock();
            self.expire(&mut t);
            if t.held.len() + t.creating >= MAX_BACKUPS {
                return Err(BackupError::TooMany { max: MAX_BACKUPS });
            }
            t.creating += 1;
        }
        let written = self.write(state);
        let mut t = self.table.lock();
        t.creating -= 1;
        let mut held = written?;
        let mut id = rand::random::<u64>() | 1;
        while t.held.contains_key(&id) {
            id = rand::random::<u64>() | 1;
        }
        held.info.id = id;
        let info = held.info;
        t.held.insert(id, held);
        tracing::info!(
            id = format!("{id:#x}"),
            index = info.meta.index,
            keys = info.keys,
            bytes = info.bytes,
            "backup ready"
        );
        Ok(info)
    }

    fn write(&self, state: &KvStateMachine) -> Result<Held, BackupError> {
        let dir = match &self.parent {
            Some(p) => tempfile::Builder::new().prefix(TEMP_PREFIX).tempdir_in(p),
            None => tempfile::Builder::new().prefix("raftkv-backup-").tempdir(),
        }
        .map_err(|e| {
            StorageError::io(
                "create a backup directory",
                self.parent.clone().unwrap_or_else(std::env::temp_dir),
                e,
            )
        })?;
        let config = StorageConfig {
            dir: Some(dir.path().to_path_buf()),
            // A temporary file: a crash loses the backup, not data.
            durability: Durability::None,
            ..StorageConfig::default()
        };
        let (store, _) = SnapshotStore::open(dir.path(), &config, None)?;
        let meta = SnapshotMeta {
            index: state.applied_index(),
            term: state.applied_term(),
        };
        let mut writer = store.begin(meta)?;
        state.write_snapshot(&mut writer)?;
        let file_info = writer.finish()?;
        let path = file_info.path;
        let open = |op| {
            let path = path.clone();
            move |e| StorageError::io(op, path, e)
        };
        let mut file = File::open(&path).map_err(open("open the backup file"))?;
        let mut crc = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(open("read the backup file"))?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
        }
        Ok(Held {
            info: BackupInfo {
                id: 0,
                bytes: file_info.stored_bytes,
                meta,
                keys: state.store().len() as u64,
                crc32: crc.finalize(),
            },
            file,
            path,
            _dir: dir,
            last_used: Instant::now(),
        })
    }

    /// Up to [`BACKUP_CHUNK`] bytes of backup `id` from `offset` (empty at the end).
    pub fn chunk(&self, id: u64, offset: u64) -> Result<Vec<u8>, BackupError> {
        let mut t = self.table.lock();
        self.expire(&mut t);
        let held = t.held.get_mut(&id).ok_or(BackupError::Unknown { id })?;
        held.last_used = Instant::now();
        let bytes = held.info.bytes;
        if offset > bytes {
            return Err(BackupError::Offset { id, offset, bytes });
        }
        let len = (bytes - offset).min(BACKUP_CHUNK as u64) as usize;
        let mut out = vec![0u8; len];
        held.file
            .read_exact_at(&mut out, offset)
            .map_err(|e| StorageError::io("read the backup file", &held.path, e))?;
        Ok(out)
    }

    /// Drops backup `id` and its file.
    pub fn done(&self, id: u64) -> Result<(), BackupError> {
        let mut t = self.table.lock();
        self.expire(&mut t);
        t.held
            .remove(&id)
            .map(|_| ())
            .ok_or(BackupError::Unknown { id })
    }

    /// Backups held now.
    pub fn held(&self) -> usize {
        let mut t = self.table.lock();
        self.expire(&mut t);
        t.held.len()
    }

    fn expire(&self, t: &mut Table) {
        let ttl = self.ttl;
        t.held.retain(|id, h| {
            let keep = h.last_used.elapsed() < ttl;
            if !keep {
                tracing::info!(id = format!("{id:#x}"), "backup expired unfinished");
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Op};
    use bytes::Bytes;
    use raftkv_storage::snapshot::{SnapshotFileReader, validate_file};

    fn state(keys: u64) -> KvStateMachine {
        let mut sm = KvStateMachine::default();
        for i in 0..keys {
            let cmd = Command {
                client_id: 7,
                seq: i + 1,
                ts_ms: 1,
                op: Op::Put {
                    key: Bytes::from(format!("k{i:05}")),
                    value: Bytes::from(vec![b'v'; 300]),
                },
            };
            sm.apply(i + 1, 2, &cmd);
        }
        sm
    }

    fn fetch(b: &Backups, info: &BackupInfo) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = b.chunk(info.id, out.len() as u64).expect("chunk");
            assert!(chunk.len() <= BACKUP_CHUNK);
            if chunk.is_empty() {
                return out;
            }
            out.extend_from_slice(&chunk);
        }
    }

    #[test]
    fn a_backup_is_a_valid_snapshot_file_of_the_state() {
        let sm = state(5000);
        let b = Backups::new(None);
        let info = b.create(&sm).expect("create");
        assert_eq!(
            (info.meta.index, info.meta.term, info.keys),
            (5000, 2, 5000)
        );
        let bytes = fetch(&b, &info);
        assert_eq!(bytes.len() as u64, info.bytes);
        assert_eq!(crc32fast::hash(&bytes), info.crc32);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.rks");
        std::fs::write(&path, &bytes).expect("write");
        let file = validate_file(&path).expect("a valid snapshot file");
        assert_eq!(file.meta, info.meta);
        let reader = SnapshotFileReader::open(&path).expect("open");
        let restored =
            KvStateMachine::read_snapshot(reader, crate::sessions::SessionTable::default())
                .expect("decode");
        assert_eq!(restored, sm);
        b.done(info.id).expect("done");
        assert!(matches!(
            b.chunk(info.id, 0),
            Err(BackupError::Unknown { .. })
        ));
    }

    #[test]
    fn limits_offsets_and_expiry() {
        let sm = state(10);
        let b = Backups::new(None);
        let held: Vec<_> = (0..MAX_BACKUPS)
            .map(|_| b.create(&sm).expect("create"))
            .collect();
        let e = b.create(&sm).expect_err("one too many");
        assert!(e.to_string().starts_with("BUSY"), "{e}");
        let past = held[0].bytes + 1;
        let e = b.chunk(held[0].id, past).expect_err("past the end");
        assert!(e.to_string().contains("past its end"), "{e}");
        assert!(b.chunk(held[0].id, held[0].bytes).expect("end").is_empty());
        assert!(matches!(
            b.done(12345),
            Err(BackupError::Unknown { id: 12345 })
        ));
        b.done(held[1].id).expect("done");
        b.create(&sm).expect("room again");

        let quick = Backups::with_ttl(None, Duration::ZERO);
        let info = quick.create(&sm).expect("create");
        assert!(matches!(
            quick.chunk(info.id, 0),
            Err(BackupError::Unknown { .. })
        ));
        assert_eq!(quick.held(), 0);
    }
}
