//! `raftkv inspect DIR`, run as a binary: its output, its exit status, and that it
//! leaves the directory untouched.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use raftkv::storage::{Backend, Entry, HardState, SnapshotMeta, StorageConfig, WriteBatch};

/// Entries 1..=120 (term 1, then 2 from 61), a snapshot at 50 and one at 100, then the
/// hard state. 64 KiB segments, so the file backend has several.
fn populate(backend: Backend, dir: &Path) {
    let mut config = StorageConfig::new(backend, dir);
    config.segment_bytes = 64 << 10;
    config.snapshot_frame_bytes = 4096;
    let p = config.open().expect("open");
    let term = |i: u64| if i <= 60 { 1 } else { 2 };
    for first in (1..=120).step_by(4) {
        let entries = (first..first + 4).map(|index| Entry {
            index,
            term: term(index),
            data: vec![b'a' + (index % 26) as u8; 1000],
        });
        p.write(&WriteBatch::new().append(entries)).expect("write");
    }
    for index in [50, 100] {
        let mut w = p
            .begin_snapshot(SnapshotMeta {
                index,
                term: term(index),
            })
            .expect("begin");
        for k in 0..index * 100 {
            write!(w, "key{k:06}=v{};", k % 13).expect("payload");
        }
        w.commit().expect("commit");
    }
    p.write(&WriteBatch::new().hard_state(HardState {
        term: 4,
        voted_for: Some(3),
        commit: 110,
    }))
    .expect("hard state");
}

fn inspect(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .arg("inspect")
        .arg(dir)
        .output()
        .expect("run raftkv")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                out.insert(path.clone(), Vec::new());
                stack.push(path);
            } else {
                let bytes = fs::read(&path).expect("read");
                out.insert(path, bytes);
            }
        }
    }
    out
}

/// Runs inspect and checks that the directory is byte-for-byte unchanged.
fn inspect_unchanged(dir: &Path) -> Output {
    let before = tree(dir);
    let out = inspect(dir);
    assert!(before == tree(dir), "inspect changed {}", dir.display());
    out
}

fn snapshot(dir: &Path, index: u64, term: u64) -> PathBuf {
    dir.join("snapshots")
        .join(format!("snap-{index:020}-{term:020}.rks"))
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).expect("read");
    bytes[offset] ^= 0x5a;
    fs::write(path, bytes).expect("write");
}

fn check_healthy(out: &Output, backend: &str) -> String {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    for needle in [
        format!("backend         {backend}"),
        "node id         not recorded (the directory name suggests 2)".into(),
        "hard state      term 4, voted for 3, commit 110".into(),
        "log recovered   entries 101..=120 (20 entries)".into(),
        "snapshots       2 files; recovery uses index 100".into(),
        "status          ok".into(),
    ] {
        assert!(stdout.contains(&needle), "missing {needle:?} in\n{stdout}");
    }
    let current = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("current"))
        .unwrap_or_else(|| panic!("no current snapshot line in\n{stdout}"));
    for needle in ["index      100", "term     2", "checksum ok", "snap-"] {
        assert!(current.contains(needle), "{needle:?} not in {current:?}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("fallback") && l.contains("checksum ok")),
        "{stdout}"
    );
    stdout
}

fn member_dir(parent: &tempfile::TempDir, backend: Backend) -> PathBuf {
    let dir = parent.path().join("node-2");
    populate(backend, &dir);
    dir
}

#[test]
fn healthy_file_dir() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = member_dir(&parent, Backend::File);
    let out = inspect_unchanged(&dir);
    let stdout = check_healthy(&out, "file");
    let log = stdout
        .lines()
        .find(|l| l.starts_with("log on disk"))
        .expect("log line");
    assert!(log.contains("..=120") && log.contains("segments"), "{log}");
    println!("{stdout}");
}

#[test]
fn torn_tail_is_a_warning_with_exit_0() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = member_dir(&parent, Backend::File);
    let mut segs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let last = segs.pop().expect("segment");
    fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open")
        .write_all(&[1, 2, 3, 4, 5])
        .expect("append");
    let out = inspect_unchanged(&dir);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("warning: torn tail") && stdout.contains(&last.display().to_string()),
        "{stdout}"
    );
}

#[test]
fn corrupt_log_record_exits_1_and_names_the_segment() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = member_dir(&parent, Backend::File);
    let first = dir.join("log-00000000000000000001.seg");
    let len = fs::metadata(&first).expect("first segment").len() as usize;
    flip(&first, len / 2);
    let out = inspect_unchanged(&dir);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains(&first.display().to_string()), "{stderr}");
    assert!(stderr.contains("at offset"), "{stderr}");
    // Still prints what was readable.
    assert!(stdout.contains("backend         file"), "{stdout}");
    assert!(stdout.contains("checksum ok"), "{stdout}");
    assert!(stdout.contains("status          CORRUPT"), "{stdout}");
}

#[test]
fn corrupt_snapshot_exits_1_and_names_the_file() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = member_dir(&parent, Backend::File);
    let snap = snapshot(&dir, 100, 2);
    flip(&snap, 72 + 12 + 10);
    let out = inspect_unchanged(&dir);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains(&snap.display().to_string()), "{stderr}");
    assert!(stderr.contains("offset 72"), "{stderr}");
    assert!(stdout.contains("checksum CORRUPT"), "{stdout}");
}

#[test]
fn garbled_identity_exits_1() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = member_dir(&parent, Backend::File);
    fs::write(dir.join("IDENTITY"), b"garbage").expect("write");
    let out = inspect_unchanged(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&dir.join("IDENTITY").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let parent = tempfile::tempdir().expect("tempdir");
    let out = inspect(&parent.path().join("missing"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("missing"));
    let out = inspect(parent.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a raftkv data directory"),
        "{}",
        text(&out.stderr)
    );
    assert!(fs::read_dir(parent.path()).expect("ls").next().is_none());
}

#[cfg(feature = "rocksdb")]
#[test]
fn healthy_rocksdb_dir() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = member_dir(&parent, Backend::Rocksdb);
    let out = inspect_unchanged(&dir);
    let stdout = check_healthy(&out, "rocksdb");
    // Entries above the fallback snapshot (50) stay on disk.
    assert!(
        stdout.contains("log on disk     entries 51..=120 (70 entries)"),
        "{stdout}"
    );
    println!("{stdout}");
}

#[cfg(feature = "rocksdb")]
#[test]
fn corrupt_snapshot_in_a_rocksdb_dir_exits_1() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = member_dir(&parent, Backend::Rocksdb);
    let snap = snapshot(&dir, 100, 2);
    let len = fs::metadata(&snap).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .expect("open")
        .set_len(len - 1)
        .expect("truncate");
    let out = inspect_unchanged(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&snap.display().to_string()));
}

#[cfg(not(feature = "rocksdb"))]
#[test]
fn rocksdb_dir_without_the_feature_exits_2() {
    let parent = tempfile::tempdir().expect("tempdir");
    fs::create_dir(parent.path().join("db")).expect("mkdir");
    let out = inspect(parent.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--features rocksdb"));
}
