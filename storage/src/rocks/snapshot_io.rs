//! The snapshot writer of the RocksDB backend: the payload goes through the shared
//! snapshot file format; the commit then records the snapshot in RocksDB.

use std::io::{self, Write};
use std::sync::Arc;

use super::Inner;
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
    /// A failed payload write (a full disk, say) fails this snapshot only: nothing was
    /// synced, the temp file goes when the writer drops, and the log stays writable.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.poison.check("write snapshot payload")?;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.poison.check("flush snapshot payload")?;
        self.file.flush()
    }
}

impl SnapshotWriter for RocksSnapshotWriter {
    fn commit(self: Box<Self>) -> Result<SnapshotInfo> {
        let RocksSnapshotWriter { inner, meta, file } = *self;
        inner.commit_snapshot(meta, file)
    }
}
