//! raftkv's persistence layer.
//!
//! Consensus and the KV service touch durable state only through the [`Persister`]
//! trait. Three backends implement it, chosen at runtime by [`StorageConfig`]:
//!
//! * [`MemoryPersister`]: in memory, with crash images for tests;
//! * [`FilePersister`] (the default): segmented, checksummed log files and snapshot
//!   files in one directory, recovered through memory maps;
//! * `RocksPersister` (cargo feature `rocksdb`): log and hard state in RocksDB column
//!   families, snapshots in the same file format as the file backend.
//!
//! Snapshots are zstd-compressed, checksummed and published atomically (temp file,
//! fsync, rename, directory fsync); see `FORMAT.md` for the bytes.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
mod config;
mod error;
pub mod fault;
pub mod file;
pub mod fuzzing;
pub mod inspect;
mod memory;
mod persister;
mod poison;
#[cfg(feature = "rocksdb")]
pub mod rocks;
mod rules;
pub mod snapshot;
mod sync_histogram;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod types;

pub use config::{
    Backend, DEFAULT_SEGMENT_BYTES, DEFAULT_SNAPSHOT_FRAME_BYTES, Durability, StorageConfig,
};
pub use error::StorageError;
pub use file::FilePersister;
pub use memory::MemoryPersister;
pub use persister::{Persister, Result, SnapshotReader, SnapshotWriter};
#[cfg(feature = "rocksdb")]
pub use rocks::RocksPersister;
pub use sync_histogram::{SYNC_BUCKETS_SECONDS, SyncHistogram, SyncHistogramSnapshot};
pub use types::{
    Entry, HARD_STATE_ACCOUNTED_SIZE, HardState, NodeId, RecoveredState, SkippedSnapshot,
    SnapshotInfo, SnapshotMeta, WriteBatch,
};
