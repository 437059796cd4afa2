//! Typed storage errors. Each names the operation and what it acted on.

use std::io;
use std::path::PathBuf;

/// An error from a [`Persister`](crate::Persister) or the snapshot format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An IO call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation, e.g. `"fdatasync log segment"`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Stored bytes failed validation.
    #[error("corrupt {what} in {} at offset {offset}: {detail}", path.display())]
    Corrupt {
        /// What was being decoded, e.g. `"log record"`.
        what: &'static str,
        /// The file (or RocksDB directory).
        path: PathBuf,
        /// Byte offset of the bad record or field.
        offset: u64,
        /// What is wrong.
        detail: String,
    },

    /// An earlier write or sync failed; the persister refuses further writes.
    #[error("persister poisoned by an earlier failure ({cause}); refusing {refused}")]
    Poisoned {
        /// The first failure.
        cause: String,
        /// The operation refused now.
        refused: &'static str,
    },

    /// Appended entries do not follow the log.
    #[error("log gap in {op}: expected index {expected}, got {got}")]
    LogGap {
        /// The operation.
        op: &'static str,
        /// The index that would continue the log.
        expected: u64,
        /// The index given.
        got: u64,
    },

    /// A call broke the contract in a way other than a gap.
    #[error("invalid {op}: {detail}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },

    /// A snapshot not newer than the current one.
    #[error("stale snapshot at index {index}: current snapshot is at {current}")]
    StaleSnapshot {
        /// The rejected snapshot's index.
        index: u64,
        /// The current snapshot's index.
        current: u64,
    },

    /// The log needs a snapshot that is missing or invalid, so recovery cannot proceed
    /// without losing data.
    #[error(
        "log in {} starts at index {log_first}, but the newest valid snapshot ends at {snapshot_index}: {detail}",
        path.display()
    )]
    MissingSnapshot {
        /// The data directory.
        path: PathBuf,
        /// The first log index found.
        log_first: u64,
        /// The index of the newest valid snapshot (0 if none).
        snapshot_index: u64,
        /// Which snapshots were rejected, and why.
        detail: String,
    },

    /// A configuration that cannot be used.
    #[error("storage config: {0}")]
    Config(String),

    /// A value could not be encoded or decoded.
    #[error("{op}: {detail}")]
    Codec {
        /// The operation.
        op: &'static str,
        /// What went wrong.
        detail: String,
    },

    /// RocksDB reported an error.
    #[error("rocksdb {op} in {}: {message}", path.display())]
    Rocks {
        /// The operation.
        op: &'static str,
        /// The database directory.
        path: PathBuf,
        /// RocksDB's message.
        message: String,
    },

    /// A fault injected by a test.
    #[error("injected fault at {point}")]
    Injected {
        /// The failpoint's name.
        point: String,
    },
}

impl StorageError {
    /// Builds an [`StorageError::Io`]. If `source` only carries a `StorageError` back
    /// through an `io::Write` or `io::Read` (see the `From` conversion below), that
    /// error is returned as it was, so the file and step it names are kept.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if source.get_ref().is_some_and(|e| e.is::<StorageError>()) {
            let carried = source.into_inner().map(|e| e.downcast::<StorageError>());
            if let Some(Ok(inner)) = carried {
                return *inner;
            }
            unreachable!("checked above that the io::Error carries a StorageError");
        }
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds a [`StorageError::Corrupt`].
    pub fn corrupt(
        what: &'static str,
        path: impl Into<PathBuf>,
        offset: u64,
        detail: impl Into<String>,
    ) -> Self {
        Self::Corrupt {
            what,
            path: path.into(),
            offset,
            detail: detail.into(),
        }
    }

    /// True for errors that mean stored data is damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::MissingSnapshot { .. })
    }

    /// True when the disk is full (ENOSPC), judged by the OS error code.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Self::Io { source, .. }
            if source.raw_os_error() == Some(libc::ENOSPC)
                || source.kind() == io::ErrorKind::StorageFull)
    }
}

/// Carries a `StorageError` through `io::Write` and `io::Read` (a snapshot writer is
/// one): the kind is kept, and [`StorageError::io`] unwraps it on the other side.
impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> Self {
        let kind = match &e {
            StorageError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
