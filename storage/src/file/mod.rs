//! [`FilePersister`], the default backend: segmented, checksummed log files and
//! snapshot files in one directory, recovered through memory maps.
//!
//! ```text
//! <dir>/IDENTITY                      backend name and format versions
//! <dir>/log-{seq:020}.seg             log segments; the highest seq is the active one
//! <dir>/snapshots/snap-{index:020}-{term:020}.rks   the newest two valid snapshots
//! ```
//!
//! Every [`Persister::write`] is one log record (hard state, truncation and entries
//! together), written with one `write` and made durable with one `fdatasync`, so a batch
//! is atomic by construction: a torn record is never acknowledged and recovery cuts it.
//! A snapshot commit publishes the snapshot file atomically (through
//! [`SnapshotStore`]) and then appends a record noting it; recovery gives the same
//! answer with or without that record. `FORMAT.md` describes the bytes and the
//! reasoning.

// identity, recovery and segment are pub(crate) for `raftkv inspect` (`crate::inspect`),
// which reads a directory with them without repairing anything.
pub(crate) mod identity;
mod live;
pub(crate) mod mmap;
pub(crate) mod record;
pub(crate) mod recovery;
pub(crate) mod segment;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use self::live::LiveLog;
use self::record::{SnapshotMark, StateRecord};
use self::recovery::Mode;
use self::segment::{ActiveSegment, SealedSegment};
use crate::config::{Durability, StorageConfig};
use crate::error::StorageError;
use crate::fault::{self, FaultPlan};
use crate::persister::{Persister, Result, SnapshotReader, SnapshotWriter};
use crate::poison::Poison;
use crate::rules;
use crate::snapshot::{SnapshotFileWriter, SnapshotStore, sync_dir};
use crate::sync_histogram::SyncHistogram;
use crate::types::{
    HARD_STATE_ACCOUNTED_SIZE, HardState, RecoveredState, SkippedSnapshot, SnapshotInfo,
    SnapshotMeta, WriteBatch,
};

/// The subdirectory holding snapshot files.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// What [`FilePersister::open`] repaired, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn last log record that was cut off: the segment and the offset it was cut at.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// A last segment torn while being created, which was removed.
    pub torn_segment: Option<PathBuf>,
    /// Segments left before a gap by an interrupted compaction, which were removed.
    pub stale_segments: Vec<PathBuf>,
    /// The snapshot noted in the log because the log did not note it yet (a crash between
    /// publishing it and appending its record, or a fallback to an older snapshot).
    pub noted_snapshot: Option<SnapshotMeta>,
}

/// The file + mmap persister. See the [module docs](self) and `FORMAT.md`.
///
/// Failpoints (see [`FaultPlan`]): `log.before_write`, `log.after_write`,
/// `log.before_fsync`, `log.after_fsync`, `log.before_rotate`, `log.after_rotate`,
/// `compact.before_delete`, `compact.after_delete`, and the snapshot store's
/// `snapshot.*` points. Any failure while writing poisons the persister, except a
/// snapshot that fails before its fsync (a full disk while its payload is written): that
/// snapshot is abandoned and its temp file removed, and the log stays writable.
#[derive(Debug)]
pub struct FilePersister {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    config: StorageConfig,
    faults: Option<Arc<FaultPlan>>,
    poison: Poison,
    store: SnapshotStore,
    /// Snapshot files found invalid on open.
    skipped: Vec<SkippedSnapshot>,
    report: RecoveryReport,
    /// `inner.log.bytes()`, readable without the lock: a write holds the lock through
    /// its fsync, and `raft_state_size` is polled by the apply loop after every entry.
    log_bytes: AtomicU64,
    /// The log syncs' durations (`Persister::sync_histogram`).
    syncs: SyncHistogram,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    hard_state: HardState,
    /// The current snapshot; the log follows it.
    snapshot: Option<SnapshotMeta>,
    log: LiveLog,
    /// Sealed segments, oldest first.
    sealed: Vec<SealedSegment>,
    active: ActiveSegment,
    /// Reused buffer for encoding records.
    scratch: Vec<u8>,
}

impl FilePersister {
    /// Opens (creating if needed) the persister in `dir`, recovering what is there:
    /// cuts a torn last log record, removes leftover temp files, and refuses a directory
    /// that another backend wrote, corrupt data and a log that needs a missing snapshot.
    pub fn open(dir: &Path, config: StorageConfig) -> Result<Self> {
        Self::open_inner(dir, config, None)
    }

    /// Like [`open`](Self::open), with writes passing through `faults`' failpoints.
    pub fn open_with_faults(
        dir: &Path,
        config: StorageConfig,
        faults: Arc<FaultPlan>,
    ) -> Result<Self> {
        Self::open_inner(dir, config, Some(faults))
    }

    fn open_inner(
        dir: &Path,
        mut config: StorageConfig,
        faults: Option<Arc<FaultPlan>>,
    ) -> Result<Self> {
        config.dir = Some(dir.to_path_buf());
        config.validate()?;
        let durability = config.durability;
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::io("create data directory", dir, e))?;
            if durability == Durability::Immediate
                && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
            {
                sync_dir(parent)?;
            }
        }
        identity::ensure(dir, durability)?;
        let (store, skipped) =
            SnapshotStore::open(&dir.join(SNAPSHOT_DIR), &config, faults.clone())?;
        let scan = recovery::scan(dir, Mode::Repair(durability))?;
        let chosen = store.current().map(|c| c.meta);
        let (inner, mark_needed) = match &scan.active {
            None => {
                if chosen.is_some() || !skipped.is_empty() {
                    return Err(StorageError::corrupt(
                        "log",
                        dir,
                        0,
                        "the directory holds snapshot files but no log segment: the log \
                         (and the hard state in it) is missing",
                    ));
                }
                let active = ActiveSegment::create(dir, 1, &StateRecord::default(), durability)?;
                let inner = Inner {
                    hard_state: HardState::default(),
                    snapshot: None,
                    log: LiveLog::new(0, &[]),
                    sealed: Vec::new(),
                    active,
                    scratch: Vec::new(),
                };
                (inner, None)
            }
            Some(a) => {
                let resolved = scan.resolve(chosen, &skipped)?;
                let active = ActiveSegment::reopen(&a.path, a.header, a.len, a.max_index)?;
                let inner = Inner {
                    hard_state: resolved.hard_state,
                    snapshot: chosen,
                    log: LiveLog::new(chosen.map_or(0, |c| c.index), &resolved.entries),
                    sealed: scan.sealed.clone(),
                    active,
                    scratch: Vec::new(),
                };
                (inner, resolved.mark_needed)
            }
        };
        for path in &scan.before_gap {
            // Older than a gap left by an interrupted compaction; the log above did not
            // need them (it resolved without them).
            tracing::warn!(segment = %path.display(), "removing a log segment left before a gap");
            std::fs::remove_file(path)
                .map_err(|e| StorageError::io("remove stale log segment", path, e))?;
        }
        let report = RecoveryReport {
            torn_tail: scan.torn_tail.clone(),
            torn_segment: scan.torn_segment.clone(),
            stale_segments: scan.before_gap.clone(),
            noted_snapshot: mark_needed.map(|m| m.meta),
        };
        drop(scan);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            config,
            faults,
            poison: Poison::default(),
            store,
            skipped,
            report,
            log_bytes: AtomicU64::new(inner.log.bytes()),
            syncs: SyncHistogram::new(),
            inner: Mutex::new(inner),
        });
        if let Some(mark) = mark_needed {
            // Note the chosen snapshot in the log, so that the log on disk says what
            // recovery decided (see FORMAT.md, "Recovery").
            let mut inner = shared.inner.lock();
            let r = shared.append_locked(&mut inner, |salt, out| {
                record::encode_snapshot(mark, salt, out)
            });
            shared.poison.latch(r)?;
        }
        Ok(Self { shared })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The snapshot store (for tools and tests).
    pub fn snapshot_store(&self) -> &SnapshotStore {
        &self.shared.store
    }

    /// Snapshot files found invalid when the persister was opened.
    pub fn skipped_snapshots(&self) -> &[SkippedSnapshot] {
        &self.shared.skipped
    }

    /// What opening the persister repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared.report
    }

    /// True once a failed write has poisoned the persister.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poison.is_poisoned()
    }
}

/// Opens the file backend for [`StorageConfig::open`].
pub(crate) fn open_boxed(dir: &Path, config: StorageConfig) -> Result<Box<dyn Persister>> {
    FilePersister::open(dir, config).map(|p| Box::new(p) as Box<dyn Persister>)
}

impl Shared {
    fn durable(&self) -> bool {
        self.config.durability == Durability::Immediate
    }

    /// Appends one record (encoded by `encode` with the active segment's salt) and makes
    /// it durable: rotate if the segment is full, one write, one fdatasync.
    fn append_locked(
        &self,
        inner: &mut Inner,
        encode: impl FnOnce(u32, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        if inner.active.len >= self.config.segment_bytes {
            self.rotate(inner)?;
        }
        let mut buf = std::mem::take(&mut inner.scratch);
        encode(inner.active.header.salt, &mut buf)?;
        let r = self.write_and_sync(inner, &buf);
        if buf.capacity() <= (1 << 20) {
            inner.scratch = buf;
        }
        r
    }

    fn write_and_sync(&self, inner: &mut Inner, bytes: &[u8]) -> Result<()> {
        fault::check(&self.faults, "log.before_write")?;
        inner.active.append(bytes)?;
        fault::check(&self.faults, "log.after_write")?;
        fault::check(&self.faults, "log.before_fsync")?;
        if self.durable() {
            let started = std::time::Instant::now();
            let synced = inner.active.sync();
            self.syncs.observe(started.elapsed());
            synced?;
        }
        fault::check(&self.faults, "log.after_fsync")
    }

    /// Seals the active segment and starts the next one with a STATE record. The new
    /// file and its directory entry are durable before any record goes into it.
    fn rotate(&self, inner: &mut Inner) -> Result<()> {
        fault::check(&self.faults, "log.before_rotate")?;
        let state = StateRecord {
            hard_state: inner.hard_state,
            last_index: inner.log.last_index(),
            snapshot: inner.snapshot,
        };
        let seq = inner.active.header.seq + 1;
        let next = ActiveSegment::create(&self.dir, seq, &state, self.config.durability)?;
        let old = std::mem::replace(&mut inner.active, next);
        inner.sealed.push(old.sealed());
        fault::check(&self.faults, "log.after_rotate")
    }

    /// Deletes the oldest sealed segments whose entries are all at or below `threshold`,
    /// then fsyncs the directory. Only a prefix is deleted, so the remaining segments
    /// always form a contiguous run.
    fn delete_segments(&self, inner: &mut Inner, threshold: u64) -> Result<()> {
        let n = inner
            .sealed
            .iter()
            .take_while(|s| s.max_index <= threshold)
            .count();
        if n == 0 {
            return Ok(());
        }
        fault::check(&self.faults, "compact.before_delete")?;
        for i in 0..n {
            if let Err(e) = std::fs::remove_file(&inner.sealed[i].path) {
                let path = inner.sealed[i].path.clone();
                inner.sealed.drain(..i);
                return Err(StorageError::io("delete compacted log segment", path, e));
            }
        }
        inner.sealed.drain(..n);
        if self.durable() {
            sync_dir(&self.dir)?;
        }
        fault::check(&self.faults, "compact.after_delete")
    }

    /// The index below which segments may go: the older retained snapshot's (0 without
    /// one), so that falling back to it still finds the log it needs.
    fn deletable_through(&self) -> u64 {
        self.store.previous().map_or(0, |p| p.meta.index)
    }
}

impl Persister for FilePersister {
    fn recover(&self) -> Result<RecoveredState> {
        let sh = &self.shared;
        let inner = sh.inner.lock();
        let chosen = sh.store.current().map(|c| c.meta);
        let scan = recovery::scan(&sh.dir, Mode::ReadOnly)?;
        let r = scan.resolve(chosen, &sh.skipped)?;
        if !sh.poison.is_poisoned() {
            let last = r
                .entries
                .last()
                .map_or(inner.log.snapshot_index(), |e| e.index);
            if r.hard_state != inner.hard_state
                || last != inner.log.last_index()
                || chosen != inner.snapshot
            {
                return Err(StorageError::corrupt(
                    "log",
                    &sh.dir,
                    0,
                    format!(
                        "the directory no longer matches the persister: disk has hard state {:?}, \
                         last index {last}, snapshot {chosen:?}; memory has {:?}, {}, {:?}",
                        r.hard_state,
                        inner.hard_state,
                        inner.log.last_index(),
                        inner.snapshot
                    ),
                ));
            }
        }
        Ok(RecoveredState {
            hard_state: r.hard_state,
            snapshot: chosen,
            entries: r.entries,
            skipped_snapshots: sh.skipped.clone(),
        })
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let sh = &self.shared;
        sh.poison.check("write")?;
        let mut inner = sh.inner.lock();
        rules::validate_batch(batch, inner.log.snapshot_index(), inner.log.last_index())?;
        if batch.is_empty() {
            return Ok(());
        }
        record::check_batch_size(batch)?;
        let r = sh.append_locked(&mut inner, |salt, out| {
            record::encode_batch(batch, salt, out)
        });
        sh.poison.latch(r)?;
        inner.log.apply_batch(batch);
        sh.log_bytes.store(inner.log.bytes(), Ordering::Release);
        if let Some(hs) = batch.hard_state {
            inner.hard_state = hs;
        }
        if let Some(last) = batch.entries.last() {
            inner.active.max_index = inner.active.max_index.max(last.index);
        }
        Ok(())
    }

    fn begin_snapshot(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>> {
        let sh = &self.shared;
        sh.poison.check("begin snapshot")?;
        let writer = sh.poison.latch(sh.store.begin(meta))?;
        Ok(Box::new(FileSnapshotWriter {
            owner: Arc::clone(&self.shared),
            writer,
        }))
    }

    fn open_snapshot(&self) -> Result<Option<Box<dyn SnapshotReader>>> {
        Ok(self
            .shared
            .store
            .open_current()?
            .map(|r| Box::new(r) as Box<dyn SnapshotReader>))
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.shared.inner.lock().snapshot
    }

    fn compact(&self, through: u64) -> Result<()> {
        let sh = &self.shared;
        sh.poison.check("compact")?;
        let mut inner = sh.inner.lock();
        let snapshot_index = inner.log.snapshot_index();
        if through > snapshot_index {
            return Err(StorageError::InvalidArgument {
                op: "compact",
                detail: format!("through {through} is above the snapshot index {snapshot_index}"),
            });
        }
        let threshold = through.min(sh.deletable_through());
        let r = sh.delete_segments(&mut inner, threshold);
        sh.poison.latch(r)
    }

    fn raft_state_size(&self) -> u64 {
        HARD_STATE_ACCOUNTED_SIZE + self.shared.log_bytes.load(Ordering::Acquire)
    }

    fn snapshot_size(&self) -> u64 {
        self.shared.store.current().map_or(0, |c| c.stored_bytes)
    }

    fn backend_name(&self) -> &'static str {
        "file"
    }

    fn sync_histogram(&self) -> Option<&SyncHistogram> {
        Some(&self.shared.syncs)
    }
}

/// The [`SnapshotWriter`] of the file backend: a [`SnapshotFileWriter`] whose commit
/// also compacts the log.
struct FileSnapshotWriter {
    owner: Arc<Shared>,
    writer: SnapshotFileWriter,
}

impl Write for FileSnapshotWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        // A failed payload write (a full disk, say) fails this snapshot only: its temp
        // file is removed when the writer drops, nothing was synced, and the log stays
        // writable, so the node keeps serving from it.
        self.owner.poison.check("write snapshot")?;
        self.writer.write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl SnapshotWriter for FileSnapshotWriter {
    fn commit(self: Box<Self>) -> Result<SnapshotInfo> {
        let Self { owner, mut writer } = *self;
        owner.poison.check("commit snapshot")?;
        let meta = writer.meta();
        let stale = |inner: &Inner| match inner.snapshot {
            Some(cur) if meta.index <= cur.index => Err(StorageError::StaleSnapshot {
                index: meta.index,
                current: cur.index,
            }),
            _ => Ok(()),
        };
        stale(&owner.inner.lock())?;
        // The last frame, the header and the fsync of the snapshot file happen without
        // the lock, so that log writes are not held up by them.
        // Failures before the fsync fail this snapshot only (see `write`); from the
        // fsync on they poison the store, and then this persister too.
        if let Err(e) = writer.prepare() {
            if writer.store_poisoned() {
                return owner.poison.latch(Err(e));
            }
            return Err(e);
        }
        let mut inner = owner.inner.lock();
        stale(&inner)?;
        let info = owner.poison.latch(writer.finish())?;
        let mark = SnapshotMark {
            meta,
            suffix_kept: inner.log.keeps_suffix(meta),
        };
        let r = owner.append_locked(&mut inner, |salt, out| {
            record::encode_snapshot(mark, salt, out)
        });
        owner.poison.latch(r)?;
        let kept = inner.log.apply_snapshot(meta);
        owner.log_bytes.store(inner.log.bytes(), Ordering::Release);
        debug_assert_eq!(kept, mark.suffix_kept);
        inner.snapshot = Some(meta);
        inner.hard_state.commit = inner.hard_state.commit.max(meta.index);
        let threshold = owner.deletable_through();
        let r = owner.delete_segments(&mut inner, threshold);
        owner.poison.latch(r)?;
        Ok(info.snapshot_info())
    }
}
