//! Damaged data in the file backend's directory.
//!
//! Failure modes guarded against: a torn last record that blocks recovery (it must be
//! cut, and appends must continue after it); corruption that is silently skipped or cut
//! (a bad record in a sealed segment, or followed by valid records, must be reported
//! with its file and offset); a damaged snapshot file that is used, or that makes
//! recovery fail although an older valid snapshot and the log cover the state; and a
//! log that needs a snapshot which no longer validates being recovered as if nothing
//! were missing (it must be `MissingSnapshot`).

mod file_support;

use std::fs;
use std::path::{Path, PathBuf};

use file_support::{
    copy_dir, entries, entry, open, payload, read_snapshot, segments, small_config, snapshot_files,
    write_snapshot,
};
use raftkv_storage::snapshot::validate_file;
use raftkv_storage::{
    FilePersister, HardState, Persister, SnapshotMeta, StorageConfig, StorageError, WriteBatch,
};

/// Bytes of a segment header, and of its first (STATE) record.
const SEGMENT_HEADER: u64 = 32;
const STATE_RECORD: u64 = 12 + 48;
/// A batch record holding one 500-byte entry and nothing else.
const ONE_ENTRY_RECORD: u64 = 12 + 8 + 20 + 500;

fn one_by_one(p: &FilePersister, from: u64, to: u64, term: u64) {
    for i in from..=to {
        p.write(&WriteBatch::new().append([entry(i, term)]))
            .expect("write");
    }
}

fn expect_corrupt(r: Result<FilePersister, StorageError>, file: &Path, offset: u64) -> String {
    match r {
        Err(StorageError::Corrupt {
            path,
            offset: at,
            detail,
            ..
        }) => {
            assert_eq!(path, file, "{detail}");
            assert_eq!(at, offset, "{detail}");
            detail
        }
        Err(e) => panic!(
            "expected Corrupt at {} offset {offset}, got {e}",
            file.display()
        ),
        Ok(_) => panic!(
            "expected Corrupt at {} offset {offset}, the store opened",
            file.display()
        ),
    }
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("store");
    let config = small_config();
    let p = open(&dir, &config);
    one_by_one(&p, 1, 10, 1);
    drop(p);
    let seg = segments(&dir).pop().expect("segment");
    let good = fs::metadata(&seg).expect("stat").len();
    assert_eq!(good, SEGMENT_HEADER + STATE_RECORD + 10 * ONE_ENTRY_RECORD);

    // Half of an 11th record, as a crash mid-append leaves it.
    let p = open(&dir, &config);
    one_by_one(&p, 11, 11, 1);
    drop(p);
    file_support::truncate(&seg, good + ONE_ENTRY_RECORD / 2);
    let p = open(&dir, &config);
    assert_eq!(p.recovery_report().torn_tail, Some((seg.clone(), good)));
    assert_eq!(
        fs::metadata(&seg).expect("stat").len(),
        good,
        "the torn tail is cut on disk"
    );
    let r = p.recover().expect("recover");
    assert_eq!(r.entries, entries(1, 10, 1));
    // Appends continue right after the cut.
    one_by_one(&p, 11, 12, 2);
    drop(p);
    let p = open(&dir, &config);
    assert_eq!(p.recovery_report().torn_tail, None);
    let mut want = entries(1, 10, 1);
    want.extend(entries(11, 12, 2));
    assert_eq!(p.recover().expect("recover").entries, want);
    drop(p);

    // A zero-filled tail (the file size reached disk, the data did not).
    let len = fs::metadata(&seg).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len + 4096)
        .expect("extend");
    let p = open(&dir, &config);
    assert_eq!(p.recovery_report().torn_tail, Some((seg.clone(), len)));
    assert_eq!(p.recover().expect("recover").entries, want);
}

#[test]
fn bit_flip_in_a_sealed_segment_is_corruption_named_by_file_and_offset() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("store");
    let config = small_config();
    let p = open(&dir, &config);
    one_by_one(&p, 1, 300, 1);
    drop(p);
    let segs = segments(&dir);
    assert!(segs.len() >= 3);
    let sealed = &segs[0];
    let record = 7;
    let record_at = SEGMENT_HEADER + STATE_RECORD + record * ONE_ENTRY_RECORD;
    let pristine = root.path().join("pristine");
    copy_dir(&dir, &pristine);

    // In an entry's data, in its length field, in the record's crc.
    for within in [100, 12 + 8 + 16, 0] {
        fs::remove_dir_all(&dir).expect("reset");
        copy_dir(&pristine, &dir);
        file_support::flip_bit(sealed, record_at + within, 3);
        let detail = expect_corrupt(FilePersister::open(&dir, config.clone()), sealed, record_at);
        assert!(detail.contains("sealed segment"), "{detail}");
    }
    // The segment header itself.
    fs::remove_dir_all(&dir).expect("reset");
    copy_dir(&pristine, &dir);
    file_support::flip_bit(sealed, 20, 0);
    let e = FilePersister::open(&dir, config.clone()).expect_err("bad header");
    assert!(
        matches!(&e, StorageError::Corrupt { path, offset: 0, .. } if path == sealed),
        "{e}"
    );
}

#[test]
fn bad_record_followed_by_valid_ones_in_the_active_segment_is_not_cut() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("store");
    let config = small_config();
    let p = open(&dir, &config);
    one_by_one(&p, 1, 20, 1);
    drop(p);
    let seg = segments(&dir).pop().expect("segment");
    let len_before = fs::metadata(&seg).expect("stat").len();
    let record_at = SEGMENT_HEADER + STATE_RECORD + 5 * ONE_ENTRY_RECORD;
    // The length field: the record now claims to run past the end of the file.
    file_support::flip_bit(&seg, record_at + 4 + 3, 6);
    let detail = expect_corrupt(FilePersister::open(&dir, config.clone()), &seg, record_at);
    assert!(detail.contains("a valid record follows"), "{detail}");
    assert_eq!(
        fs::metadata(&seg).expect("stat").len(),
        len_before,
        "nothing was cut"
    );
}

/// A store with entries 1..=300 (term 1), snapshot S1 at 200, entries 301..=330 and
/// snapshot S2 at 320; returns the store's directory.
fn two_snapshots(root: &Path, config: &StorageConfig) -> PathBuf {
    let dir = root.join("store");
    let p = open(&dir, config);
    for from in (1..=291u64).step_by(10) {
        p.write(
            &WriteBatch::new()
                .hard_state(HardState {
                    term: 1,
                    voted_for: Some(3),
                    commit: from,
                })
                .append(entries(from, from + 9, 1)),
        )
        .expect("write");
    }
    write_snapshot(&p, S1, &payload(S1, 50_000)).expect("S1");
    one_by_one(&p, 301, 330, 1);
    write_snapshot(&p, S2, &payload(S2, 60_000)).expect("S2");
    assert_eq!(snapshot_files(&dir).len(), 2);
    dir
}

const S1: SnapshotMeta = SnapshotMeta {
    index: 200,
    term: 1,
};
const S2: SnapshotMeta = SnapshotMeta {
    index: 320,
    term: 1,
};

/// Recovery after S2 was rejected: S1 and the log after it, S2 listed as skipped.
fn assert_falls_back_to_s1(dir: &Path, config: &StorageConfig, s2_path: &Path, label: &str) {
    let p = FilePersister::open(dir, config.clone()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let r = p.recover().expect("recover");
    assert_eq!(r.snapshot, Some(S1), "{label}");
    assert_eq!(r.entries, entries(201, 330, 1), "{label}");
    assert!(r.hard_state.commit >= 291, "{label}");
    assert_eq!(r.skipped_snapshots.len(), 1, "{label}");
    assert_eq!(
        r.skipped_snapshots[0].location,
        s2_path.display().to_string(),
        "{label}"
    );
    assert_eq!(
        read_snapshot(&p),
        Some((S1, payload(S1, 50_000))),
        "{label}"
    );
    assert_eq!(p.recovery_report().noted_snapshot, Some(S1), "{label}");
    // The fallback is durable and the store keeps working.
    p.write(&WriteBatch::new().append([entry(331, 2)]))
        .expect("write after fallback");
    drop(p);
    let r2 = open(dir, config).recover().expect("recover again");
    assert_eq!(r2.snapshot, Some(S1), "{label}");
    assert_eq!(r2.last_index(), 331, "{label}");
}

#[test]
fn bit_flips_anywhere_in_a_snapshot_file_are_detected_and_recovery_falls_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let dir = two_snapshots(root.path(), &config);
    let s2_rel = snapshot_files(&dir)[1]
        .strip_prefix(&dir)
        .expect("under dir")
        .to_path_buf();
    let len = fs::metadata(dir.join(&s2_rel)).expect("stat").len();
    assert!(len > 2000, "S2 spans several frames ({len} bytes)");
    let pristine = root.path().join("pristine");
    copy_dir(&dir, &pristine);
    let frame_header = 72u64;
    let mut positions: Vec<u64> = (0..72).step_by(3).collect(); // the file header
    positions.extend(frame_header..frame_header + 12); // the first frame header
    positions.extend([
        frame_header + 12,
        frame_header + 40,
        len / 2,
        len / 2 + 1,
        len - 2,
        len - 1,
    ]);
    for (n, &pos) in positions.iter().enumerate() {
        let case = root.path().join(format!("case-{n}"));
        copy_dir(&pristine, &case);
        let s2 = case.join(&s2_rel);
        file_support::flip_bit(&s2, pos, (n % 8) as u8);
        let e = validate_file(&s2).expect_err("a flipped bit must be detected");
        let msg = e.to_string();
        assert!(
            matches!(e, StorageError::Corrupt { .. }),
            "byte {pos}: {msg}"
        );
        assert!(
            msg.contains(&s2.display().to_string()) && msg.contains("offset"),
            "byte {pos}: {msg}"
        );
        assert_falls_back_to_s1(&case, &config, &s2, &format!("flip at byte {pos}"));
    }
    // The pristine copy validates.
    let info = validate_file(&pristine.join(&s2_rel)).expect("valid");
    assert_eq!(
        (info.meta, info.uncompressed_bytes, info.stored_bytes),
        (S2, 60_000, len)
    );
}

#[test]
fn truncated_snapshot_file_is_rejected_and_recovery_falls_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let dir = two_snapshots(root.path(), &config);
    let s2_rel = snapshot_files(&dir)[1]
        .strip_prefix(&dir)
        .expect("under dir")
        .to_path_buf();
    let len = fs::metadata(dir.join(&s2_rel)).expect("stat").len();
    let pristine = root.path().join("pristine");
    copy_dir(&dir, &pristine);
    for (n, cut) in [0, 10, 71, 72, 80, 500, len / 2, len - 1]
        .into_iter()
        .enumerate()
    {
        let case = root.path().join(format!("cut-{n}"));
        copy_dir(&pristine, &case);
        let s2 = case.join(&s2_rel);
        file_support::truncate(&s2, cut);
        let e = validate_file(&s2).expect_err("truncated");
        assert!(e.to_string().contains(&s2.display().to_string()), "{e}");
        assert_falls_back_to_s1(&case, &config, &s2, &format!("cut at {cut}"));
    }
}

#[test]
fn log_that_needs_a_rejected_snapshot_is_missing_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let dir = root.path().join("store");
    let p = open(&dir, &config);
    one_by_one(&p, 1, 120, 1);
    let s1 = SnapshotMeta {
        index: 100,
        term: 1,
    };
    write_snapshot(&p, s1, &payload(s1, 5000)).expect("S1");
    // A snapshot from a leader far ahead: it supersedes the whole log.
    let s2 = SnapshotMeta {
        index: 1000,
        term: 4,
    };
    write_snapshot(&p, s2, &payload(s2, 5000)).expect("S2");
    assert_eq!(p.recover().expect("recover").entries, vec![]);
    one_by_one(&p, 1001, 1010, 4);
    drop(p);
    let s2_path = snapshot_files(&dir)[1].clone();
    file_support::flip_bit(&s2_path, 100, 1);
    match FilePersister::open(&dir, config.clone()) {
        Err(StorageError::MissingSnapshot {
            path,
            log_first,
            snapshot_index,
            detail,
        }) => {
            assert_eq!(path, dir);
            assert_eq!(log_first, 1001);
            assert_eq!(snapshot_index, 100);
            assert!(detail.contains(&s2_path.display().to_string()), "{detail}");
        }
        Err(e) => panic!("expected MissingSnapshot, got {e}"),
        Ok(p) => panic!("expected MissingSnapshot, recovered {:?}", p.recover()),
    }
    // Without any snapshot file at all, the same.
    fs::remove_dir_all(dir.join("snapshots")).expect("remove snapshots");
    let e = FilePersister::open(&dir, config).expect_err("snapshots gone");
    assert!(
        matches!(
            e,
            StorageError::MissingSnapshot {
                snapshot_index: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn falls_back_to_the_older_snapshot_across_compacted_segments() {
    // Segments deleted after S2's commit held only entries at or below S1, so a
    // fallback to S1 still finds its log.
    let root = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let dir = two_snapshots(root.path(), &config);
    let segs = segments(&dir);
    let first = segs[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_ne!(
        first, "log-00000000000000000001.seg",
        "commit deleted old segments"
    );
    let p = open(&dir, &config);
    p.compact(S2.index).expect("compact");
    drop(p);
    let s2 = snapshot_files(&dir)[1].clone();
    fs::write(&s2, b"not a snapshot").expect("clobber");
    assert_falls_back_to_s1(&dir, &config, &s2, "clobbered S2");
}

#[test]
fn foreign_directories_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let rocks = root.path().join("rocks");
    fs::create_dir_all(&rocks).expect("mkdir");
    fs::write(rocks.join("CURRENT"), b"MANIFEST-000005\n").expect("write");
    fs::write(rocks.join("000004.sst"), b"").expect("write");
    let e = FilePersister::open(&rocks, config.clone()).expect_err("rocksdb dir");
    assert!(e.to_string().contains("RocksDB"), "{e}");

    let other = root.path().join("other");
    fs::create_dir_all(&other).expect("mkdir");
    fs::write(other.join("notes.txt"), b"hello").expect("write");
    let e = FilePersister::open(&other, config.clone()).expect_err("unknown dir");
    assert!(e.to_string().contains("notes.txt"), "{e}");

    let ours = root.path().join("ours");
    drop(open(&ours, &config));
    let mut id = fs::read(ours.join("IDENTITY")).expect("identity");
    id[12..28].copy_from_slice(b"rocksdb\0\0\0\0\0\0\0\0\0");
    let crc = crc32(&id[..36]);
    id[36..40].copy_from_slice(&crc.to_le_bytes());
    fs::write(ours.join("IDENTITY"), &id).expect("write");
    let e = FilePersister::open(&ours, config).expect_err("other backend");
    assert!(e.to_string().contains("\"rocksdb\" backend"), "{e}");
}

/// crc32 (IEEE), bit by bit: the identity file's checksum, computed independently.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
