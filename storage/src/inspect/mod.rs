//! `raftkv inspect`: an offline, read-only report on one member's data directory.
//!
//! [`inspect_dir`] finds the backend, reads the hard state, the log and every snapshot
//! file the way recovery would, and reports what it found, including every problem,
//! instead of stopping at the first one.
//!
//! # Read-only
//!
//! Nothing in the directory is created, written, truncated, renamed or removed. The
//! file backend's recovery runs in its read-only mode (`recovery::scan` with
//! `Mode::ReadOnly`): sealed segments are memory-mapped read-only, the last one is read
//! with ordinary reads, and what opening the persister would repair is only reported.
//! Snapshot files are checked with [`validate_file`] (memory maps, read-only). The
//! RocksDB database is opened with RocksDB's read-only mode (`DB::open_cf_for_read_only`),
//! which replays the WAL in memory and takes no lock.
//!
//! # Backend detection
//!
//! * An `IDENTITY` file: the file backend (the file is checked; a damaged or foreign one
//!   is a problem, and the directory is still read as a file-backend directory).
//! * No `IDENTITY` but a `db/` directory: the RocksDB backend (its identity is a record
//!   in the database, checked too). Without the `rocksdb` cargo feature this is a
//!   [`StorageError::Config`] saying so.
//! * No `IDENTITY`, no `db/`, but log segments: a file-backend directory whose `IDENTITY`
//!   is missing, reported as a problem and read as the file backend.
//! * Otherwise: [`StorageError::Config`], "not a raftkv data directory" (the memory
//!   backend keeps nothing on disk).
//!
//! # Problems and notes
//!
//! [`DirReport::problems`] lists corruption (any bad record, segment, snapshot file, or
//! identity; a log that cannot be resolved against the newest valid snapshot) and read
//! errors, each naming the file and offset (for RocksDB: the database directory and the
//! log index). A healthy directory has none.
//!
//! [`DirReport::notes`] lists what a crash legitimately leaves and the next open
//! repairs without losing anything acknowledged. **A torn tail is a note, not a
//! problem**: a bad last record of the last segment with no valid record after it is
//! the one append that was in flight at the crash, was never acknowledged, and is cut
//! by the next open (`FORMAT.md`, "Recovery", step 6); `raftkv inspect` exits 0 and
//! prints it as a warning line. The same holds for a last segment torn while being
//! created, segments left before a gap by an interrupted compaction, leftover snapshot
//! temp files, a third valid snapshot file, and a snapshot the log does not note yet.
//! A bad record followed by a valid one is corruption, as in recovery.
//!
//! # Node id
//!
//! No backend records the node id in the data directory (a member is told its id by its
//! config), so [`DirReport::node_id`] is always `None`. The directory name often carries
//! it (`node-3` from `Db` and the test clusters, or `3` in the server's example config);
//! [`DirReport::node_id_from_dir_name`] reports that guess, labelled as such.

mod file;
#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::Backend;
use crate::error::StorageError;
use crate::persister::Result;
use crate::snapshot::{SnapshotFileInfo, check_structure, parse_file_name, validate_file};
use crate::types::{HardState, NodeId, SkippedSnapshot, SnapshotMeta};

/// The subdirectory holding snapshot files (the same for both backends).
const SNAPSHOT_DIR: &str = "snapshots";

/// Everything [`inspect_dir`] found in a data directory.
#[derive(Debug)]
#[non_exhaustive]
pub struct DirReport {
    /// The directory inspected.
    pub dir: PathBuf,
    /// The backend that wrote it.
    pub backend: Backend,
    /// The node id, if the directory records it. No backend does (see the module docs),
    /// so this is `None`.
    pub node_id: Option<NodeId>,
    /// A guess from the directory's name (`node-3` or `3`), not from its contents.
    pub node_id_from_dir_name: Option<NodeId>,
    /// The hard state recovery would return (`commit` raised to the snapshot index), or
    /// the one the records give if the log cannot be resolved; `None` if unreadable.
    pub hard_state: Option<HardState>,
    /// The log, as far as it was readable.
    pub log: LogReport,
    /// Every snapshot file (`snap-*.rks`), newest first.
    pub snapshots: Vec<SnapshotReport>,
    /// What the next open would repair (torn tail and the like): not data loss.
    pub notes: Vec<String>,
    /// Corruption and read errors. Empty for a healthy directory.
    pub problems: Vec<StorageError>,
}

impl DirReport {
    /// True when no problem was found (notes allowed).
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The snapshot recovery would use, if any.
    pub fn current_snapshot(&self) -> Option<&SnapshotReport> {
        self.snapshots
            .iter()
            .find(|s| s.role == SnapshotRole::Current)
    }
}

/// An inclusive range of log indexes, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRange {
    /// The first index.
    pub first: u64,
    /// The last index (`>= first`).
    pub last: u64,
}

impl IndexRange {
    /// `first ..= first + count - 1`, or `None` when `count` is 0.
    pub fn with_len(first: u64, count: u64) -> Option<Self> {
        (count > 0).then(|| Self {
            first,
            last: first + count - 1,
        })
    }

    /// Number of indexes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Always false (a range is never empty); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The log of a data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogReport {
    /// The entries stored on disk, including those at or below the snapshot that are
    /// kept for the fallback snapshot; `None` if there are none or the log is unreadable.
    pub stored: Option<IndexRange>,
    /// The entries recovery would return (after the snapshot it would use); `None` if
    /// there are none or the log could not be resolved.
    pub recovered: Option<IndexRange>,
    /// Bytes of the recovered entries counted as
    /// [`Persister::raft_state_size`](crate::Persister::raft_state_size) counts them
    /// (hard state excluded); `None` if the log could not be resolved.
    pub recovered_accounted_bytes: Option<u64>,
    /// Bytes on disk: the segment files (file backend) or every file under `db/`
    /// (RocksDB, which holds only the log and hard state).
    pub bytes_on_disk: u64,
    /// Number of segment files (file backend only).
    pub segments: Option<u64>,
    /// True when the log was read and resolved without a problem.
    pub complete: bool,
}

/// What recovery does with a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotRole {
    /// The newest valid file: recovery uses it.
    Current,
    /// The valid file before it, kept as a fallback.
    Fallback,
    /// An older valid file, which the next open deletes.
    Extra,
    /// A file that fails recovery's check: recovery skips it.
    Skipped,
}

/// The full check of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// Every checksum and every frame verified (payload decompressed).
    Ok,
    /// The file is damaged; the message names the file and the offset.
    Corrupt(String),
}

/// One snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotReport {
    /// Where it is.
    pub path: PathBuf,
    /// Index and term, from the file name.
    pub meta: SnapshotMeta,
    /// Size of the file.
    pub file_bytes: u64,
    /// Header figures (payload bytes, stored bytes, frames), when the header is readable
    /// and passes recovery's check.
    pub info: Option<SnapshotFileInfo>,
    /// What recovery does with it.
    pub role: SnapshotRole,
    /// The result of the full check.
    pub status: SnapshotStatus,
}

impl SnapshotReport {
    /// Payload bytes over stored bytes, when known.
    pub fn compression_ratio(&self) -> Option<f64> {
        self.info
            .as_ref()
            .map(|i| i.uncompressed_bytes as f64 / i.stored_bytes.max(1) as f64)
    }
}

/// What the snapshot files give recovery: the file it would use, and the rejected ones.
pub(crate) struct SnapshotScan {
    pub(crate) chosen: Option<SnapshotMeta>,
    pub(crate) skipped: Vec<SkippedSnapshot>,
}

/// Inspects `dir` without modifying it. See the [module docs](self).
///
/// Fails only when there is nothing to report on: `dir` is missing or not a directory,
/// is not a raftkv data directory, or holds a RocksDB store and this build lacks the
/// `rocksdb` feature. Everything found wrong inside a data directory goes into
/// [`DirReport::problems`].
pub fn inspect_dir(dir: &Path) -> Result<DirReport> {
    let meta = fs::metadata(dir).map_err(|e| StorageError::io("inspect data directory", dir, e))?;
    if !meta.is_dir() {
        return Err(StorageError::Config(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut report = DirReport {
        dir: dir.to_path_buf(),
        backend: Backend::File,
        node_id: None,
        node_id_from_dir_name: node_id_from_dir_name(dir),
        hard_state: None,
        log: LogReport::default(),
        snapshots: Vec::new(),
        notes: Vec::new(),
        problems: Vec::new(),
    };
    let identity = dir.join(crate::file::identity::FILE_NAME);
    let has_identity = fs::symlink_metadata(&identity).is_ok();
    let has_db = dir.join("db").is_dir();
    if has_identity {
        if let Err(e) = crate::file::identity::verify(dir) {
            report.problems.push(e);
        }
    } else if has_db {
        report.backend = Backend::Rocksdb;
    } else if has_segments(dir)? {
        report.problems.push(StorageError::corrupt(
            "directory identity",
            &identity,
            0,
            "missing: the directory holds log segments of the file backend but no IDENTITY file",
        ));
    } else {
        return Err(StorageError::Config(format!(
            "{} is not a raftkv data directory: it has no {} file (file backend) and no db/ \
             (rocksdb backend); the memory backend keeps nothing on disk",
            dir.display(),
            crate::file::identity::FILE_NAME
        )));
    }
    #[cfg(not(feature = "rocksdb"))]
    if report.backend == Backend::Rocksdb {
        return Err(StorageError::Config(format!(
            "{} holds a rocksdb store (db/), but this build has no rocksdb support: rebuild \
             with `--features rocksdb` to inspect it",
            dir.display()
        )));
    }
    let snapshots = scan_snapshots(dir, &mut report)?;
    match report.backend {
        Backend::File => file::inspect_log(dir, &snapshots, &mut report),
        #[cfg(feature = "rocksdb")]
        Backend::Rocksdb => rocks::inspect_db(dir, &snapshots, &mut report),
        _ => unreachable!("only file and rocksdb directories get here"),
    }
    Ok(report)
}

fn has_segments(dir: &Path) -> Result<bool> {
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list data directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list data directory", dir, e))?;
        if entry
            .file_name()
            .to_str()
            .and_then(crate::file::segment::parse_file_name)
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `node-3` or `3` → 3.
fn node_id_from_dir_name(dir: &Path) -> Option<NodeId> {
    let name = dir.file_name()?.to_str()?;
    let digits = name.strip_prefix("node-").unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&id| id != 0)
}

/// Checks every snapshot file in `dir/snapshots` twice: recovery's structural check
/// (to know which file recovery would use) and the full check with decompression.
fn scan_snapshots(dir: &Path, report: &mut DirReport) -> Result<SnapshotScan> {
    let snap_dir = dir.join(SNAPSHOT_DIR);
    let mut found = Vec::new();
    match fs::read_dir(&snap_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| StorageError::io("list snapshots", &snap_dir, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.ends_with(".tmp") {
                    report.notes.push(format!(
                        "leftover snapshot temp file {} (a snapshot being written at a crash; \
                         the next open removes it)",
                        entry.path().display()
                    ));
                } else if let Some(meta) = parse_file_name(&name) {
                    found.push((meta, entry.path()));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io("list snapshots", &snap_dir, e)),
    }
    found.sort_by_key(|(meta, _)| std::cmp::Reverse((meta.index, meta.term)));
    let mut skipped = Vec::new();
    let mut valid = 0usize;
    let mut chosen = None;
    for (meta, path) in found {
        let file_bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let structure = check_structure(&path).and_then(|h| {
            if h.meta == meta {
                Ok(h)
            } else {
                Err(StorageError::corrupt(
                    "snapshot header",
                    &path,
                    16,
                    format!(
                        "header holds snapshot (index {}, term {}), the name says (index {}, term {})",
                        h.meta.index, h.meta.term, meta.index, meta.term
                    ),
                ))
            }
        });
        let (role, info, status) = match structure {
            Ok(header) => {
                let role = match valid {
                    0 => SnapshotRole::Current,
                    1 => SnapshotRole::Fallback,
                    _ => SnapshotRole::Extra,
                };
                if valid == 0 {
                    chosen = Some(meta);
                }
                valid += 1;
                if role == SnapshotRole::Extra {
                    report.notes.push(format!(
                        "{} is a third valid snapshot (a crash before old ones were deleted); \
                         the next open deletes it",
                        path.display()
                    ));
                }
                match validate_file(&path) {
                    Ok(info) => (role, Some(info), SnapshotStatus::Ok),
                    Err(e) => {
                        let status = SnapshotStatus::Corrupt(e.to_string());
                        report.problems.push(e);
                        let info = SnapshotFileInfo::from_header(&header, path.clone());
                        (role, Some(info), status)
                    }
                }
            }
            Err(e) => {
                skipped.push(SkippedSnapshot {
                    location: path.display().to_string(),
                    reason: e.to_string(),
                });
                let status = SnapshotStatus::Corrupt(e.to_string());
                report.problems.push(e);
                (SnapshotRole::Skipped, None, status)
            }
        };
        report.snapshots.push(SnapshotReport {
            path,
            meta,
            file_bytes,
            info,
            role,
            status,
        });
    }
    Ok(SnapshotScan { chosen, skipped })
}
