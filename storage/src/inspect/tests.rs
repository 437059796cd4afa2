//! `inspect_dir` on healthy directories of both backends, on each kind of damage, and
//! that it never changes a byte of the directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::StorageConfig;
use crate::types::{Entry, WriteBatch};

const HARD_STATE: HardState = HardState {
    term: 3,
    voted_for: Some(2),
    commit: 205,
};

/// Writes entries 1..=200 (term 1 up to 120, then 2) in batches of two 1000-byte
/// entries, snapshots at 40, 100 and 150 (so 100 and 150 are retained and, for the file
/// backend with 64 KiB segments, the first segment is deleted), then 201..=210 (term 3)
/// with the hard state.
fn populate(config: &StorageConfig) {
    let p = config.open().expect("open");
    let term = |i: u64| match i {
        0..=120 => 1,
        121..=200 => 2,
        _ => 3,
    };
    let entry = |index: u64| Entry {
        index,
        term: term(index),
        data: format!("{index:>8} ").repeat(112).into_bytes()[..1000].to_vec(),
    };
    for first in (1..=200).step_by(2) {
        p.write(&WriteBatch::new().append([entry(first), entry(first + 1)]))
            .expect("write");
    }
    for index in [40, 100, 150] {
        let mut w = p
            .begin_snapshot(SnapshotMeta {
                index,
                term: term(index),
            })
            .expect("begin snapshot");
        for k in 0..index * 50 {
            write!(w, "key{k:06}=value-{};", k % 97).expect("payload");
        }
        w.commit().expect("commit snapshot");
    }
    p.write(
        &WriteBatch::new()
            .append((201..=210).map(entry))
            .hard_state(HARD_STATE),
    )
    .expect("write");
}

fn config(backend: Backend, dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::new(backend, dir);
    c.segment_bytes = 64 << 10;
    c.snapshot_frame_bytes = 4096;
    c
}

fn file_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(&config(Backend::File, dir.path()));
    dir
}

/// Every path under `dir` with its length and crc: a change to any byte, a new file or
/// a removed one changes it.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                out.insert(path.clone(), (0, 0));
                stack.push(path);
            } else {
                let bytes = fs::read(&path).expect("read");
                out.insert(path, (bytes.len() as u64, crc32fast::hash(&bytes)));
            }
        }
    }
    out
}

/// Runs `inspect_dir` and checks that it changed nothing.
fn inspect(dir: &Path) -> DirReport {
    let before = tree(dir);
    let report = inspect_dir(dir).expect("inspect");
    assert_eq!(before, tree(dir), "inspect changed {}", dir.display());
    report
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

fn snapshot_path(dir: &Path, index: u64, term: u64) -> PathBuf {
    dir.join(SNAPSHOT_DIR)
        .join(crate::snapshot::file_name(SnapshotMeta { index, term }))
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).expect("write");
}

fn problems(r: &DirReport) -> Vec<String> {
    r.problems.iter().map(ToString::to_string).collect()
}

/// Checks the snapshot part of a healthy populated directory.
fn check_snapshots(r: &DirReport) {
    assert_eq!(r.snapshots.len(), 2, "{:?}", r.snapshots);
    let cur = &r.snapshots[0];
    assert_eq!(
        cur.meta,
        SnapshotMeta {
            index: 150,
            term: 2
        }
    );
    assert_eq!(cur.role, SnapshotRole::Current);
    assert_eq!(cur.status, SnapshotStatus::Ok);
    let info = cur.info.as_ref().expect("info");
    assert_eq!(info.stored_bytes, cur.file_bytes);
    assert!(info.frame_count > 1, "{info:?}");
    assert!(cur.compression_ratio().expect("ratio") > 2.0, "{info:?}");
    assert_eq!(r.snapshots[1].meta.index, 100);
    assert_eq!(r.snapshots[1].role, SnapshotRole::Fallback);
    assert_eq!(r.snapshots[1].status, SnapshotStatus::Ok);
    assert_eq!(r.current_snapshot().map(|s| s.meta.index), Some(150));
}

#[test]
fn healthy_file_dir() {
    let dir = file_dir();
    let r = inspect(dir.path());
    assert!(r.is_healthy(), "{:?}", problems(&r));
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_eq!(r.backend, Backend::File);
    assert_eq!(r.node_id, None);
    assert_eq!(r.hard_state, Some(HARD_STATE));
    let log = &r.log;
    assert!(log.complete);
    assert_eq!(
        log.recovered,
        Some(IndexRange {
            first: 151,
            last: 210
        })
    );
    assert_eq!(log.recovered_accounted_bytes, Some(60 * 1016));
    // The first segment went with the snapshot at 100; the rest stay back to it.
    let stored = log.stored.expect("stored");
    assert!(stored.first > 1 && stored.first <= 101, "{stored:?}");
    assert_eq!(stored.last, 210);
    let segs = segments(dir.path());
    assert_eq!(log.segments, Some(segs.len() as u64));
    assert!(segs.len() >= 2, "{segs:?}");
    let on_disk: u64 = segs
        .iter()
        .map(|p| fs::metadata(p).expect("stat").len())
        .sum();
    assert_eq!(log.bytes_on_disk, on_disk);
    check_snapshots(&r);
}

#[test]
fn node_id_comes_from_the_directory_name_only() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("node-7");
    populate(&config(Backend::File, &dir));
    let r = inspect(&dir);
    assert_eq!((r.node_id, r.node_id_from_dir_name), (None, Some(7)));
    assert_eq!(
        node_id_from_dir_name(Path::new("/var/lib/raftkv/3")),
        Some(3)
    );
    assert_eq!(node_id_from_dir_name(Path::new("/x/node-0")), None);
    assert_eq!(node_id_from_dir_name(Path::new("/x/data")), None);
}

#[test]
fn torn_tail_is_a_note_and_is_not_cut() {
    let dir = file_dir();
    let last = segments(dir.path()).pop().expect("a segment");
    let len = fs::metadata(&last).expect("stat").len();
    // Half of a record header: a write torn by a crash.
    fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open")
        .write_all(&[0x11, 0x22, 0x33, 0x44, 0x10, 0, 0])
        .expect("append");
    let r = inspect(dir.path());
    assert!(r.is_healthy(), "{:?}", problems(&r));
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].contains("torn tail"), "{}", r.notes[0]);
    assert!(
        r.notes[0].contains(&format!("offset {len}")),
        "{}",
        r.notes[0]
    );
    assert_eq!(fs::metadata(&last).expect("stat").len(), len + 7);
    assert_eq!(r.hard_state, Some(HARD_STATE));
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_corruption() {
    let dir = file_dir();
    let segs = segments(dir.path());
    let sealed = &segs[0];
    let len = fs::metadata(sealed).expect("stat").len();
    flip(sealed, len / 2);
    let r = inspect(dir.path());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&sealed.display().to_string()), "{}", p[0]);
    assert!(p[0].contains("corrupt log record"), "{}", p[0]);
    assert!(p[0].contains("at offset"), "{}", p[0]);
    // What was readable is still reported.
    assert!(!r.log.complete);
    assert_eq!(r.log.segments, Some(segs.len() as u64));
    check_snapshots(&r);
}

#[test]
fn bad_record_followed_by_good_ones_in_the_last_segment_is_corruption() {
    let dir = file_dir();
    let last = segments(dir.path()).pop().expect("segment");
    // The STATE record ends at 32 + 12 + 48; the first record after it starts there.
    flip(&last, 32 + 12 + 48 + 20);
    let r = inspect(dir.path());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&last.display().to_string()), "{}", p[0]);
    assert!(p[0].contains("a valid record follows"), "{}", p[0]);
}

#[test]
fn flipped_byte_in_a_snapshot_frame_is_reported_and_recovery_falls_back() {
    let dir = file_dir();
    let snap = snapshot_path(dir.path(), 150, 2);
    // Inside the first frame's compressed bytes (72-byte header, 12-byte frame header).
    flip(&snap, 72 + 12 + 10);
    let r = inspect(dir.path());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&snap.display().to_string()), "{}", p[0]);
    assert!(p[0].contains("offset 72"), "{}", p[0]);
    assert_eq!(r.snapshots[0].role, SnapshotRole::Skipped);
    assert!(matches!(r.snapshots[0].status, SnapshotStatus::Corrupt(_)));
    assert_eq!(r.snapshots[1].role, SnapshotRole::Current);
    // The log was kept back to the fallback, so it still resolves.
    assert!(r.log.complete);
    assert_eq!(r.log.recovered.map(|x| x.first), Some(101));
    assert!(
        r.notes.iter().any(|n| n.contains("index 100")),
        "{:?}",
        r.notes
    );
}

#[test]
fn truncated_snapshot_is_corruption() {
    let dir = file_dir();
    let snap = snapshot_path(dir.path(), 150, 2);
    let len = fs::metadata(&snap).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .expect("open")
        .set_len(len / 2)
        .expect("truncate");
    let r = inspect(dir.path());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&snap.display().to_string()), "{}", p[0]);
    assert!(p[0].contains("corrupt snapshot header"), "{}", p[0]);
    assert_eq!(r.snapshots[0].file_bytes, len / 2);
}

#[test]
fn log_that_needs_a_lost_snapshot_is_corruption() {
    let dir = file_dir();
    fs::remove_file(snapshot_path(dir.path(), 150, 2)).expect("rm");
    flip(&snapshot_path(dir.path(), 100, 1), 72 + 12 + 10);
    let r = inspect(dir.path());
    let p = problems(&r);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        r.problems
            .iter()
            .any(|e| matches!(e, StorageError::MissingSnapshot { .. })),
        "{p:?}"
    );
    assert!(!r.log.complete);
    // The hard state the records give is still shown.
    assert_eq!(r.hard_state, Some(HARD_STATE));
}

#[test]
fn missing_or_damaged_identity() {
    let dir = file_dir();
    let id = dir.path().join("IDENTITY");
    flip(&id, 3);
    let r = inspect(dir.path());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&id.display().to_string()), "{}", p[0]);
    assert!(p[0].contains("at offset 0"), "{}", p[0]);
    assert!(r.log.complete, "the log is still read");

    fs::remove_file(&id).expect("rm");
    let r = inspect(dir.path());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("IDENTITY") && p[0].contains("missing"),
        "{}",
        p[0]
    );
    assert_eq!(r.backend, Backend::File);
}

#[test]
fn not_a_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = inspect_dir(dir.path()).expect_err("empty");
    assert!(e.to_string().contains("not a raftkv data directory"), "{e}");
    fs::write(dir.path().join("notes.txt"), b"hi").expect("write");
    let e = inspect_dir(dir.path()).expect_err("foreign");
    assert!(e.to_string().contains("not a raftkv data directory"), "{e}");
    let e = inspect_dir(&dir.path().join("missing")).expect_err("missing");
    assert!(matches!(e, StorageError::Io { .. }), "{e}");
    let e = inspect_dir(&dir.path().join("notes.txt")).expect_err("a file");
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert_eq!(tree(dir.path()).len(), 1);
}

#[cfg(not(feature = "rocksdb"))]
#[test]
fn rocksdb_dir_without_the_feature_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("db")).expect("mkdir");
    let e = inspect_dir(dir.path()).expect_err("no rocksdb");
    assert!(e.to_string().contains("--features rocksdb"), "{e}");
}

#[cfg(feature = "rocksdb")]
mod rocksdb {
    use super::*;

    fn rocks_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        populate(&config(Backend::Rocksdb, dir.path()));
        dir
    }

    #[test]
    fn healthy_rocksdb_dir() {
        let dir = rocks_dir();
        let r = inspect(dir.path());
        assert!(r.is_healthy(), "{:?}", problems(&r));
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert_eq!(r.backend, Backend::Rocksdb);
        assert_eq!(r.hard_state, Some(HARD_STATE));
        assert!(r.log.complete);
        assert_eq!(
            r.log.recovered,
            Some(IndexRange {
                first: 151,
                last: 210
            })
        );
        assert_eq!(r.log.recovered_accounted_bytes, Some(60 * 1016));
        // Entries above the fallback snapshot stay on disk.
        assert_eq!(
            r.log.stored,
            Some(IndexRange {
                first: 101,
                last: 210
            })
        );
        assert!(r.log.bytes_on_disk > 0);
        assert_eq!(r.log.segments, None);
        check_snapshots(&r);
    }

    #[test]
    fn corrupt_rocksdb_value_and_snapshot() {
        let dir = rocks_dir();
        {
            let db = ::rocksdb::DB::open_cf(
                &::rocksdb::Options::default(),
                dir.path().join("db"),
                crate::rocks::layout::COLUMN_FAMILIES,
            )
            .expect("open raw db");
            let log = db.cf_handle("log").expect("cf");
            db.put_cf(log, crate::rocks::layout::log_key(160), b"garbage")
                .expect("put");
        }
        let r = inspect(dir.path());
        let p = problems(&r);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("corrupt log entry"), "{}", p[0]);
        assert!(p[0].contains("at offset 160"), "{}", p[0]);
        assert!(p[0].contains(&dir.path().join("db").display().to_string()));
        assert_eq!(
            r.log.stored,
            Some(IndexRange {
                first: 101,
                last: 159
            })
        );

        let dir = rocks_dir();
        let snap = snapshot_path(dir.path(), 150, 2);
        flip(&snap, 72 + 12 + 10);
        let r = inspect(dir.path());
        let p = problems(&r);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains(&snap.display().to_string()), "{}", p[0]);
        assert!(r.log.complete);
        assert_eq!(r.log.recovered.map(|x| x.first), Some(101));
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    }
}
