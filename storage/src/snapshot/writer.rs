//! [`SnapshotFileWriter`]: streams a payload into a temp file as compressed frames, then
//! publishes it (header, fsync, rename, directory fsync) through its store.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crc32fast::Hasher;

use super::format::{self, HEADER_LEN, Header};
use super::frame::compress_frame;
use super::store::{Shared, SnapshotFileInfo};
use crate::config::Durability;
use crate::error::StorageError;
use crate::fault;
use crate::persister::Result;
use crate::types::SnapshotMeta;

/// A snapshot being written: `impl Write` for the payload, then
/// [`finish`](SnapshotFileWriter::finish).
///
/// The payload is cut into frames of the configured size; each full frame is compressed
/// and appended to a temp file in the snapshot directory. Memory stays bounded: at most
/// two uncompressed frames (the one being filled and the one being compressed) and two
/// compressed ones. With two threads, a helper thread compresses every other frame
/// while the caller fills and compresses the next.
///
/// Dropping the writer without `finish` deletes the temp file; nothing becomes visible.
/// After a failed write every later call fails.
pub struct SnapshotFileWriter {
    store: Arc<Shared>,
    meta: SnapshotMeta,
    tmp_path: PathBuf,
    file: File,
    frame_bytes: usize,
    /// The frame being filled.
    buf: Vec<u8>,
    /// File offset of the next frame.
    pos: u64,
    /// crc32 of every frame byte written so far.
    body: Hasher,
    payload_len: u64,
    frames: u64,
    cctx: zstd::bulk::Compressor<'static>,
    /// Output buffer for frames compressed on this thread.
    out: Vec<u8>,
    threads: usize,
    helper: Option<Helper>,
    /// Buffers returned by the helper, for reuse.
    spare_in: Option<Vec<u8>>,
    spare_out: Option<Vec<u8>>,
    failed: Option<String>,
    /// Set by [`prepare`](SnapshotFileWriter::prepare): the file is complete and synced.
    prepared: Option<Header>,
}

impl std::fmt::Debug for SnapshotFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFileWriter")
            .field("tmp_path", &self.tmp_path)
            .field("meta", &self.meta)
            .field("payload_len", &self.payload_len)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

struct Job {
    data: Vec<u8>,
    out: Vec<u8>,
}

struct Done {
    data: Vec<u8>,
    out: Vec<u8>,
    result: Result<Hasher>,
}

struct Helper {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    handle: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(h) = self.handle.take() {
            // A panic on the helper thread has already been reported; nothing to add.
            let _ = h.join();
        }
    }
}

impl SnapshotFileWriter {
    /// A writer appending frames to `file` (a new temp file at `tmp_path`).
    pub(crate) fn new(
        store: Arc<Shared>,
        meta: SnapshotMeta,
        tmp_path: PathBuf,
        file: File,
        threads: usize,
    ) -> Result<Self> {
        let cctx = zstd::bulk::Compressor::new(store.zstd_level)
            .map_err(|e| StorageError::io("create zstd compressor", &tmp_path, e))?;
        let frame_bytes = store.frame_bytes as usize;
        Ok(Self {
            store,
            meta,
            tmp_path,
            file,
            frame_bytes,
            buf: Vec::new(),
            pos: HEADER_LEN as u64,
            body: Hasher::new(),
            payload_len: 0,
            frames: 0,
            cctx,
            out: Vec::new(),
            threads,
            helper: None,
            spare_in: None,
            spare_out: None,
            failed: None,
            prepared: None,
        })
    }

    /// The snapshot being written.
    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// The temp file being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// True once a failure poisoned the store this writer belongs to (a failed fsync
    /// or publish); a failure before that fails this snapshot only.
    pub fn store_poisoned(&self) -> bool {
        self.store.poison.is_poisoned()
    }

    /// Payload bytes accepted so far.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    fn write_frame(&mut self, bytes: &[u8], piece: &Hasher) -> Result<()> {
        fault::check(&self.store.faults, "snapshot.write_frame")?;
        self.file
            .write_all_at(bytes, self.pos)
            .map_err(|e| StorageError::io("write snapshot frame", &self.tmp_path, e))?;
        self.pos += bytes.len() as u64;
        self.body.combine(piece);
        self.frames += 1;
        Ok(())
    }

    /// Compresses and writes the frame in `buf` (full, or the final partial one).
    fn push_frame(&mut self) -> Result<()> {
        debug_assert!(!self.buf.is_empty() && self.buf.len() <= self.frame_bytes);
        if self.threads < 2 {
            return self.compress_here();
        }
        if self.helper.is_none() {
            self.helper = Some(spawn_helper(self.store.zstd_level, self.tmp_path.clone())?);
        }
        let in_flight = self.helper.as_ref().is_some_and(|h| h.in_flight);
        if !in_flight {
            // Hand this frame to the helper and fill the next one meanwhile.
            let next = self.spare_in.take().unwrap_or_default();
            let data = std::mem::replace(&mut self.buf, next);
            let out = self.spare_out.take().unwrap_or_default();
            let helper = self.helper.as_mut().expect("helper spawned above");
            let sent = helper
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.send(Job { data, out }).is_ok());
            if !sent {
                return Err(helper_gone(&self.tmp_path));
            }
            helper.in_flight = true;
            return Ok(());
        }
        // The helper holds the previous frame: compress this one here, then write both
        // in order.
        let piece = compress_frame(&mut self.cctx, &self.buf, &mut self.out, &self.tmp_path)?;
        self.buf.clear();
        self.collect()?;
        let out = std::mem::take(&mut self.out);
        let r = self.write_frame(&out, &piece);
        self.out = out;
        r
    }

    /// Compresses and writes the frame in `buf` on this thread. Only when the helper
    /// holds no frame (frames must be written in order).
    fn compress_here(&mut self) -> Result<()> {
        debug_assert!(!self.helper.as_ref().is_some_and(|h| h.in_flight));
        let piece = compress_frame(&mut self.cctx, &self.buf, &mut self.out, &self.tmp_path)?;
        let out = std::mem::take(&mut self.out);
        let r = self.write_frame(&out, &piece);
        self.out = out;
        self.buf.clear();
        r
    }

    /// Waits for the helper's frame, if any, and writes it.
    fn collect(&mut self) -> Result<()> {
        let Some(helper) = self.helper.as_mut() else {
            return Ok(());
        };
        if !helper.in_flight {
            return Ok(());
        }
        let done = helper
            .done
            .recv()
            .map_err(|_| helper_gone(&self.tmp_path))?;
        helper.in_flight = false;
        let piece = done.result?;
        let r = self.write_frame(&done.out, &piece);
        let mut data = done.data;
        data.clear();
        self.spare_in = Some(data);
        self.spare_out = Some(done.out);
        r
    }

    fn check_not_failed(&self) -> Result<()> {
        match &self.failed {
            Some(cause) => Err(StorageError::io(
                "write snapshot",
                &self.tmp_path,
                std::io::Error::other(format!("an earlier write failed: {cause}")),
            )),
            None => Ok(()),
        }
    }

    fn fail<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && self.failed.is_none()
        {
            self.failed = Some(e.to_string());
        }
        r
    }

    /// Completes the file and publishes it: writes the last frame and the header, fsyncs
    /// the file, renames it into place, fsyncs the directory. Then the store makes it
    /// current and removes all but the newest two snapshot files.
    ///
    /// Failpoints, in order: `snapshot.write_frame` (before each frame is written,
    /// also while the payload streams in), `snapshot.before_write` (before the last
    /// frame and the header), `snapshot.after_write`, `snapshot.before_fsync`, `snapshot.after_fsync`,
    /// then the store's `snapshot.before_rename` .. `snapshot.after_dir_fsync`. A failure
    /// from the fsync on poisons the store.
    ///
    /// Fails with [`StorageError::StaleSnapshot`] if the store's current snapshot is not
    /// older than this one.
    pub fn finish(mut self) -> Result<SnapshotFileInfo> {
        self.prepare()?;
        let header = self.prepared.expect("prepare succeeded");
        let info = SnapshotFileInfo::from_header(&header, self.tmp_path.clone());
        self.store.publish(&self.tmp_path, info)
    }

    /// The slow half of [`finish`](Self::finish), which a caller may run first, outside
    /// its own locks: writes the last frame and the header and fsyncs the temp file
    /// (failpoints `snapshot.before_write` .. `snapshot.after_fsync`). Nothing is visible
    /// yet; `finish` then only renames and fsyncs the directory. Calling it again does
    /// nothing; no payload may be written after it.
    pub fn prepare(&mut self) -> Result<()> {
        if self.prepared.is_some() {
            return Ok(());
        }
        self.check_not_failed()?;
        self.store.poison.check("finish snapshot")?;
        self.store.check_not_stale(self.meta)?;
        let r = self.complete_file();
        let header = self.fail(r)?;
        let r = self.sync();
        let r = self.store.poison.latch(r);
        self.fail(r)?;
        self.prepared = Some(header);
        Ok(())
    }

    fn complete_file(&mut self) -> Result<Header> {
        fault::check(&self.store.faults, "snapshot.before_write")?;
        if !self.buf.is_empty() {
            // The last frame: compressed here, after the helper's frame if it has one
            // (handing it over would only add a wait).
            if self.helper.as_ref().is_some_and(|h| h.in_flight) {
                self.push_frame()?;
            } else {
                self.compress_here()?;
            }
        }
        self.collect()?;
        self.helper = None;
        let expected = format::frames_for(self.payload_len, self.store.frame_bytes);
        assert_eq!(
            self.frames,
            expected,
            "snapshot writer for {}: wrote {} frames for {} payload bytes",
            self.tmp_path.display(),
            self.frames,
            self.payload_len
        );
        let mut header = Header {
            meta: self.meta,
            zstd_level: self.store.zstd_level,
            frame_bytes: self.store.frame_bytes,
            payload_len: self.payload_len,
            stored_len: self.pos - HEADER_LEN as u64,
            frame_count: self.frames,
            body_crc: 0,
        };
        let mut crc = header.body_crc_start();
        crc.combine(&self.body);
        header.body_crc = crc.finalize();
        self.file
            .write_all_at(&header.encode(), 0)
            .map_err(|e| StorageError::io("write snapshot header", &self.tmp_path, e))?;
        fault::check(&self.store.faults, "snapshot.after_write")?;
        Ok(header)
    }

    fn sync(&mut self) -> Result<()> {
        fault::check(&self.store.faults, "snapshot.before_fsync")?;
        if self.store.durability == Durability::Immediate {
            self.file
                .sync_data()
                .map_err(|e| StorageError::io("fdatasync snapshot", &self.tmp_path, e))?;
        }
        fault::check(&self.store.faults, "snapshot.after_fsync")
    }
}

impl Write for SnapshotFileWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.check_not_failed()?;
        if self.prepared.is_some() && !data.is_empty() {
            return Err(std::io::Error::other(format!(
                "snapshot {}: payload written after prepare",
                self.tmp_path.display()
            )));
        }
        let mut rest = data;
        while !rest.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(self.frame_bytes);
            }
            let n = rest.len().min(self.frame_bytes - self.buf.len());
            self.buf.extend_from_slice(&rest[..n]);
            self.payload_len += n as u64;
            rest = &rest[n..];
            if self.buf.len() == self.frame_bytes {
                let r = self.push_frame();
                self.fail(r)?;
            }
        }
        Ok(data.len())
    }

    /// Frames are written when full; `flush` writes nothing early (a partial frame would
    /// change the format's frame boundaries).
    fn flush(&mut self) -> std::io::Result<()> {
        self.check_not_failed()?;
        Ok(())
    }
}

impl Drop for SnapshotFileWriter {
    fn drop(&mut self) {
        self.helper = None;
        // After a successful finish the temp file has been renamed away and this finds
        // nothing; otherwise it discards the unfinished snapshot. A leftover temp file is
        // harmless: the store deletes temp files when it opens.
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}

fn helper_gone(path: &Path) -> StorageError {
    StorageError::io(
        "compress snapshot frame on the helper thread",
        path,
        std::io::Error::other("the helper thread ended unexpectedly"),
    )
}

fn spawn_helper(level: i32, path: PathBuf) -> Result<Helper> {
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let thread_path = path.clone();
    let handle = std::thread::Builder::new()
        .name("snapshot-compress".into())
        .spawn(move || {
            let mut cctx = zstd::bulk::Compressor::new(level);
            for mut job in job_rx {
                let result = match &mut cctx {
                    Ok(c) => compress_frame(c, &job.data, &mut job.out, &thread_path),
                    Err(e) => Err(StorageError::io(
                        "create zstd compressor",
                        &thread_path,
                        std::io::Error::new(e.kind(), e.to_string()),
                    )),
                };
                let done = Done {
                    data: job.data,
                    out: job.out,
                    result,
                };
                if done_tx.send(done).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| StorageError::io("spawn snapshot compress thread", &path, e))?;
    Ok(Helper {
        jobs: Some(job_tx),
        done: done_rx,
        handle: Some(handle),
        in_flight: false,
    })
}
