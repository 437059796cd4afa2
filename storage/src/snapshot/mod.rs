//! The snapshot file format and the store that publishes snapshot files atomically.
//!
//! Shared by the file backend and the RocksDB backend. A snapshot file is a 72-byte
//! header followed by independent zstd frames of `snapshot_frame_bytes` uncompressed
//! bytes each, every frame with its own crc, the whole file with another (see
//! `FORMAT.md`, "Snapshot file"). Files are published with the usual sequence: temp file
//! in the same directory, write, fsync, rename, directory fsync.
//!
//! * [`SnapshotStore`] manages a directory: which file is current, which one is kept
//!   as a fallback, what was found invalid on open.
//! * [`SnapshotFileWriter`] streams a payload into a new file; `finish` publishes it.
//! * [`SnapshotFileReader`] streams a payload back, verifying as it goes.
//! * [`validate_file`] checks a file completely, for tools.

mod format;
mod frame;
mod reader;
mod store;
mod validate;
mod writer;

pub use reader::SnapshotFileReader;
pub(crate) use store::sync_dir;
pub use store::{SnapshotFileInfo, SnapshotStore, file_name, parse_file_name};
pub(crate) use validate::check_structure;
pub use validate::validate_file;
pub use writer::SnapshotFileWriter;

/// Bytes of the snapshot file header.
pub const HEADER_BYTES: u64 = format::HEADER_LEN as u64;
/// Bytes of each frame header.
pub const FRAME_HEADER_BYTES: u64 = format::FRAME_HEADER_LEN as u64;
