//! Entry points for the fuzz targets in `fuzz/` and for their proptest twins in
//! `storage/tests/decoders_never_panic.rs`. Each feeds arbitrary bytes to one decoder of
//! this crate the way the crate itself would meet them on disk, and returns whatever the
//! decoder returned: a value or a typed error. None may panic, hang, or allocate beyond
//! the decoder's own limits, whatever the bytes say.
//!
//! Not part of the supported API.
#![doc(hidden)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::file::record::{RECORD_HEADER_LEN, decode_payload};
use crate::file::segment::{SegmentHeader, file_name};
use crate::{
    Backend, Durability, FilePersister, Persister, RecoveredState, Result, SnapshotMeta,
    StorageConfig,
};

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "raftkv-fuzz-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create fuzz scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::new(Backend::File, dir);
    c.durability = Durability::None;
    c
}

/// Recovers a file-backend directory whose only log segment is a valid segment header
/// followed by records built from `input`: a sequence of `(kind: u8, len: u16 LE,
/// payload)` specs, each sealed with a correct crc so that the payload decoder (not
/// only the checksum) sees arbitrary bytes; whatever does not parse as a spec is
/// appended raw, as a torn or corrupt tail.
pub fn log_segment(input: &[u8]) -> Result<RecoveredState> {
    let scratch = Scratch::new();
    drop(FilePersister::open(&scratch.0, config(&scratch.0))?);
    let salt = 0x5eed_1234;
    let mut seg = SegmentHeader { seq: 1, salt }.encode().to_vec();
    let mut rest = input;
    while rest.len() >= 3 {
        let kind = rest[0] % 4;
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
        if rest.len() < 3 + len {
            break;
        }
        let payload = &rest[3..3 + len];
        let start = seg.len();
        seg.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
        seg[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
        seg[start + 8] = kind;
        seg.extend_from_slice(payload);
        let mut h = crc32fast::Hasher::new_with_initial(salt);
        h.update(&seg[start + 4..]);
        let crc = h.finalize();
        seg[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        rest = &rest[3 + len..];
    }
    seg.extend_from_slice(rest);
    std::fs::write(scratch.0.join(file_name(1)), &seg).expect("write fuzz segment");
    let p = FilePersister::open(&scratch.0, config(&scratch.0))?;
    p.recover()
}

/// Decodes one record payload of type `kind` as if its checksum had matched.
pub fn log_payload(kind: u8, payload: &[u8]) -> bool {
    decode_payload(payload, kind, 0..payload.len()).is_ok()
}

/// Writes `input` as a snapshot file (named as snapshot 5 of term 1) and validates and
/// reads it the way recovery and `raftkv inspect` do.
pub fn snapshot_raw(input: &[u8]) -> Result<u64> {
    let scratch = Scratch::new();
    let path = scratch.0.join(crate::snapshot::file_name(SnapshotMeta {
        index: 5,
        term: 1,
    }));
    std::fs::write(&path, input).expect("write fuzz snapshot");
    read_snapshot(&path)
}

/// Writes a valid snapshot whose payload is `payload`, then damages it as `edits` say
/// (pairs of `(offset: u32 LE, xor: u8)`, offsets taken modulo the file length; a
/// final lone byte truncates the file to that fraction of its length), and validates and
/// reads it.
pub fn snapshot_damaged(payload: &[u8], edits: &[u8]) -> Result<u64> {
    let scratch = Scratch::new();
    let mut c = config(&scratch.0);
    c.snapshot_frame_bytes = 4096;
    let p = FilePersister::open(&scratch.0, c)?;
    let meta = SnapshotMeta { index: 5, term: 1 };
    let mut w = p.begin_snapshot(meta)?;
    w.write_all(payload)
        .map_err(|e| crate::StorageError::io("write fuzz snapshot", &scratch.0, e))?;
    w.commit()?;
    drop(p);
    let path = scratch
        .0
        .join("snapshots")
        .join(crate::snapshot::file_name(meta));
    let mut bytes = std::fs::read(&path).expect("read fuzz snapshot");
    let mut chunks = edits.chunks_exact(5);
    for e in &mut chunks {
        if bytes.is_empty() {
            break;
        }
        let off = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize % bytes.len();
        bytes[off] ^= e[4];
    }
    if let [cut] = chunks.remainder() {
        bytes.truncate(bytes.len() * usize::from(*cut) / 256);
    }
    std::fs::write(&path, &bytes).expect("write damaged snapshot");
    read_snapshot(&path)
}

fn read_snapshot(path: &Path) -> Result<u64> {
    let info = crate::snapshot::validate_file(path)?;
    let mut r = crate::snapshot::SnapshotFileReader::open(path)?;
    let mut sink = [0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        match r.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => return Err(crate::StorageError::io("read fuzz snapshot", path, e)),
        }
    }
    assert_eq!(
        total, info.uncompressed_bytes,
        "a validated snapshot reads in full"
    );
    Ok(total)
}

/// Parses `text` as a storage config.
pub fn storage_config(text: &str) -> Result<StorageConfig> {
    StorageConfig::from_toml_str(text)
}
