//! Tests of what only the RocksDB backend has: its directory and identity checks, how it
//! reports damaged values, and recovery when the two steps of a snapshot commit
//! disagree. The contract itself is tested by the conformance suite.

use std::io::Write;
use std::path::Path;

use super::layout::{
    CF_LOG, CF_META, COLUMN_FAMILIES, DB_DIR, Identity, KEY_IDENTITY, KEY_SNAPSHOT, log_key,
};
use super::*;
use crate::config::Backend;

fn config(dir: &Path) -> StorageConfig {
    StorageConfig::new(Backend::Rocksdb, dir)
}

fn open(dir: &Path) -> Result<RocksPersister> {
    RocksPersister::open(dir, config(dir))
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range
        .map(|index| Entry {
            index,
            term,
            data: vec![index as u8; 10],
        })
        .collect()
}

fn install(p: &RocksPersister, index: u64, term: u64, payload: &[u8]) -> Result<SnapshotInfo> {
    let mut w = p.begin_snapshot(SnapshotMeta { index, term })?;
    w.write_all(payload).expect("write payload");
    w.commit()
}

/// Opens the database of a closed store directly, to tamper with it.
fn raw_db(dir: &Path) -> DB {
    let mut opts = Options::default();
    opts.create_if_missing(false);
    DB::open_cf(&opts, dir.join(DB_DIR), COLUMN_FAMILIES).expect("open raw db")
}

#[test]
fn refuses_a_directory_with_other_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("log-00000001.seg"), b"not ours").expect("write");
    let e = open(dir.path()).expect_err("foreign directory");
    assert!(matches!(e, StorageError::Config(_)), "{e}");
    assert!(e.to_string().contains("log-00000001.seg"), "{e}");
    // A missing directory is created.
    let fresh = dir.path().join("new");
    drop(open(&fresh).expect("new directory"));
    drop(open(&fresh).expect("reopen"));
}

#[test]
fn refuses_another_backend_or_layout_version() {
    for (id, needle) in [
        (
            Identity {
                backend: "file".into(),
                format_version: 1,
            },
            "\"file\" backend",
        ),
        (
            Identity {
                backend: "rocksdb".into(),
                format_version: 99,
            },
            "version 99",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(open(dir.path()).expect("create"));
        {
            let db = raw_db(dir.path());
            let meta = db.cf_handle(CF_META).expect("meta cf");
            db.put_cf(meta, KEY_IDENTITY, codec::encode(&id).expect("encode"))
                .expect("put");
        }
        let e = open(dir.path()).expect_err("wrong identity");
        assert!(matches!(e, StorageError::Config(_)), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn data_without_identity_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = open(dir.path()).expect("create");
        p.write(&WriteBatch::new().append(entries(1..=2, 1)))
            .expect("write");
    }
    {
        let db = raw_db(dir.path());
        db.delete_cf(db.cf_handle(CF_META).expect("meta cf"), KEY_IDENTITY)
            .expect("delete");
    }
    let e = open(dir.path()).expect_err("no identity");
    assert!(e.is_corruption(), "{e}");
}

#[test]
fn damaged_entry_is_reported_with_path_and_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = open(dir.path()).expect("create");
        p.write(&WriteBatch::new().append(entries(1..=5, 1)))
            .expect("write");
    }
    {
        let db = raw_db(dir.path());
        db.put_cf(
            db.cf_handle(CF_LOG).expect("log cf"),
            log_key(3),
            [0xff, 0xff, 0xff],
        )
        .expect("put");
    }
    let e = open(dir.path()).expect_err("damaged entry");
    match &e {
        StorageError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &dir.path().join(DB_DIR), "{e}");
            assert_eq!(*offset, 3, "{e}");
        }
        other => panic!("want Corrupt, got {other}"),
    }

    // An entry stored under the wrong key is caught too.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = open(dir.path()).expect("create");
        p.write(&WriteBatch::new().append(entries(1..=5, 1)))
            .expect("write");
    }
    {
        let db = raw_db(dir.path());
        let moved = codec::encode(&entries(4..=4, 1)[0]).expect("encode");
        db.put_cf(db.cf_handle(CF_LOG).expect("log cf"), log_key(2), moved)
            .expect("put");
    }
    let e = open(dir.path()).expect_err("entry under the wrong key");
    assert!(matches!(e, StorageError::Corrupt { offset: 2, .. }), "{e}");
}

#[test]
fn missing_snapshot_record_is_rebuilt_at_open() {
    // A snapshot file whose record never landed (the record is removed by hand here,
    // as a crash between the two steps would leave it), over a log that matches it.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = open(dir.path()).expect("create");
        p.write(&WriteBatch::new().append(entries(1..=6, 1)))
            .expect("write");
        install(&p, 4, 1, b"four").expect("install");
    }
    {
        let db = raw_db(dir.path());
        db.delete_cf(db.cf_handle(CF_META).expect("meta cf"), KEY_SNAPSHOT)
            .expect("delete");
    }
    let p = open(dir.path()).expect("reopen");
    let r = p.recover().expect("recover");
    assert_eq!(r.snapshot, Some(SnapshotMeta { index: 4, term: 1 }));
    assert_eq!(r.entries, entries(5..=6, 1));
    assert_eq!(r.hard_state.commit, 4);
    drop(p);
    let db = raw_db(dir.path());
    let recorded = db
        .get_cf(db.cf_handle(CF_META).expect("meta cf"), KEY_SNAPSHOT)
        .expect("get")
        .expect("record rewritten");
    assert_eq!(
        codec::decode::<SnapshotMeta>(&recorded, 64).expect("decode"),
        SnapshotMeta { index: 4, term: 1 }
    );
}

#[test]
fn compact_keeps_what_the_fallback_snapshot_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path()).expect("create");
    p.write(&WriteBatch::new().append(entries(1..=12, 1)))
        .expect("write");
    install(&p, 4, 1, b"four").expect("install");
    install(&p, 8, 1, b"eight").expect("install");
    p.compact(8).expect("compact");
    drop(p);
    let db = raw_db(dir.path());
    let log = db.cf_handle(CF_LOG).expect("log cf");
    let first = db
        .iterator_cf(log, IteratorMode::Start)
        .next()
        .expect("an entry")
        .expect("read");
    assert_eq!(
        layout::index_of_key(&first.0, Path::new("db")).expect("key"),
        5,
        "entries above the fallback snapshot (4) stay"
    );
}

/// Flips the last byte of the newest snapshot file, inside its last compressed frame.
fn damage_newest_snapshot(dir: &Path) -> std::path::PathBuf {
    let snapshots = dir.join(super::layout::SNAPSHOT_DIR);
    let newest = std::fs::read_dir(&snapshots)
        .expect("list snapshots")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            crate::snapshot::parse_file_name(&p.file_name().expect("name").to_string_lossy())
                .is_some()
        })
        .max_by_key(|p| {
            crate::snapshot::parse_file_name(&p.file_name().expect("name").to_string_lossy())
                .map(|m| m.index)
        })
        .expect("a snapshot file");
    let mut bytes = std::fs::read(&newest).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&newest, bytes).expect("write");
    newest
}

#[test]
fn falls_back_to_the_previous_snapshot_when_the_newest_is_damaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = open(dir.path()).expect("create");
        p.write(&WriteBatch::new().append(entries(1..=12, 1)))
            .expect("write");
        install(&p, 4, 1, &[4; 5000]).expect("install 4");
        install(&p, 8, 1, &[8; 5000]).expect("install 8");
        p.write(&WriteBatch::new().append(entries(13..=14, 2)))
            .expect("write");
    }
    let damaged = damage_newest_snapshot(dir.path());
    let p = open(dir.path()).expect("reopen falls back");
    let r = p.recover().expect("recover");
    assert_eq!(r.snapshot, Some(SnapshotMeta { index: 4, term: 1 }));
    let mut want = entries(5..=12, 1);
    want.extend(entries(13..=14, 2));
    assert_eq!(
        r.entries, want,
        "the log bridges from the fallback snapshot"
    );
    assert_eq!(r.skipped_snapshots.len(), 1, "{:?}", r.skipped_snapshots);
    assert!(
        r.skipped_snapshots[0]
            .location
            .contains(&*damaged.file_name().expect("name").to_string_lossy()),
        "{:?}",
        r.skipped_snapshots
    );
    let mut payload = Vec::new();
    std::io::Read::read_to_end(
        &mut *p.open_snapshot().expect("open").expect("a snapshot"),
        &mut payload,
    )
    .expect("read");
    assert_eq!(payload, vec![4; 5000]);
    assert_eq!(
        p.raft_state_size(),
        HARD_STATE_ACCOUNTED_SIZE + want.iter().map(Entry::accounted_size).sum::<u64>()
    );
    // The store goes on from there.
    install(&p, 10, 1, b"ten").expect("install 10");
    drop(p);
    let p = open(dir.path()).expect("reopen");
    let r = p.recover().expect("recover");
    assert_eq!(r.snapshot, Some(SnapshotMeta { index: 10, term: 1 }));
    assert_eq!(r.entries, want[6..].to_vec());
}

#[test]
fn damaged_newest_snapshot_without_a_bridging_log_is_missing_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = open(dir.path()).expect("create");
        p.write(&WriteBatch::new().append(entries(1..=12, 1)))
            .expect("write");
        install(&p, 4, 1, &[4; 5000]).expect("install 4");
        // Conflicts with the log, which is discarded: nothing bridges 4 to 8 any more.
        install(&p, 8, 2, &[8; 5000]).expect("install 8");
        p.write(&WriteBatch::new().append(entries(9..=10, 2)))
            .expect("write");
    }
    damage_newest_snapshot(dir.path());
    let e = open(dir.path()).expect_err("no bridge");
    match &e {
        StorageError::MissingSnapshot {
            path,
            log_first,
            snapshot_index,
            detail,
        } => {
            assert_eq!(path, dir.path(), "{e}");
            assert_eq!((*log_first, *snapshot_index), (9, 4), "{e}");
            assert!(
                detail.contains("snap-"),
                "the detail names the rejected file: {e}"
            );
        }
        other => panic!("want MissingSnapshot, got {other}"),
    }
}

#[test]
fn backends_refuse_each_others_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = open(dir.path()).expect("create rocksdb store");
        p.write(&WriteBatch::new().append(entries(1..=2, 1)))
            .expect("write");
    }
    let e =
        crate::file::FilePersister::open(dir.path(), StorageConfig::new(Backend::File, dir.path()))
            .expect_err("the file backend must not take a rocksdb directory");
    assert!(!e.to_string().is_empty(), "{e}");

    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = crate::file::FilePersister::open(
            dir.path(),
            StorageConfig::new(Backend::File, dir.path()),
        )
        .expect("create file store");
        p.write(&WriteBatch::new().append(entries(1..=2, 1)))
            .expect("write");
    }
    let e = open(dir.path()).expect_err("the rocksdb backend must not take a file directory");
    assert!(matches!(e, StorageError::Config(_)), "{e}");
}
