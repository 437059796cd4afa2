//! Helpers shared by the file backend's integration tests: deterministic entries and
//! payloads, directory copies and byte-level damage.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use raftkv_storage::{
    Backend, Entry, FilePersister, Persister, SnapshotInfo, SnapshotMeta, StorageConfig,
    StorageError,
};

/// Small segments and frames, so that a few hundred entries span several segments and a
/// small snapshot several frames.
pub fn small_config() -> StorageConfig {
    StorageConfig {
        segment_bytes: 64 << 10,
        snapshot_frame_bytes: 4096,
        zstd_level: 3,
        ..StorageConfig::new(Backend::File, "unset")
    }
}

/// Entry `index` of term `term`, with 500 bytes of data derived from both.
pub fn entry(index: u64, term: u64) -> Entry {
    let mut data = Vec::with_capacity(500);
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ term;
    while data.len() < 500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Printable and repetitive enough to look like real commands.
        data.extend_from_slice(format!("put key{} v{};", x % 1000, x % 97).as_bytes());
    }
    data.truncate(500);
    Entry { index, term, data }
}

/// Entries `from..=to` of term `term`.
pub fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, term)).collect()
}

/// A deterministic, compressible payload of `len` bytes for snapshot `meta`.
pub fn payload(meta: SnapshotMeta, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut n = meta.index * 1_000_003 + meta.term;
    while out.len() < len {
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(
            format!("user:{:08}=value-{:016x}|", (n >> 40) % 100_000, n).as_bytes(),
        );
    }
    out.truncate(len);
    out
}

/// Writes and commits a snapshot.
pub fn write_snapshot(
    p: &dyn Persister,
    meta: SnapshotMeta,
    bytes: &[u8],
) -> Result<SnapshotInfo, StorageError> {
    let mut w = p.begin_snapshot(meta)?;
    for chunk in bytes.chunks(1000) {
        w.write_all(chunk)
            .map_err(|e| StorageError::io("test write", "-", e))?;
    }
    w.commit()
}

/// The current snapshot's meta and payload.
pub fn read_snapshot(p: &dyn Persister) -> Option<(SnapshotMeta, Vec<u8>)> {
    let mut r = p.open_snapshot().expect("open snapshot")?;
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).expect("read snapshot");
    assert_eq!(bytes.len() as u64, r.payload_len());
    Some((r.meta(), bytes))
}

/// Opens `dir` with `config`.
pub fn open(dir: &Path, config: &StorageConfig) -> FilePersister {
    FilePersister::open(dir, config.clone())
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Every regular file under `dir` (recursively), with its size.
pub fn file_sizes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).expect("under dir").to_path_buf(),
                    meta.len(),
                );
            }
        }
    }
    out
}

/// Copies the tree at `src` to `dst` (which must not exist).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("create copy");
    for entry in fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.metadata().expect("metadata").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).expect("copy file");
        }
    }
}

/// Log segment files in `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs
}

/// Snapshot files in `dir`'s snapshot directory, oldest first.
pub fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("snapshots"))
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rks"))
        .collect();
    files.sort();
    files
}

/// Flips bit `bit` of the byte at `offset` of `path`.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut bytes = fs::read(path).expect("read");
    bytes[offset as usize] ^= 1 << bit;
    fs::write(path, bytes).expect("write");
}

/// Truncates `path` to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("set_len");
}
