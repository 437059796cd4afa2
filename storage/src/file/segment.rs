//! Log segment files: the 32-byte segment header, names, and the active segment that
//! records are appended to.

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::mem::size_of;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{self, StateRecord};
use crate::config::Durability;
use crate::error::StorageError;
use crate::persister::Result;
use crate::snapshot::sync_dir;

// The segment header, at offset 0 of every segment file:
//
// offset  size  field
//      0     8  magic     b"RKVLOG\0\0"
//      8     4  version   u32, FORMAT_VERSION
//     12     4  flags     u32, 0
//     16     8  seq       u64, the segment's sequence number (also in its name)
//     24     4  salt      u32, random; the initial value of every record crc in the file
//     28     4  crc       u32, crc32 of bytes [0, 28)
//     32        records follow; the first is a STATE record
/// The magic bytes at offset 0.
pub(crate) const MAGIC: [u8; 8] = *b"RKVLOG\0\0";
/// The log format version this code reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = OFF_MAGIC + MAGIC.len();
const OFF_FLAGS: usize = OFF_VERSION + size_of::<u32>();
const OFF_SEQ: usize = OFF_FLAGS + size_of::<u32>();
const OFF_SALT: usize = OFF_SEQ + size_of::<u64>();
const OFF_CRC: usize = OFF_SALT + size_of::<u32>();
/// Bytes of the segment header.
pub(crate) const HEADER_LEN: usize = OFF_CRC + size_of::<u32>();
const _: () = assert!(HEADER_LEN == 32);

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) seq: u64,
    pub(crate) salt: u32,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[OFF_MAGIC..OFF_VERSION].copy_from_slice(&MAGIC);
        b[OFF_VERSION..OFF_FLAGS].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[OFF_FLAGS..OFF_SEQ].copy_from_slice(&0u32.to_le_bytes());
        b[OFF_SEQ..OFF_SALT].copy_from_slice(&self.seq.to_le_bytes());
        b[OFF_SALT..OFF_CRC].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32fast::hash(&b[..OFF_CRC]);
        b[OFF_CRC..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the header at the start of `bytes`; an error message says what is wrong
    /// (the caller names the file; every header error is at offset 0).
    pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "{} bytes, shorter than the {HEADER_LEN}-byte segment header",
                bytes.len()
            ));
        }
        let b = &bytes[..HEADER_LEN];
        if b[OFF_MAGIC..OFF_VERSION] != MAGIC {
            return Err(format!("bad magic {:02x?}", &b[..8]));
        }
        let u32_at = |off: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[off..off + 4]);
            u32::from_le_bytes(a)
        };
        let version = u32_at(OFF_VERSION);
        if version != FORMAT_VERSION {
            return Err(format!(
                "unknown log format version {version} (this build reads {FORMAT_VERSION})"
            ));
        }
        let stored = u32_at(OFF_CRC);
        let actual = crc32fast::hash(&b[..OFF_CRC]);
        if stored != actual {
            return Err(format!(
                "segment header checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
            ));
        }
        let flags = u32_at(OFF_FLAGS);
        if flags != 0 {
            return Err(format!("unknown segment flags {flags:#x}"));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[OFF_SEQ..OFF_SALT]);
        Ok(Self {
            seq: u64::from_le_bytes(seq),
            salt: u32_at(OFF_SALT),
        })
    }
}

/// The file name of segment `seq`: `log-{seq:020}.seg`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("log-{seq:020}.seg")
}

/// Parses a name made by [`file_name`].
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A random salt for a new segment. `RandomState` is seeded from the OS once per process
/// and stepped per instance, which is unpredictable enough: the salt only has to keep
/// record-like bytes inside entry payloads from passing as records of this segment.
fn new_salt(seq: u64) -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(seq);
    let x = h.finish();
    (x ^ (x >> 32)) as u32
}

/// A sealed segment: immutable, mapped when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedSegment {
    pub(crate) seq: u64,
    pub(crate) path: PathBuf,
    /// The highest entry index written in the segment (0 if none).
    pub(crate) max_index: u64,
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) header: SegmentHeader,
    /// Bytes in the file, all written by complete records.
    pub(crate) len: u64,
    /// The highest entry index written in the segment (0 if none).
    pub(crate) max_index: u64,
}

impl ActiveSegment {
    /// Creates segment `seq` in `dir`: header and STATE record in one write, then fsync of
    /// the file and of the directory (so the new file survives a crash), unless
    /// durability is `None`.
    pub(crate) fn create(
        dir: &Path,
        seq: u64,
        state: &StateRecord,
        durability: Durability,
    ) -> Result<Self> {
        let path = dir.join(file_name(seq));
        let header = SegmentHeader {
            seq,
            salt: new_salt(seq),
        };
        let mut bytes = header.encode().to_vec();
        let mut rec = Vec::new();
        record::encode_state(state, header.salt, &mut rec)?;
        bytes.extend_from_slice(&rec);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StorageError::io("create log segment", &path, e))?;
        file.write_all_at(&bytes, 0)
            .map_err(|e| StorageError::io("write log segment header", &path, e))?;
        if durability == Durability::Immediate {
            file.sync_data()
                .map_err(|e| StorageError::io("fdatasync new log segment", &path, e))?;
            sync_dir(dir)?;
        }
        Ok(Self {
            file,
            path,
            header,
            len: bytes.len() as u64,
            max_index: 0,
        })
    }

    /// Opens an existing segment for appending at `len` (the end of its last valid record).
    pub(crate) fn reopen(
        path: &Path,
        header: SegmentHeader,
        len: u64,
        max_index: u64,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io("open log segment for append", path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            header,
            len,
            max_index,
        })
    }

    /// Writes `bytes` (whole records) at the end. Not durable until [`sync`](Self::sync).
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, self.len)
            .map_err(|e| StorageError::io("append to log segment", &self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// fdatasync.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("fdatasync log segment", &self.path, e))
    }

    /// The sealed form of this segment.
    pub(crate) fn sealed(&self) -> SealedSegment {
        SealedSegment {
            seq: self.header.seq,
            path: self.path.clone(),
            max_index: self.max_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_flips() {
        let h = SegmentHeader {
            seq: 42,
            salt: 0xabcd_ef01,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        for bit in 0..HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&c).is_err(), "bit {bit}");
        }
        assert!(SegmentHeader::decode(&b[..31]).is_err());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(7), "log-00000000000000000007.seg");
        assert_eq!(parse_file_name(&file_name(7)), Some(7));
        assert_eq!(parse_file_name("log-7.seg"), None);
        assert_eq!(parse_file_name("log-00000000000000000007.seg.tmp"), None);
    }

    #[test]
    fn salts_differ_between_segments() {
        let salts: std::collections::HashSet<u32> = (0..64).map(new_salt).collect();
        assert!(salts.len() > 60);
    }
}
