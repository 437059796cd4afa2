//! The `IDENTITY` file: which backend and format versions a data directory holds, so
//! that a directory written by another backend (or not by raftkv at all) is refused.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::mem::size_of;
use std::path::Path;

use crate::config::Durability;
use crate::error::StorageError;
use crate::persister::Result;
use crate::snapshot::sync_dir;

/// The identity file's name.
pub(crate) const FILE_NAME: &str = "IDENTITY";
const TMP_NAME: &str = "IDENTITY.tmp";

// offset  size  field
//      0     8  magic             b"RKVIDENT"
//      8     4  version           u32, IDENTITY_VERSION
//     12    16  backend           ASCII name, NUL-padded ("file")
//     28     4  log_version       u32, the log segment format version
//     32     4  snapshot_version  u32, the snapshot file format version
//     36     4  crc               u32, crc32 of bytes [0, 36)
//     40
const MAGIC: [u8; 8] = *b"RKVIDENT";
const IDENTITY_VERSION: u32 = 1;
const BACKEND: &str = "file";
const OFF_VERSION: usize = MAGIC.len();
const OFF_BACKEND: usize = OFF_VERSION + size_of::<u32>();
const BACKEND_LEN: usize = 16;
const OFF_LOG_VERSION: usize = OFF_BACKEND + BACKEND_LEN;
const OFF_SNAPSHOT_VERSION: usize = OFF_LOG_VERSION + size_of::<u32>();
const OFF_CRC: usize = OFF_SNAPSHOT_VERSION + size_of::<u32>();
const LEN: usize = OFF_CRC + size_of::<u32>();
const _: () = assert!(LEN == 40);

/// The snapshot format version recorded (kept equal to the snapshot module's).
const SNAPSHOT_VERSION: u32 = 1;

fn encode() -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..OFF_VERSION].copy_from_slice(&MAGIC);
    b[OFF_VERSION..OFF_BACKEND].copy_from_slice(&IDENTITY_VERSION.to_le_bytes());
    b[OFF_BACKEND..OFF_BACKEND + BACKEND.len()].copy_from_slice(BACKEND.as_bytes());
    b[OFF_LOG_VERSION..OFF_SNAPSHOT_VERSION]
        .copy_from_slice(&super::segment::FORMAT_VERSION.to_le_bytes());
    b[OFF_SNAPSHOT_VERSION..OFF_CRC].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&b[..OFF_CRC]);
    b[OFF_CRC..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn check(bytes: &[u8], path: &Path, dir: &Path) -> Result<()> {
    let bad = |offset: usize, detail: String| {
        StorageError::corrupt("directory identity", path, offset as u64, detail)
    };
    if bytes.len() != LEN {
        return Err(bad(0, format!("{} bytes, expected {LEN}", bytes.len())));
    }
    if bytes[..OFF_VERSION] != MAGIC {
        return Err(bad(0, "bad magic: not a raftkv identity file".into()));
    }
    let version = u32_at(bytes, OFF_VERSION);
    if version != IDENTITY_VERSION {
        return Err(bad(
            OFF_VERSION,
            format!("unknown identity version {version}"),
        ));
    }
    let stored = u32_at(bytes, OFF_CRC);
    let actual = crc32fast::hash(&bytes[..OFF_CRC]);
    if stored != actual {
        return Err(bad(
            OFF_CRC,
            format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    let name = &bytes[OFF_BACKEND..OFF_LOG_VERSION];
    let name = String::from_utf8_lossy(name)
        .trim_end_matches('\0')
        .to_string();
    if name != BACKEND {
        return Err(StorageError::Config(format!(
            "{} was written by the {name:?} backend; refusing to open it with the file backend",
            dir.display()
        )));
    }
    let log_version = u32_at(bytes, OFF_LOG_VERSION);
    if log_version != super::segment::FORMAT_VERSION {
        return Err(StorageError::Config(format!(
            "{} holds log format version {log_version}; this build reads version {}",
            dir.display(),
            super::segment::FORMAT_VERSION
        )));
    }
    let snapshot_version = u32_at(bytes, OFF_SNAPSHOT_VERSION);
    if snapshot_version != SNAPSHOT_VERSION {
        return Err(StorageError::Config(format!(
            "{} holds snapshot format version {snapshot_version}; this build reads version {SNAPSHOT_VERSION}",
            dir.display()
        )));
    }
    Ok(())
}

/// Reads and checks `dir`'s identity file without writing anything (for `raftkv
/// inspect`). A missing file is an [`StorageError::Io`] error naming it.
pub(crate) fn verify(dir: &Path) -> Result<()> {
    let path = dir.join(FILE_NAME);
    let bytes =
        fs::read(&path).map_err(|e| StorageError::io("read directory identity", &path, e))?;
    check(&bytes, &path, dir)
}

/// Names that mark a RocksDB directory.
fn looks_like_rocksdb(name: &str) -> bool {
    matches!(name, "CURRENT" | "LOCK" | "IDENTITY_ROCKSDB")
        || name.starts_with("MANIFEST-")
        || name.starts_with("OPTIONS-")
        || name.ends_with(".sst")
}

/// Checks `dir`'s identity file, or writes one if the directory is empty (durably:
/// temp file, fsync, rename, directory fsync). Refuses a directory that has files but
/// no identity, or the identity of another backend or format version.
pub(crate) fn ensure(dir: &Path, durability: Durability) -> Result<()> {
    let path = dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => return check(&bytes, &path, dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io("read directory identity", &path, e)),
    }
    let mut others = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list data directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list data directory", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != TMP_NAME {
            others.push(name);
        }
    }
    others.sort();
    if others.iter().any(|n| looks_like_rocksdb(n)) {
        return Err(StorageError::Config(format!(
            "{} looks like a RocksDB directory (it has {}); refusing to open it with the file backend",
            dir.display(),
            others.join(", ")
        )));
    }
    if !others.is_empty() {
        others.truncate(5);
        return Err(StorageError::Config(format!(
            "{} is not empty and has no {FILE_NAME} file, so it is not a file-backend data \
             directory (found {}); refusing to open it",
            dir.display(),
            others.join(", ")
        )));
    }
    let tmp = dir.join(TMP_NAME);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StorageError::io("create directory identity", &tmp, e))?;
    f.write_all(&encode())
        .map_err(|e| StorageError::io("write directory identity", &tmp, e))?;
    if durability == Durability::Immediate {
        f.sync_data()
            .map_err(|e| StorageError::io("fdatasync directory identity", &tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename directory identity", &path, e))?;
    if durability == Durability::Immediate {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_names_the_other_backend() {
        let p = Path::new("d/IDENTITY");
        let d = Path::new("d");
        check(&encode(), p, d).expect("own identity");
        let mut other = encode();
        other[OFF_BACKEND..OFF_LOG_VERSION].copy_from_slice(b"rocksdb\0\0\0\0\0\0\0\0\0");
        let crc = crc32fast::hash(&other[..OFF_CRC]);
        other[OFF_CRC..].copy_from_slice(&crc.to_le_bytes());
        let e = check(&other, p, d).expect_err("other backend");
        assert!(e.to_string().contains("\"rocksdb\" backend"), "{e}");
        let mut flipped = encode();
        flipped[30] ^= 1;
        assert!(check(&flipped, p, d).is_err());
    }
}
