//! What the RocksDB backend stores where: column families, keys and value encodings.
//!
//! ```text
//! <dir>/db/                 RocksDB database
//!   column family "log"         key: index as u64, 8 bytes BIG-endian
//!                               value: codec(Entry)            (index repeated, checked)
//!   column family "hard_state"  key: "hard_state"  value: codec(HardState)
//!   column family "meta"        key: "identity"    value: codec(Identity)
//!                               key: "snapshot"    value: codec(SnapshotMeta)
//!                                   the snapshot whose log compaction was recorded
//! <dir>/snapshots/          snapshot files, in the snapshot file format (FORMAT.md)
//! ```
//!
//! Values are encoded with [`crate::codec`]. RocksDB checksums its own blocks and WAL
//! records; decoding checks that each value is exactly one well-formed value and that a
//! log entry's index equals its key.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::StorageError;
use crate::persister::Result;

/// Column family of the log entries.
pub(crate) const CF_LOG: &str = "log";
/// Column family of the hard state.
pub(crate) const CF_HARD_STATE: &str = "hard_state";
/// Column family of the metadata (identity, snapshot record).
pub(crate) const CF_META: &str = "meta";
/// Every column family the backend opens.
pub(crate) const COLUMN_FAMILIES: [&str; 3] = [CF_LOG, CF_HARD_STATE, CF_META];

/// Key of the hard state in [`CF_HARD_STATE`].
pub(crate) const KEY_HARD_STATE: &[u8] = b"hard_state";
/// Key of the [`Identity`] in [`CF_META`].
pub(crate) const KEY_IDENTITY: &[u8] = b"identity";
/// Key of the recorded snapshot ([`crate::SnapshotMeta`]) in [`CF_META`].
pub(crate) const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// Subdirectory of the data directory that holds the RocksDB database.
pub(crate) const DB_DIR: &str = "db";
/// Subdirectory of the data directory that holds the snapshot files.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

/// The backend name stored in [`Identity`].
pub(crate) const BACKEND: &str = "rocksdb";
/// Version of this layout. Version history:
/// * 1: the layout above.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Upper bound on the bytes of one stored value that decoding accepts.
const DECODE_LIMIT: usize = codec::DEFAULT_DECODE_LIMIT;

/// Which backend wrote a database, and in which layout version. Written once, when the
/// database is created; checked at every open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// Always [`BACKEND`] for this backend.
    pub(crate) backend: String,
    /// [`FORMAT_VERSION`] when written.
    pub(crate) format_version: u32,
}

impl Identity {
    /// The identity this build writes and reads.
    pub(crate) fn current() -> Self {
        Self {
            backend: BACKEND.to_string(),
            format_version: FORMAT_VERSION,
        }
    }
}

/// The key of log entry `index`.
///
/// Big-endian on purpose, and only here: RocksDB orders keys bytewise, and only the
/// big-endian encoding makes that order the numeric order of indexes, which iteration
/// from an index and range deletions rely on. Every other integer raftkv stores is
/// little-endian.
#[allow(
    clippy::big_endian_bytes,
    reason = "keys must sort numerically; see above"
)]
pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index a log key encodes.
#[allow(clippy::big_endian_bytes, reason = "inverse of log_key")]
pub(crate) fn index_of_key(key: &[u8], db_path: &Path) -> Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        StorageError::corrupt(
            "log key",
            db_path,
            0,
            format!("key {key:02x?} is {} bytes, want 8", key.len()),
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Decodes a stored value, reporting failure as corruption of `what` at `offset` (the log
/// index, or 0 for single values) in the database.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    db_path: &Path,
    offset: u64,
) -> Result<T> {
    codec::decode(bytes, DECODE_LIMIT).map_err(|e| {
        StorageError::corrupt(
            what,
            db_path,
            offset,
            format!("cannot decode the stored value: {e}"),
        )
    })
}

/// Maps a RocksDB error to [`StorageError::Rocks`].
pub(crate) fn rocks_error(op: &'static str, db_path: &Path, e: rocksdb::Error) -> StorageError {
    StorageError::Rocks {
        op,
        path: db_path.to_path_buf(),
        message: e.into_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_like_indexes() {
        let indexes = [0u64, 1, 255, 256, 65_535, 1 << 32, u64::MAX - 1];
        for w in indexes.windows(2) {
            assert!(log_key(w[0]) < log_key(w[1]), "{} vs {}", w[0], w[1]);
        }
        let p = Path::new("db");
        for i in indexes {
            assert_eq!(index_of_key(&log_key(i), p).expect("8 bytes"), i);
        }
        assert!(index_of_key(b"short", p).is_err());
    }
}
