//! The RocksDB backend's database, opened with RocksDB's read-only mode and checked the
//! way `RocksPersister::open` checks it, without the repairs open makes.

use std::fs;
use std::path::Path;

use rocksdb::{DB, DBRecoveryMode, IteratorMode, Options};

use super::{DirReport, IndexRange, SnapshotScan};
use crate::error::StorageError;
use crate::persister::Result;
use crate::rocks::layout::{
    BACKEND, CF_HARD_STATE, CF_LOG, CF_META, COLUMN_FAMILIES, DB_DIR, FORMAT_VERSION, Identity,
    KEY_HARD_STATE, KEY_IDENTITY, KEY_SNAPSHOT, decode, index_of_key, rocks_error,
};
use crate::rocks::recovery::{StoredLog, resolve};
use crate::types::{Entry, HardState, SnapshotMeta};

/// Fills in the hard state and the log of a RocksDB-backend directory.
pub(super) fn inspect_db(dir: &Path, snapshots: &SnapshotScan, report: &mut DirReport) {
    let db_path = dir.join(DB_DIR);
    match tree_bytes(&db_path) {
        Ok(bytes) => report.log.bytes_on_disk = bytes,
        Err(e) => report.problems.push(e),
    }
    let mut opts = Options::default();
    opts.create_if_missing(false);
    opts.set_paranoid_checks(true);
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    // Read-only: replays the WAL in memory, writes nothing and takes no lock.
    let db = match DB::open_cf_for_read_only(&opts, &db_path, COLUMN_FAMILIES, false) {
        Ok(db) => db,
        Err(e) => {
            report
                .problems
                .push(rocks_error("open read-only", &db_path, e));
            return;
        }
    };
    if let Err(e) = read_db(dir, &db_path, &db, snapshots, report) {
        report.problems.push(e);
    }
}

fn cf<'a>(db: &'a DB, name: &str, db_path: &Path) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| StorageError::Rocks {
        op: "open column family",
        path: db_path.to_path_buf(),
        message: format!("column family {name:?} is missing"),
    })
}

fn read_db(
    dir: &Path,
    db_path: &Path,
    db: &DB,
    snapshots: &SnapshotScan,
    report: &mut DirReport,
) -> Result<()> {
    check_identity(db, db_path, report)?;
    let hard_state: HardState = match db
        .get_cf(cf(db, CF_HARD_STATE, db_path)?, KEY_HARD_STATE)
        .map_err(|e| rocks_error("read hard state", db_path, e))?
    {
        Some(bytes) => decode(&bytes, "hard state", db_path, 0)?,
        None => HardState::default(),
    };
    report.hard_state = Some(hard_state);
    let recorded: Option<SnapshotMeta> = db
        .get_cf(cf(db, CF_META, db_path)?, KEY_SNAPSHOT)
        .map_err(|e| rocks_error("read snapshot record", db_path, e))?
        .map(|b| decode(&b, "snapshot record", db_path, 0))
        .transpose()?;
    let mut stored = StoredLog::default();
    let scanned = scan_log(db, db_path, &mut stored);
    report.log.stored = IndexRange::with_len(stored.first, stored.items.len() as u64);
    scanned?;
    let resolution = resolve(
        snapshots.chosen,
        recorded,
        &stored,
        dir,
        db_path,
        &snapshots.skipped,
    )?;
    let c = snapshots.chosen.map_or(0, |s| s.index);
    let mut hard_state = hard_state;
    hard_state.commit = hard_state.commit.max(c);
    report.hard_state = Some(hard_state);
    report.log.recovered = IndexRange::with_len(c + 1, resolution.log.len() as u64);
    report.log.recovered_accounted_bytes = Some(resolution.log.iter().map(|&(_, s)| s).sum());
    report.log.complete = true;
    if let Some(repair) = resolution.repair {
        report.notes.push(format!(
            "the database records snapshot {recorded:?}, but the newest valid snapshot file is \
             {:?} (a crash between publishing it and recording it, or a fallback to an older \
             file); the next open rewrites the record{}",
            snapshots.chosen,
            if repair.discard_log {
                " and discards the log it supersedes"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

/// Checks the identity record as open does, without writing one into a new database.
fn check_identity(db: &DB, db_path: &Path, report: &mut DirReport) -> Result<()> {
    let bytes = db
        .get_cf(cf(db, CF_META, db_path)?, KEY_IDENTITY)
        .map_err(|e| rocks_error("read identity", db_path, e))?;
    let Some(bytes) = bytes else {
        for name in COLUMN_FAMILIES {
            if let Some(first) = db
                .iterator_cf(cf(db, name, db_path)?, IteratorMode::Start)
                .next()
            {
                let (key, _) = first.map_err(|e| rocks_error("scan database", db_path, e))?;
                return Err(StorageError::corrupt(
                    "identity record",
                    db_path,
                    0,
                    format!("missing, but column family {name:?} holds key {key:02x?}"),
                ));
            }
        }
        report.notes.push(
            "the database is empty and has no identity record yet (a crash while it was \
             created); the next open writes one"
                .into(),
        );
        return Ok(());
    };
    let id: Identity = decode(&bytes, "identity record", db_path, 0)?;
    if id.backend != BACKEND {
        report.problems.push(StorageError::Config(format!(
            "{} was written by the {:?} backend, not {BACKEND}",
            db_path.display(),
            id.backend
        )));
    } else if id.format_version != FORMAT_VERSION {
        report.problems.push(StorageError::Config(format!(
            "{} has {BACKEND} layout version {}; this build reads version {FORMAT_VERSION}",
            db_path.display(),
            id.format_version
        )));
    }
    Ok(())
}

/// Reads the stored log into `stored` (as `RocksPersister::open` does): keys must be
/// contiguous and every entry must decode and carry its key's index. Stops at the first
/// problem, leaving what was read before it in `stored`.
fn scan_log(db: &DB, db_path: &Path, stored: &mut StoredLog) -> Result<()> {
    let mut expected: Option<u64> = None;
    for item in db.iterator_cf(cf(db, CF_LOG, db_path)?, IteratorMode::Start) {
        let (key, value) = item.map_err(|e| rocks_error("read log", db_path, e))?;
        let index = index_of_key(&key, db_path)?;
        if let Some(want) = expected
            && index != want
        {
            return Err(StorageError::corrupt(
                "log entry",
                db_path,
                index,
                format!("stored log skips from {} to {index}", want - 1),
            ));
        }
        let entry: Entry = decode(&value, "log entry", db_path, index)?;
        if entry.index != index {
            return Err(StorageError::corrupt(
                "log entry",
                db_path,
                index,
                format!("entry under key {index} says index {}", entry.index),
            ));
        }
        if stored.items.is_empty() {
            stored.first = index;
        }
        stored.items.push_back((entry.term, entry.accounted_size()));
        expected = Some(index + 1);
    }
    Ok(())
}

/// Total size of the files under `path`.
fn tree_bytes(path: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = fs::read_dir(path).map_err(|e| StorageError::io("list database", path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list database", path, e))?;
        let p = entry.path();
        let meta = fs::symlink_metadata(&p).map_err(|e| StorageError::io("stat", &p, e))?;
        if meta.is_dir() {
            total += tree_bytes(&p)?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
