//! The snapshot file format and [`SnapshotStore`], used directly (as the RocksDB backend
//! does).
//!
//! Failure modes guarded against: a streamed payload that comes back different (frame
//! boundaries, the two-thread pipelines); a reader that breaks when a newer snapshot is
//! committed and its file deleted; more than two snapshots retained, or the wrong two;
//! leftover temp files; a stale snapshot replacing a newer one; a failed publish that
//! does not stop the store.

mod file_support;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use raftkv_storage::fault::FaultPlan;
use raftkv_storage::snapshot::{SnapshotFileReader, SnapshotStore, validate_file};
use raftkv_storage::{Backend, Durability, SnapshotMeta, StorageConfig, StorageError};

fn config(frame_bytes: u32) -> StorageConfig {
    StorageConfig {
        snapshot_frame_bytes: frame_bytes,
        ..StorageConfig::new(Backend::File, "unset")
    }
}

/// The byte at `pos` of the streaming test's payload: compressible, position dependent.
fn byte_at(pos: u64) -> u8 {
    let block = pos / 64;
    let x = block.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59; // 0..32
    if pos % 64 < 40 {
        b'a' + (x as u8 % 26)
    } else {
        (pos % 251) as u8
    }
}

fn write_stream(store: &SnapshotStore, meta: SnapshotMeta, len: u64, piece: usize) {
    let mut w = store.begin(meta).expect("begin");
    let mut buf = vec![0u8; piece];
    let mut pos = 0u64;
    while pos < len {
        let n = piece.min((len - pos) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(pos + i as u64);
        }
        w.write_all(&buf[..n]).expect("write");
        pos += n as u64;
    }
    let info = w.finish().expect("finish");
    assert_eq!(info.uncompressed_bytes, len);
    assert!(
        info.stored_bytes < len / 2,
        "the payload compresses: {info:?}"
    );
}

fn check_stream(mut r: SnapshotFileReader, len: u64, piece: usize) {
    assert_eq!(r.payload_len(), len);
    let mut buf = vec![0u8; piece];
    let mut pos = 0u64;
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b != byte_at(pos + i as u64) {
                panic!("byte {} differs", pos + i as u64);
            }
        }
        pos += n as u64;
    }
    assert_eq!(pos, len);
}

#[test]
fn streams_64_mib_in_small_writes_and_reads() {
    let root = tempfile::tempdir().expect("tempdir");
    let len = 64u64 << 20;
    for threads in [1, 2] {
        let dir = root.path().join(format!("threads-{threads}"));
        let (store, skipped) = SnapshotStore::open(&dir, &config(1 << 20), None).expect("open");
        assert!(skipped.is_empty());
        store.set_threads(threads);
        let meta = SnapshotMeta { index: 7, term: 2 };
        // Odd sizes, so that writes and reads straddle frame boundaries.
        write_stream(&store, meta, len, 4093);
        let reader = store
            .open_current()
            .expect("open current")
            .expect("a snapshot");
        assert_eq!(reader.meta(), meta);
        check_stream(reader, len, 3001);
        // The other thread count reads it too.
        let path = store.current().expect("current").path;
        check_stream(
            SnapshotFileReader::open_with_threads(&path, 3 - threads).expect("open"),
            len,
            65_536,
        );
    }
}

/// Reads alternately through `Read` and through whole pieces (`next_chunk`), checking
/// every byte; `slow` does extra work per piece, so the helper runs ahead.
fn check_pieces(mut r: SnapshotFileReader, len: u64, slow: bool) {
    use raftkv_storage::SnapshotReader;
    let mut pos = 0u64;
    let check = |bytes: &[u8], pos: &mut u64| {
        for (i, &b) in bytes.iter().enumerate() {
            assert_eq!(b, byte_at(*pos + i as u64), "byte {}", *pos + i as u64);
        }
        *pos += bytes.len() as u64;
    };
    let mut buf = vec![0u8; 777];
    for round in 0.. {
        if round % 3 == 0 {
            let n = r.read(&mut buf).expect("read");
            check(&buf[..n], &mut pos);
            continue;
        }
        let Some(piece) = r.next_chunk().expect("piece") else {
            break;
        };
        assert!(!piece.is_empty(), "pieces are never empty");
        if slow {
            let sum: u64 = piece.iter().map(|&b| u64::from(b)).sum();
            assert!(sum > 0);
        }
        check(&piece, &mut pos);
    }
    assert_eq!(pos, len);
    assert!(r.next_chunk().expect("after the end").is_none());
}

#[test]
fn hands_out_whole_frames_mixed_with_reads() {
    let root = tempfile::tempdir().expect("tempdir");
    let len = (8u64 << 20) + 12_345;
    let (store, _) = SnapshotStore::open(root.path(), &config(64 << 10), None).expect("open");
    write_stream(&store, SnapshotMeta { index: 3, term: 1 }, len, 10_007);
    let path = store.current().expect("current").path;
    for threads in [1, 2] {
        for slow in [false, true] {
            let r = SnapshotFileReader::open_with_threads(&path, threads).expect("open");
            check_pieces(r, len, slow);
        }
    }
}

fn snapshot(store: &SnapshotStore, index: u64, bytes: &[u8]) {
    let mut w = store.begin(SnapshotMeta { index, term: 1 }).expect("begin");
    w.write_all(bytes).expect("write");
    w.finish().expect("finish");
}

fn read_all(mut r: SnapshotFileReader) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("read");
    out
}

#[test]
fn a_reader_survives_newer_commits_and_the_deletion_of_its_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let (store, _) = SnapshotStore::open(root.path(), &config(4096), None).expect("open");
    let old: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    snapshot(&store, 1, &old);
    let old_path = store.current().expect("current").path;
    let mut reader = store.open_current().expect("open").expect("some");
    let mut head = vec![0u8; 10_000];
    reader.read_exact(&mut head).expect("read head");
    snapshot(&store, 2, b"second");
    snapshot(&store, 3, b"third");
    assert!(!old_path.exists(), "retention deleted the oldest file");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("read rest");
    head.extend(rest);
    assert_eq!(head, old);
    assert_eq!(
        read_all(store.open_current().expect("open").expect("some")),
        b"third"
    );
}

#[test]
fn keeps_the_newest_two_removes_temp_files_and_reports_invalid_ones() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let (store, _) = SnapshotStore::open(dir, &config(4096), None).expect("open");
    assert!(store.current().is_none() && store.open_current().expect("open").is_none());
    for i in 1..=4 {
        snapshot(&store, i * 10, format!("payload {i}").as_bytes());
    }
    assert_eq!(store.current().expect("current").meta.index, 40);
    assert_eq!(store.previous().expect("previous").meta.index, 30);
    assert_eq!(file_names(dir), vec![name(30), name(40)]);
    // An unfinished write and a damaged newest file.
    let w = store
        .begin(SnapshotMeta { index: 50, term: 1 })
        .expect("begin");
    std::mem::forget(w); // as if the process died: the temp file stays
    drop(store);
    let newest = dir.join(name(40));
    file_support::flip_bit(&newest, 80, 2);
    let (store, skipped) = SnapshotStore::open(dir, &config(4096), None).expect("reopen");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].location, newest.display().to_string());
    assert_eq!(store.current().expect("current").meta.index, 30);
    assert!(store.previous().is_none());
    assert_eq!(
        file_names(dir),
        vec![name(30), name(40)],
        "temp file removed, bad file kept"
    );
    // The next commit makes the damaged file obsolete.
    snapshot(&store, 45, b"45");
    assert_eq!(file_names(dir), vec![name(30), name(45)]);
}

fn name(index: u64) -> String {
    raftkv_storage::snapshot::file_name(SnapshotMeta { index, term: 1 })
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn stale_commits_are_rejected_and_concurrent_writers_are_serialized() {
    let root = tempfile::tempdir().expect("tempdir");
    let (store, _) = SnapshotStore::open(root.path(), &config(4096), None).expect("open");
    snapshot(&store, 10, b"ten");
    let mut w = store
        .begin(SnapshotMeta { index: 10, term: 2 })
        .expect("begin");
    w.write_all(b"again").expect("write");
    let e = w.finish().expect_err("stale");
    assert!(
        matches!(
            e,
            StorageError::StaleSnapshot {
                index: 10,
                current: 10
            }
        ),
        "{e}"
    );
    // Threads sharing the store: every commit either wins or is stale.
    let store = Arc::new(store);
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut w = store
                    .begin(SnapshotMeta {
                        index: 20 + t,
                        term: 1,
                    })
                    .expect("begin");
                let data: Vec<u8> = (0..50_000u64)
                    .map(|i| ((i * (t + 1)) % 256) as u8)
                    .collect();
                w.write_all(&data).expect("write");
                match w.finish() {
                    Ok(info) => assert_eq!(info.uncompressed_bytes, 50_000),
                    Err(StorageError::StaleSnapshot { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("join");
    }
    let cur = store.current().expect("current");
    validate_file(&cur.path).expect("valid");
    assert!(store.previous().expect("previous").meta.index < cur.meta.index);
}

#[test]
fn empty_payload_round_trips() {
    let root = tempfile::tempdir().expect("tempdir");
    let (store, _) = SnapshotStore::open(root.path(), &config(4096), None).expect("open");
    snapshot(&store, 3, b"");
    let info = validate_file(&store.current().expect("current").path).expect("valid");
    assert_eq!(
        (info.uncompressed_bytes, info.frame_count, info.stored_bytes),
        (0, 0, 72)
    );
    assert!(read_all(store.open_current().expect("open").expect("some")).is_empty());
}

#[test]
fn a_failed_publish_poisons_the_store_and_an_early_failure_does_not() {
    let root = tempfile::tempdir().expect("tempdir");
    let plan = Arc::new(FaultPlan::new());
    let cfg = StorageConfig {
        durability: Durability::Immediate,
        ..config(4096)
    };
    let (store, _) = SnapshotStore::open(root.path(), &cfg, Some(Arc::clone(&plan))).expect("open");
    plan.fail_at("snapshot.before_write", 1);
    let mut w = store
        .begin(SnapshotMeta { index: 1, term: 1 })
        .expect("begin");
    w.write_all(&[7u8; 10_000]).expect("write");
    assert!(matches!(w.finish(), Err(StorageError::Injected { .. })));
    assert!(store.current().is_none());
    snapshot(&store, 2, b"fine");
    assert_eq!(
        plan.distinct_points(),
        [
            "snapshot.write_frame",
            "snapshot.before_write",
            "snapshot.after_write",
            "snapshot.before_fsync",
            "snapshot.after_fsync",
            "snapshot.before_rename",
            "snapshot.after_rename",
            "snapshot.before_dir_fsync",
            "snapshot.after_dir_fsync",
        ]
    );
    plan.fail_at("snapshot.before_dir_fsync", 1);
    let mut w = store
        .begin(SnapshotMeta { index: 3, term: 1 })
        .expect("begin");
    w.write_all(b"three").expect("write");
    assert!(matches!(w.finish(), Err(StorageError::Injected { .. })));
    assert!(matches!(
        store.begin(SnapshotMeta { index: 4, term: 1 }),
        Err(StorageError::Poisoned { .. })
    ));
    // The rename happened: a fresh store finds snapshot 3.
    drop(store);
    let (store, _) = SnapshotStore::open(root.path(), &cfg, None).expect("reopen");
    assert_eq!(store.current().expect("current").meta.index, 3);
    assert_eq!(
        read_all(store.open_current().expect("open").expect("some")),
        b"three"
    );
}
