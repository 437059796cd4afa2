//! The snapshot writer of the RocksDB backend: the payload goes through the shared
//! snapshot file format; the commit then records the snapshot in RocksDB.

use std::io::{self, Write};
use std::sync::Arc;

use super::Inner;
use crate::error::StorageError;
use crate::persister::{Result, SnapshotWriter};
use crate::snapshot::SnapshotFileWriter;
use crate::types::{SnapshotInfo, SnapshotMeta};

/// A snapshot being streamed into a temporary snapshot file.
pub(crate) struct RocksSnapshotWriter {
    pub(crate) inner: Arc<Inner>,
    pub(crate) meta: SnapshotMeta,
    pub(crate) file: SnapshotFileWriter,
}

impl Write for RocksSnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.poison.check("write snapshot payload")?;
        self.file.write(buf).map_err(|e| self.latch(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.poison.check("flush snapshot payload")?;
        self.file.flush().map_err(|e| self.latch(e))
    }
}

impl RocksSnapshotWriter {
    /// A failed payload write poisons the persister like any other failed write.
    fn latch(&self, e: io::Error) -> io::Error {
        let kind = e.kind();
        let msg = e.to_string();
        let _ = self.inner.poison.latch::<()>(Err(StorageError::io(
            "write snapshot payload",
            self.inner.snapshot_dir(),
            e,
        )));
        io::Error::new(kind, msg)
    }
}

impl SnapshotWriter for RocksSnapshotWriter {
    fn commit(self: Box<Self>) -> Result<SnapshotInfo> {
        let RocksSnapshotWriter { inner, meta, file } = *self;
        inner.commit_snapshot(meta, file)
    }
}
