//! [`StorageConfig`]: which backend, where, and how it writes. Read from TOML.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::memory::MemoryPersister;
use crate::persister::{Persister, Result};

/// The persistence backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Everything in memory; lost when the process ends. For tests and ephemeral use.
    Memory,
    /// Segmented append-only log files, a hard-state record and snapshot files in one
    /// directory, recovered through memory maps. The default.
    #[default]
    File,
    /// RocksDB column families for the log and hard state, snapshot files beside them.
    /// Needs the `rocksdb` cargo feature.
    Rocksdb,
}

impl Backend {
    /// The name used in config files and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::File => "file",
            Self::Rocksdb => "rocksdb",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "memory" => Ok(Self::Memory),
            "file" => Ok(Self::File),
            "rocksdb" => Ok(Self::Rocksdb),
            other => Err(StorageError::Config(format!(
                "unknown backend {other:?}: expected one of memory, file, rocksdb"
            ))),
        }
    }
}

/// When a write is made durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every [`Persister::write`] and snapshot commit syncs before it returns. The default.
    #[default]
    Immediate,
    /// No syncs: a crash of the machine (not of the process) may lose acknowledged
    /// writes. Only for benchmarks and throwaway data, and only by explicit choice.
    None,
}

/// Storage configuration, usually the `[storage]` table of a node's TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Which backend.
    pub backend: Backend,
    /// The data directory (required by `file` and `rocksdb`).
    pub dir: Option<PathBuf>,
    /// zstd level for snapshot payloads (1..=22; negative levels are zstd's fast modes).
    pub zstd_level: i32,
    /// Uncompressed bytes per independently compressed snapshot frame.
    pub snapshot_frame_bytes: u32,
    /// A log segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
    /// When writes are synced.
    pub durability: Durability,
}

/// Default snapshot frame: 1 MiB of payload per zstd frame.
pub const DEFAULT_SNAPSHOT_FRAME_BYTES: u32 = 1 << 20;
/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            dir: None,
            zstd_level: 1,
            snapshot_frame_bytes: DEFAULT_SNAPSHOT_FRAME_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            durability: Durability::Immediate,
        }
    }
}

impl StorageConfig {
    /// A config for `backend` in `dir`, with defaults for the rest.
    pub fn new(backend: Backend, dir: impl Into<PathBuf>) -> Self {
        Self {
            backend,
            dir: Some(dir.into()),
            ..Self::default()
        }
    }

    /// Parses and validates a TOML document holding these fields at its top level.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| StorageError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values, with an error that names the field.
    pub fn validate(&self) -> Result<()> {
        if self.backend != Backend::Memory && self.dir.is_none() {
            return Err(StorageError::Config(format!(
                "backend {} needs `dir`",
                self.backend
            )));
        }
        if !(-7..=22).contains(&self.zstd_level) {
            return Err(StorageError::Config(format!(
                "zstd_level {} is outside -7..=22",
                self.zstd_level
            )));
        }
        if !(4096..=(64 << 20)).contains(&self.snapshot_frame_bytes) {
            return Err(StorageError::Config(format!(
                "snapshot_frame_bytes {} is outside 4 KiB..=64 MiB",
                self.snapshot_frame_bytes
            )));
        }
        if !((64 << 10)..=(4 << 30)).contains(&self.segment_bytes) {
            return Err(StorageError::Config(format!(
                "segment_bytes {} is outside 64 KiB..=4 GiB",
                self.segment_bytes
            )));
        }
        Ok(())
    }

    fn dir(&self) -> Result<&std::path::Path> {
        self.dir
            .as_deref()
            .ok_or_else(|| StorageError::Config(format!("backend {} needs `dir`", self.backend)))
    }

    /// Opens (creating if needed) the configured backend.
    pub fn open(&self) -> Result<Box<dyn Persister>> {
        self.validate()?;
        match self.backend {
            Backend::Memory => Ok(Box::new(MemoryPersister::new())),
            Backend::File => crate::file::open_boxed(self.dir()?, self.clone()),
            #[cfg(feature = "rocksdb")]
            Backend::Rocksdb => Ok(Box::new(crate::rocks::RocksPersister::open(
                self.dir()?,
                self.clone(),
            )?)),
            #[cfg(not(feature = "rocksdb"))]
            Backend::Rocksdb => Err(StorageError::Config(
                "backend rocksdb is not in this build: rebuild with `--features rocksdb`".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_backend_and_fields() {
        let c = StorageConfig::from_toml_str("backend = \"file\"\ndir = \"/x\"\nzstd_level = 3\n")
            .expect("valid");
        assert_eq!(c.backend, Backend::File);
        assert_eq!(c.zstd_level, 3);
        let e = StorageConfig::from_toml_str("backend = \"leveldb\"\n").expect_err("unknown");
        assert!(e.to_string().contains("leveldb"), "{e}");
        let e = StorageConfig::from_toml_str("backend = \"memory\"\nfsync = false\n")
            .expect_err("unknown field");
        assert!(e.to_string().contains("fsync"), "{e}");
        let e = StorageConfig::from_toml_str("backend = \"file\"\n").expect_err("no dir");
        assert!(e.to_string().contains("dir"), "{e}");
        let e = StorageConfig::from_toml_str("backend = \"memory\"\nzstd_level = 99\n")
            .expect_err("level");
        assert!(e.to_string().contains("zstd_level"), "{e}");
    }

    #[cfg(not(feature = "rocksdb"))]
    #[test]
    fn rocksdb_without_the_feature_is_a_clear_error() {
        let e = StorageConfig::new(Backend::Rocksdb, "/nonexistent")
            .open()
            .expect_err("no rocksdb");
        assert!(e.to_string().contains("--features rocksdb"), "{e}");
    }
}
