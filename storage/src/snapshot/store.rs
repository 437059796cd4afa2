//! [`SnapshotStore`]: one directory of snapshot files, the newest valid of which is
//! current and the one before it the retained fallback.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::format::Header;
use super::reader::SnapshotFileReader;
use super::validate::check_structure;
use super::writer::SnapshotFileWriter;
use crate::config::{Durability, StorageConfig};
use crate::error::StorageError;
use crate::fault::{self, FaultPlan};
use crate::persister::Result;
use crate::poison::Poison;
use crate::types::{SkippedSnapshot, SnapshotInfo, SnapshotMeta};

/// A published, validated snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFileInfo {
    /// Where the file is.
    pub path: PathBuf,
    /// Index and term.
    pub meta: SnapshotMeta,
    /// Payload bytes as written by the caller.
    pub uncompressed_bytes: u64,
    /// Bytes of the file: header, frame headers and compressed frames.
    pub stored_bytes: u64,
    /// Uncompressed bytes per frame.
    pub frame_bytes: u32,
    /// Number of frames.
    pub frame_count: u64,
    /// The zstd level the frames were compressed at.
    pub zstd_level: i32,
}

impl SnapshotFileInfo {
    pub(crate) fn from_header(h: &Header, path: PathBuf) -> Self {
        Self {
            path,
            meta: h.meta,
            uncompressed_bytes: h.payload_len,
            stored_bytes: super::format::HEADER_LEN as u64 + h.stored_len,
            frame_bytes: h.frame_bytes,
            frame_count: h.frame_count,
            zstd_level: h.zstd_level,
        }
    }

    /// The figures [`SnapshotWriter::commit`](crate::SnapshotWriter::commit) reports.
    pub fn snapshot_info(&self) -> SnapshotInfo {
        SnapshotInfo {
            meta: self.meta,
            uncompressed_bytes: self.uncompressed_bytes,
            stored_bytes: self.stored_bytes,
        }
    }
}

/// The file name of the snapshot `meta`: `snap-{index:020}-{term:020}.rks`.
pub fn file_name(meta: SnapshotMeta) -> String {
    format!("snap-{:020}-{:020}.rks", meta.index, meta.term)
}

/// Parses a name made by [`file_name`].
pub fn parse_file_name(name: &str) -> Option<SnapshotMeta> {
    let rest = name.strip_prefix("snap-")?.strip_suffix(".rks")?;
    let (index, term) = rest.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(index) || !digits(term) {
        return None;
    }
    Some(SnapshotMeta {
        index: index.parse().ok()?,
        term: term.parse().ok()?,
    })
}

/// Temp files get a name unique in this process: pid and a counter.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Manages one directory of snapshot files.
///
/// Files are `snap-{index:020}-{term:020}.rks` (see `FORMAT.md`). The newest valid file
/// is [`current`](Self::current); the one before it, kept as a fallback, is
/// [`previous`](Self::previous); committing a new snapshot deletes older ones. Safe to
/// share between threads: every method takes `&self`.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    shared: Arc<Shared>,
}

/// State shared between the store and its writers.
#[derive(Debug)]
pub(crate) struct Shared {
    dir: PathBuf,
    pub(crate) zstd_level: i32,
    pub(crate) frame_bytes: u32,
    pub(crate) durability: Durability,
    pub(crate) faults: Option<Arc<FaultPlan>>,
    pub(crate) poison: Poison,
    threads: AtomicUsize,
    state: Mutex<StoreState>,
}

#[derive(Debug, Default)]
struct StoreState {
    /// Valid files, newest first: at most two after a commit.
    valid: Vec<SnapshotFileInfo>,
    /// Files with a snapshot name that failed validation.
    invalid: Vec<(SnapshotMeta, PathBuf)>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

impl SnapshotStore {
    /// Scans `dir` (creating it if missing), validates every snapshot file (header,
    /// lengths, checksums and zstd frame headers, without decompressing), removes
    /// leftover temp files, and returns the store plus the list of invalid files it
    /// skipped.
    pub fn open(
        dir: &Path,
        config: &StorageConfig,
        faults: Option<Arc<FaultPlan>>,
    ) -> Result<(Self, Vec<SkippedSnapshot>)> {
        // The store is given its directory; check the rest of the config.
        let mut checked = config.clone();
        checked.dir = Some(dir.to_path_buf());
        checked.validate()?;
        if !dir.is_dir() {
            fs::create_dir_all(dir)
                .map_err(|e| StorageError::io("create snapshot directory", dir, e))?;
            if config.durability == Durability::Immediate
                && let Some(parent) = dir.parent()
            {
                sync_dir(parent)?;
            }
        }
        let mut state = StoreState::default();
        let mut skipped = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list snapshots", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list snapshots", dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(|e| {
                    StorageError::io("remove leftover snapshot temp file", &path, e)
                })?;
                continue;
            }
            let Some(meta) = parse_file_name(&name) else {
                continue;
            };
            match check_structure(&path) {
                Ok(h) if h.meta == meta => {
                    state.valid.push(SnapshotFileInfo::from_header(&h, path));
                }
                Ok(h) => {
                    let reason = format!(
                        "header holds snapshot (index {}, term {}), the name says (index {}, term {})",
                        h.meta.index, h.meta.term, meta.index, meta.term
                    );
                    skipped.push(SkippedSnapshot {
                        location: path.display().to_string(),
                        reason,
                    });
                    state.invalid.push((meta, path));
                }
                Err(e) => {
                    skipped.push(SkippedSnapshot {
                        location: path.display().to_string(),
                        reason: e.to_string(),
                    });
                    state.invalid.push((meta, path));
                }
            }
        }
        state.valid.sort_by(|a, b| {
            b.meta
                .index
                .cmp(&a.meta.index)
                .then(b.meta.term.cmp(&a.meta.term))
        });
        skipped.sort_by(|a, b| a.location.cmp(&b.location));
        // A crash between publishing a snapshot and deleting old ones leaves a third
        // valid file: finish the job.
        for extra in state.valid.split_off(state.valid.len().min(2)) {
            fs::remove_file(&extra.path)
                .map_err(|e| StorageError::io("remove old snapshot", &extra.path, e))?;
        }
        let store = Self {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                zstd_level: config.zstd_level,
                frame_bytes: config.snapshot_frame_bytes,
                durability: config.durability,
                faults,
                poison: Poison::default(),
                threads: AtomicUsize::new(default_threads()),
                state: Mutex::new(state),
            }),
        };
        Ok((store, skipped))
    }

    /// Sets how many threads writers and readers made from now on use (1 or 2; the
    /// default is 2 on a machine with two cores or more).
    pub fn set_threads(&self, threads: usize) {
        self.shared
            .threads
            .store(threads.clamp(1, 2), Ordering::Relaxed);
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The newest valid snapshot.
    pub fn current(&self) -> Option<SnapshotFileInfo> {
        self.shared.state.lock().valid.first().cloned()
    }

    /// The retained fallback: the valid snapshot before the current one.
    pub fn previous(&self) -> Option<SnapshotFileInfo> {
        self.shared.state.lock().valid.get(1).cloned()
    }

    /// Starts writing snapshot `meta` into a new temp file.
    pub fn begin(&self, meta: SnapshotMeta) -> Result<SnapshotFileWriter> {
        self.shared.poison.check("begin snapshot")?;
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.{}-{seq}.tmp", file_name(meta), std::process::id());
        let tmp = self.shared.dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| StorageError::io("create snapshot temp file", &tmp, e))?;
        let threads = self.shared.threads.load(Ordering::Relaxed);
        SnapshotFileWriter::new(Arc::clone(&self.shared), meta, tmp, file, threads)
    }

    /// Opens the current snapshot for reading, or `None` without one. The reader keeps
    /// working if a newer snapshot is committed (and this file deleted) meanwhile.
    pub fn open_current(&self) -> Result<Option<SnapshotFileReader>> {
        let state = self.shared.state.lock();
        let Some(cur) = state.valid.first() else {
            return Ok(None);
        };
        // Opened under the lock: a concurrent commit cannot delete the file first.
        let file =
            File::open(&cur.path).map_err(|e| StorageError::io("open snapshot", &cur.path, e))?;
        let threads = self.shared.threads.load(Ordering::Relaxed);
        SnapshotFileReader::from_file(&file, &cur.path, threads).map(Some)
    }
}

impl Shared {
    /// Fails with [`StorageError::StaleSnapshot`] unless `meta` is newer than current.
    pub(crate) fn check_not_stale(&self, meta: SnapshotMeta) -> Result<()> {
        Self::check_stale_in(&self.state.lock(), meta)
    }

    fn check_stale_in(state: &StoreState, meta: SnapshotMeta) -> Result<()> {
        match state.valid.first() {
            Some(cur) if meta.index <= cur.meta.index => Err(StorageError::StaleSnapshot {
                index: meta.index,
                current: cur.meta.index,
            }),
            _ => Ok(()),
        }
    }

    /// Renames the complete, synced temp file into place, fsyncs the directory, makes
    /// the snapshot current and deletes all but the newest two. A failure from the rename
    /// on poisons the store.
    pub(crate) fn publish(
        &self,
        tmp: &Path,
        mut info: SnapshotFileInfo,
    ) -> Result<SnapshotFileInfo> {
        let mut state = self.state.lock();
        self.poison.check("publish snapshot")?;
        Self::check_stale_in(&state, info.meta)?;
        let target = self.dir.join(file_name(info.meta));
        let r = self.rename_durably(tmp, &target);
        self.poison.latch(r)?;
        info.path = target;
        state.invalid.retain(|(_, p)| *p != info.path);
        state.valid.insert(0, info.clone());
        let r = self.apply_retention(&mut state);
        self.poison.latch(r)?;
        Ok(info)
    }

    fn rename_durably(&self, tmp: &Path, target: &Path) -> Result<()> {
        fault::check(&self.faults, "snapshot.before_rename")?;
        fs::rename(tmp, target)
            .map_err(|e| StorageError::io("rename snapshot into place", target, e))?;
        fault::check(&self.faults, "snapshot.after_rename")?;
        fault::check(&self.faults, "snapshot.before_dir_fsync")?;
        if self.durability == Durability::Immediate {
            sync_dir(&self.dir)?;
        }
        fault::check(&self.faults, "snapshot.after_dir_fsync")
    }

    /// Keeps the two newest valid files; deletes older valid files and invalid files
    /// not newer than the current one. Needs no directory fsync: a deletion lost in a
    /// crash leaves an extra old file, which the next open deletes.
    fn apply_retention(&self, state: &mut StoreState) -> Result<()> {
        let current = state.valid.first().map_or(0, |c| c.meta.index);
        for old in state.valid.split_off(state.valid.len().min(2)) {
            remove_if_present(&old.path)?;
        }
        let (drop, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut state.invalid)
            .into_iter()
            .partition(|(meta, _)| meta.index <= current);
        state.invalid = keep;
        for (_, path) in drop {
            remove_if_present(&path)?;
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove old snapshot", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_lookalikes() {
        let m = SnapshotMeta { index: 12, term: 3 };
        let n = file_name(m);
        assert_eq!(n, "snap-00000000000000000012-00000000000000000003.rks");
        assert_eq!(parse_file_name(&n), Some(m));
        for bad in [
            "snap-12-3.rks",
            "snap-00000000000000000012-00000000000000000003.rks.tmp",
            "snap-0000000000000000001x-00000000000000000003.rks",
            "log-00000000000000000001.seg",
            "snap-99999999999999999999-00000000000000000003.rks",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
