//! [`RocksPersister`]: the log and hard state in RocksDB column families, snapshot
//! payloads in the shared snapshot file format beside the database.
//!
//! # Layout
//!
//! See `rocks/layout.rs` for the column families, keys and encodings. The data directory holds
//! `db/` (RocksDB) and `snapshots/` (the snapshot store).
//!
//! # Durability and atomicity
//!
//! One [`Persister::write`] is one RocksDB write batch (the truncation as a range
//! deletion, the appended entries and the hard state), written with `sync = true`
//! (unless [`Durability::None`]). RocksDB applies a batch atomically across column
//! families and recovers its WAL to the last complete batch, so a crash leaves the whole
//! batch or none of it.
//!
//! A snapshot commit publishes the snapshot file first (the snapshot store's temp file,
//! fsync, rename, directory fsync), then writes a synced batch that records the snapshot
//! and deletes the log it supersedes. Recovery (`rocks/recovery.rs`) gives the same answer
//! whether or not a crash hit between the two; it rewrites the record when it did.
//!
//! Entries above the previous snapshot (the store keeps two) stay on disk after a
//! commit, even those the new snapshot covers, so that recovery can fall back to the
//! previous snapshot if the newest file fails validation. [`Persister::compact`]
//! therefore never deletes above the previous snapshot either, as the trait allows.
//!
//! # Failures
//!
//! Validation happens before anything is written; a rejected call changes nothing. Any
//! failed write or sync, in RocksDB or in the snapshot store, poisons the persister,
//! except a snapshot that fails before its file's fsync (a full disk while the payload
//! is written): that snapshot is abandoned, its temp file removed, and the log keeps
//! taking writes.

// pub(crate) for `raftkv inspect` (`crate::inspect`), which reads the same layout
// read-only and applies the same recovery rule.
pub(crate) mod layout;
pub(crate) mod recovery;
mod snapshot_io;
#[cfg(test)]
mod tests;
mod view;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBRecoveryMode, IteratorMode, Options, WriteOptions,
};

use self::layout::{
    BACKEND, CF_HARD_STATE, CF_LOG, CF_META, COLUMN_FAMILIES, DB_DIR, FORMAT_VERSION, Identity,
    KEY_HARD_STATE, KEY_IDENTITY, KEY_SNAPSHOT, SNAPSHOT_DIR, decode, index_of_key, log_key,
    rocks_error,
};
use self::recovery::StoredLog;
use self::snapshot_io::RocksSnapshotWriter;
use self::view::View;
use crate::codec;
use crate::config::{Durability, StorageConfig};
use crate::error::StorageError;
use crate::fault::{self, FaultPlan};
use crate::persister::{Persister, Result, SnapshotReader, SnapshotWriter};
use crate::poison::Poison;
use crate::rules;
use crate::snapshot::{SnapshotFileWriter, SnapshotStore};
use crate::sync_histogram::SyncHistogram;
use crate::types::{
    Entry, HARD_STATE_ACCOUNTED_SIZE, HardState, RecoveredState, SkippedSnapshot, SnapshotInfo,
    SnapshotMeta, WriteBatch,
};

/// A [`Persister`] that keeps the log and hard state in RocksDB.
///
/// Failpoints (see [`FaultPlan`]): `rocks.before_write`, `rocks.after_write` around the
/// RocksDB write of [`Persister::write`]; `rocks.before_snapshot_record`,
/// `rocks.after_snapshot_record` around the batch that records a committed snapshot;
/// plus the snapshot store's own.
#[derive(Debug)]
pub struct RocksPersister {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The data directory.
    dir: PathBuf,
    /// `dir/db`, named in errors.
    db_path: PathBuf,
    db: DB,
    snapshots: SnapshotStore,
    view: Mutex<View>,
    /// `view.log_bytes()`, readable without the lock: a write holds the lock through
    /// its synced batch, and `raft_state_size` is polled by the apply loop.
    log_bytes: AtomicU64,
    /// Snapshot files rejected at open, reported by every `recover`.
    skipped: Vec<SkippedSnapshot>,
    poison: Poison,
    faults: Option<Arc<FaultPlan>>,
    sync: bool,
    /// The synced log writes' durations (`Persister::sync_histogram`).
    syncs: SyncHistogram,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = self.view.lock();
        f.debug_struct("RocksPersister")
            .field("dir", &self.dir)
            .field("snapshot", &view.snapshot)
            .field("last_index", &view.last_index())
            .field("log_bytes", &view.log_bytes())
            .field("poison", &self.poison)
            .finish_non_exhaustive()
    }
}

impl RocksPersister {
    /// Opens (creating if needed) the store in `dir`, recovering what is durable.
    ///
    /// Refuses a directory that holds anything but this backend's data, or a database
    /// written by another backend or layout version.
    pub fn open(dir: &Path, config: StorageConfig) -> Result<Self> {
        Self::open_inner(dir, &config, None)
    }

    /// Like [`open`](RocksPersister::open), with writes passing through `plan`'s
    /// failpoints (and the snapshot store's).
    pub fn open_with_faults(
        dir: &Path,
        config: StorageConfig,
        plan: Arc<FaultPlan>,
    ) -> Result<Self> {
        Self::open_inner(dir, &config, Some(plan))
    }

    /// True once a failed write has poisoned the persister.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poison.is_poisoned()
    }

    fn open_inner(
        dir: &Path,
        config: &StorageConfig,
        faults: Option<Arc<FaultPlan>>,
    ) -> Result<Self> {
        let db_path = dir.join(DB_DIR);
        refuse_foreign_dir(dir, &db_path)?;
        let created = !db_path.exists();
        let db = open_db(&db_path)?;
        if created {
            // RocksDB syncs the files inside db/; make db/ itself (and a new data
            // directory) durable in their parents before anything is acknowledged.
            crate::snapshot::sync_dir(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::snapshot::sync_dir(parent)?;
            }
        }
        check_identity(&db, &db_path)?;
        let (snapshots, skipped) =
            SnapshotStore::open(&dir.join(SNAPSHOT_DIR), config, faults.clone())?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            db_path,
            db,
            snapshots,
            view: Mutex::new(View::default()),
            log_bytes: AtomicU64::new(0),
            skipped,
            poison: Poison::default(),
            faults,
            sync: config.durability != Durability::None,
            syncs: SyncHistogram::new(),
        };
        let view = inner.recover_view()?;
        inner.log_bytes = AtomicU64::new(view.log_bytes());
        inner.view = Mutex::new(view);
        Ok(Self {
            inner: Arc::new(inner),
        })
    }
}

/// A new store may only be created in an empty (or missing) directory: anything else is
/// another backend's data, or not ours.
fn refuse_foreign_dir(dir: &Path, db_path: &Path) -> Result<()> {
    if db_path.exists() {
        return Ok(());
    }
    let names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| StorageError::io("list data directory", dir, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StorageError::io("list data directory", dir, e)),
    };
    if names.is_empty() {
        return Ok(());
    }
    Err(StorageError::Config(format!(
        "{} is not a rocksdb store: it has no {DB_DIR}/ but holds {} (written by another backend?); \
         the rocksdb backend only creates a store in an empty directory",
        dir.display(),
        names.join(", ")
    )))
}

fn open_db(db_path: &Path) -> Result<DB> {
    std::fs::create_dir_all(db_path)
        .map_err(|e| StorageError::io("create database directory", db_path, e))?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_paranoid_checks(true);
    // Recover the WAL up to the last complete batch: a torn tail is a batch that was
    // never acknowledged.
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(4);
    let cfs = COLUMN_FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    DB::open_cf_descriptors(&opts, db_path, cfs).map_err(|e| rocks_error("open", db_path, e))
}

fn cf<'a>(db: &'a DB, name: &str, db_path: &Path) -> Result<&'a ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| StorageError::Rocks {
        op: "open column family",
        path: db_path.to_path_buf(),
        message: format!("column family {name:?} is missing"),
    })
}

/// Checks the identity record, writing it into a new, empty database.
fn check_identity(db: &DB, db_path: &Path) -> Result<()> {
    let meta = cf(db, CF_META, db_path)?;
    match db
        .get_cf(meta, KEY_IDENTITY)
        .map_err(|e| rocks_error("read identity", db_path, e))?
    {
        Some(bytes) => {
            let id: Identity = decode(&bytes, "identity record", db_path, 0)?;
            if id.backend != BACKEND {
                return Err(StorageError::Config(format!(
                    "{} was written by the {:?} backend, not {BACKEND}",
                    db_path.display(),
                    id.backend
                )));
            }
            if id.format_version != FORMAT_VERSION {
                return Err(StorageError::Config(format!(
                    "{} has {BACKEND} layout version {}; this build reads version {FORMAT_VERSION}",
                    db_path.display(),
                    id.format_version
                )));
            }
            Ok(())
        }
        None => {
            for name in COLUMN_FAMILIES {
                let handle = cf(db, name, db_path)?;
                if let Some(first) = db.iterator_cf(handle, IteratorMode::Start).next() {
                    let (key, _) =
                        first.map_err(|e| rocks_error("scan new database", db_path, e))?;
                    return Err(StorageError::corrupt(
                        "identity record",
                        db_path,
                        0,
                        format!("missing, but column family {name:?} holds key {key:02x?}"),
                    ));
                }
            }
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            let value = codec::encode(&Identity::current())?;
            db.put_cf_opt(meta, KEY_IDENTITY, value, &opts)
                .map_err(|e| rocks_error("write identity", db_path, e))
        }
    }
}

impl Inner {
    fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        cf(&self.db, name, &self.db_path)
    }

    fn write_options(&self) -> WriteOptions {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        opts
    }

    fn read_hard_state(&self) -> Result<HardState> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_HARD_STATE)?, KEY_HARD_STATE)
            .map_err(|e| rocks_error("read hard state", &self.db_path, e))?;
        match bytes {
            Some(b) => decode(&b, "hard state", &self.db_path, 0),
            None => Ok(HardState::default()),
        }
    }

    fn read_recorded_snapshot(&self) -> Result<Option<SnapshotMeta>> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_META)?, KEY_SNAPSHOT)
            .map_err(|e| rocks_error("read snapshot record", &self.db_path, e))?;
        bytes
            .map(|b| decode(&b, "snapshot record", &self.db_path, 0))
            .transpose()
    }

    /// Visits the stored entries from `from` in index order, checking each key against
    /// its entry and against the previous key (the log is contiguous).
    fn scan_log(&self, from: u64, mut visit: impl FnMut(Entry) -> Result<()>) -> Result<()> {
        let start = log_key(from);
        let mut expected: Option<u64> = None;
        let iter = self.db.iterator_cf(
            self.cf(CF_LOG)?,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| rocks_error("read log", &self.db_path, e))?;
            let index = index_of_key(&key, &self.db_path)?;
            if let Some(want) = expected
                && index != want
            {
                return Err(StorageError::corrupt(
                    "log entry",
                    &self.db_path,
                    index,
                    format!("stored log skips from {} to {index}", want - 1),
                ));
            }
            let entry: Entry = decode(&value, "log entry", &self.db_path, index)?;
            if entry.index != index {
                return Err(StorageError::corrupt(
                    "log entry",
                    &self.db_path,
                    index,
                    format!("entry under key {index} says index {}", entry.index),
                ));
            }
            expected = Some(index + 1);
            visit(entry)?;
        }
        Ok(())
    }

    /// Runs the recovery rule at open and repairs the snapshot record if needed.
    fn recover_view(&self) -> Result<View> {
        // Decode the hard state now, so that a corrupt one fails the open.
        self.read_hard_state()?;
        let recorded = self.read_recorded_snapshot()?;
        let mut stored = StoredLog::default();
        self.scan_log(0, |e| {
            if stored.items.is_empty() {
                stored.first = e.index;
            }
            stored.items.push_back(view::view_item(&e));
            Ok(())
        })?;
        let chosen = self.snapshots.current().map(|i| i.meta);
        let fallback_index = self.snapshots.previous().map_or(0, |i| i.meta.index);
        let resolution = recovery::resolve(
            chosen,
            recorded,
            &stored,
            &self.dir,
            &self.db_path,
            &self.skipped,
        )?;
        if let Some(repair) = resolution.repair {
            tracing::warn!(
                dir = %self.dir.display(),
                ?chosen,
                ?recorded,
                discard_log = repair.discard_log,
                "rocksdb store: the snapshot record disagrees with the newest valid snapshot; rewriting it"
            );
            let batch = self.snapshot_record(chosen, repair.discard_log, fallback_index)?;
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            self.db
                .write_opt(batch, &opts)
                .map_err(|e| rocks_error("write snapshot record", &self.db_path, e))?;
        }
        Ok(View::new(chosen, fallback_index, resolution.log))
    }

    /// The batch that records `snapshot` as the one in use and deletes the stored log it
    /// supersedes: all of it if `discard_log`, else the entries at or below
    /// `fallback_index` (which no retained snapshot needs).
    fn snapshot_record(
        &self,
        snapshot: Option<SnapshotMeta>,
        discard_log: bool,
        fallback_index: u64,
    ) -> Result<rocksdb::WriteBatch> {
        let mut batch = rocksdb::WriteBatch::default();
        let meta_cf = self.cf(CF_META)?;
        match snapshot {
            Some(s) => batch.put_cf(meta_cf, KEY_SNAPSHOT, codec::encode(&s)?),
            None => batch.delete_cf(meta_cf, KEY_SNAPSHOT),
        }
        let log = self.cf(CF_LOG)?;
        if discard_log {
            batch.delete_range_cf(log, log_key(0), log_key(u64::MAX));
        } else if fallback_index > 0 {
            batch.delete_range_cf(log, log_key(0), log_key(fallback_index + 1));
        }
        Ok(batch)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.poison.check("write")?;
        let mut view = self.view.lock();
        rules::validate_batch(batch, view.snapshot_index(), view.last_index())?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut wb = rocksdb::WriteBatch::default();
        let log = self.cf(CF_LOG)?;
        if let Some(from) = batch.truncate_from
            && from <= view.last_index()
        {
            wb.delete_range_cf(log, log_key(from), log_key(u64::MAX));
        }
        for e in &batch.entries {
            wb.put_cf(log, log_key(e.index), codec::encode(e)?);
        }
        if let Some(hs) = &batch.hard_state {
            wb.put_cf(self.cf(CF_HARD_STATE)?, KEY_HARD_STATE, codec::encode(hs)?);
        }
        self.poison
            .latch(fault::check(&self.faults, "rocks.before_write"))?;
        let started = std::time::Instant::now();
        let written = self
            .db
            .write_opt(wb, &self.write_options())
            .map_err(|e| rocks_error("write batch", &self.db_path, e));
        if self.sync {
            self.syncs.observe(started.elapsed());
        }
        self.poison.latch(written)?;
        view.apply(batch);
        self.log_bytes.store(view.log_bytes(), Ordering::Release);
        self.poison
            .latch(fault::check(&self.faults, "rocks.after_write"))
    }

    fn commit_snapshot(
        &self,
        meta: SnapshotMeta,
        mut file: SnapshotFileWriter,
    ) -> Result<SnapshotInfo> {
        self.poison.check("commit snapshot")?;
        let mut view = self.view.lock();
        if let Some(current) = view.snapshot
            && meta.index <= current.index
        {
            return Err(StorageError::StaleSnapshot {
                index: meta.index,
                current: current.index,
            });
        }
        // Step 0: complete and fsync the file. A failure before the fsync fails this
        // snapshot only; from the fsync on it poisons the store and this persister.
        if let Err(e) = file.prepare() {
            if file.store_poisoned() {
                return self.poison.latch(Err(e));
            }
            return Err(e);
        }
        // Step 1: publish the file. From here on recovery sees this snapshot.
        let info = match file.finish() {
            // The store's own staleness check; nothing was written.
            Err(e @ StorageError::StaleSnapshot { .. }) => return Err(e),
            other => self.poison.latch(other)?,
        };
        // The view becomes what recovery now returns, whether or not step 2 lands.
        let matched = view.install(meta);
        self.log_bytes.store(view.log_bytes(), Ordering::Release);
        // Step 2: record it and delete what no retained snapshot needs.
        let batch =
            self.poison
                .latch(self.snapshot_record(Some(meta), !matched, view.fallback_index))?;
        self.poison
            .latch(fault::check(&self.faults, "rocks.before_snapshot_record"))?;
        self.poison.latch(
            self.db
                .write_opt(batch, &self.write_options())
                .map_err(|e| rocks_error("write snapshot record", &self.db_path, e)),
        )?;
        self.poison
            .latch(fault::check(&self.faults, "rocks.after_snapshot_record"))?;
        Ok(SnapshotInfo {
            meta,
            uncompressed_bytes: info.uncompressed_bytes,
            stored_bytes: info.stored_bytes,
        })
    }
}

impl Persister for RocksPersister {
    fn recover(&self) -> Result<RecoveredState> {
        let inner = &*self.inner;
        // Holding the view lock keeps writes out while the log is read.
        let view = inner.view.lock();
        let mut hard_state = inner.read_hard_state()?;
        let first = view.snapshot_index() + 1;
        let mut entries = Vec::with_capacity(view.len());
        inner.scan_log(first, |e| {
            let want_term = view.term_at(e.index);
            if e.index != first + entries.len() as u64 || want_term != Some(e.term) {
                return Err(StorageError::corrupt(
                    "log entry",
                    &inner.db_path,
                    e.index,
                    format!(
                        "stored entry (index {}, term {}) is not in the log this persister wrote (term {want_term:?}, {} entries after {})",
                        e.index,
                        e.term,
                        view.len(),
                        first - 1
                    ),
                ));
            }
            entries.push(e);
            Ok(())
        })?;
        if entries.len() != view.len() {
            return Err(StorageError::corrupt(
                "log entry",
                &inner.db_path,
                first + entries.len() as u64,
                format!(
                    "stored log ends after {} of {} entries",
                    entries.len(),
                    view.len()
                ),
            ));
        }
        hard_state.commit = hard_state.commit.max(view.snapshot_index());
        Ok(RecoveredState {
            hard_state,
            snapshot: view.snapshot,
            entries,
            skipped_snapshots: inner.skipped.clone(),
        })
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.inner.write(batch)
    }

    fn begin_snapshot(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>> {
        let inner = &self.inner;
        inner.poison.check("begin snapshot")?;
        let file = inner.poison.latch(inner.snapshots.begin(meta))?;
        Ok(Box::new(RocksSnapshotWriter {
            inner: Arc::clone(inner),
            meta,
            file,
        }))
    }

    fn open_snapshot(&self) -> Result<Option<Box<dyn SnapshotReader>>> {
        Ok(self
            .inner
            .snapshots
            .open_current()?
            .map(|r| Box::new(r) as Box<dyn SnapshotReader>))
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.inner.view.lock().snapshot
    }

    fn compact(&self, through: u64) -> Result<()> {
        let inner = &*self.inner;
        let view = inner.view.lock();
        if through > view.snapshot_index() {
            return Err(StorageError::InvalidArgument {
                op: "compact",
                detail: format!(
                    "through {through} is above the snapshot index {}",
                    view.snapshot_index()
                ),
            });
        }
        inner.poison.check("compact")?;
        // Keep what the fallback snapshot needs (see the module docs).
        let upto = through.min(view.fallback_index);
        if upto == 0 {
            return Ok(());
        }
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range_cf(inner.cf(CF_LOG)?, log_key(0), log_key(upto + 1));
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        inner.poison.latch(
            inner
                .db
                .write_opt(batch, &opts)
                .map_err(|e| rocks_error("compact log", &inner.db_path, e)),
        )
    }

    fn raft_state_size(&self) -> u64 {
        HARD_STATE_ACCOUNTED_SIZE + self.inner.log_bytes.load(Ordering::Acquire)
    }

    fn snapshot_size(&self) -> u64 {
        self.inner.snapshots.current().map_or(0, |i| i.stored_bytes)
    }

    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn sync_histogram(&self) -> Option<&SyncHistogram> {
        Some(&self.inner.syncs)
    }
}
