//! [`SnapshotFileReader`]: streams a snapshot's payload out of a mapped file, verifying
//! each frame's crc before decompressing it and the whole file's crc before handing out
//! the last frame.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crc32fast::Hasher;
use memmap2::Mmap;

use super::format::{FrameRef, HEADER_LEN, Header, parse_frame_header};
use super::frame::decode_frame;
use crate::error::StorageError;
use crate::file::mmap;
use crate::persister::{Result, SnapshotReader};
use crate::types::SnapshotMeta;

/// Reads a snapshot file's payload as a stream.
///
/// The file is memory-mapped and the map is kept for the reader's lifetime, so the
/// reader keeps working after the file is replaced or unlinked (snapshot files are
/// never modified in place). Frames are checked and decompressed one at a time: memory
/// stays at a few frame buffers whatever the file says. With two threads (the default
/// on a machine with two or more cores), a helper thread decodes every other frame
/// while the caller decodes the next and consumes the bytes.
///
/// Any mismatch (crc, length, zstd error) is returned as an [`std::io::Error`] wrapping
/// [`StorageError::Corrupt`], which names the file and the offset; after an error every
/// further read fails.
pub struct SnapshotFileReader {
    path: PathBuf,
    map: Arc<Mmap>,
    header: Header,
    /// File offset of the next frame header to parse.
    next_offset: u64,
    /// Index of the next frame to parse.
    next_frame: u64,
    /// crc32 of the header prefix and every frame consumed so far, in file order.
    body_crc: Hasher,
    /// Payload bytes handed to `cur` so far.
    delivered: u64,
    /// The frame being served, and how much of it has been read.
    cur: Vec<u8>,
    cur_pos: usize,
    /// Frames decoded ahead, by index.
    ready: BTreeMap<u64, Decoded>,
    /// Index of the next frame to serve.
    next_serve: u64,
    dctx: zstd::bulk::Decompressor<'static>,
    helper: Option<Helper>,
    spare: Vec<Vec<u8>>,
    failed: Option<String>,
    done: bool,
}

impl std::fmt::Debug for SnapshotFileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFileReader")
            .field("path", &self.path)
            .field("meta", &self.header.meta)
            .field("payload_len", &self.header.payload_len)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

/// A decoded frame: its index, payload bytes and the crc32 state of its stored bytes.
struct Decoded {
    index: u64,
    data: Vec<u8>,
    piece: Hasher,
}

struct Job {
    frame: FrameRef,
    out: Vec<u8>,
}

struct Done {
    frame: FrameRef,
    out: Vec<u8>,
    result: Result<Hasher>,
}

/// Frames queued at the helper thread at most.
const HELPER_WINDOW: usize = 2;
/// Frames this thread decodes ahead, at most, while it waits for the helper.
const LOCAL_AHEAD: usize = 2;

/// The helper thread and the frames queued at it, oldest first.
struct Helper {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    handle: Option<JoinHandle<()>>,
    in_flight: usize,
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing the job channel ends the helper's loop.
        self.jobs = None;
        if let Some(h) = self.handle.take() {
            // A panic on the helper thread has already been reported; nothing to add.
            let _ = h.join();
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

impl SnapshotFileReader {
    /// Opens `path`, checking its header (magic, version, header crc, lengths against the
    /// file size). Frames are checked as they are read. Uses two threads when the machine
    /// has two cores or more.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_threads(path, default_threads())
    }

    /// Like [`open`](Self::open), decoding on `threads` threads (1 or 2; more is
    /// treated as 2).
    pub fn open_with_threads(path: &Path, threads: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| StorageError::io("open snapshot", path, e))?;
        Self::from_file(&file, path, threads)
    }

    /// Builds a reader over an already opened snapshot file.
    pub(crate) fn from_file(file: &File, path: &Path, threads: usize) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat snapshot", path, e))?
            .len();
        if len < HEADER_LEN as u64 {
            return Err(StorageError::corrupt(
                "snapshot header",
                path,
                0,
                format!("file is {len} bytes, shorter than the {HEADER_LEN}-byte header"),
            ));
        }
        let map = mmap::map_immutable(file, path)?;
        let header = Header::decode(&map, map.len() as u64, path)?;
        if header.frame_count > 1 {
            // Only a hint; a failure changes nothing but speed.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        let dctx = zstd::bulk::Decompressor::new()
            .map_err(|e| StorageError::io("create zstd decompressor", path, e))?;
        let map = Arc::new(map);
        let helper = if threads >= 2 && header.frame_count > 1 {
            Some(spawn_helper(Arc::clone(&map), path.to_path_buf())?)
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            body_crc: header.body_crc_start(),
            map,
            header,
            next_offset: HEADER_LEN as u64,
            next_frame: 0,
            delivered: 0,
            cur: Vec::new(),
            cur_pos: 0,
            ready: BTreeMap::new(),
            next_serve: 0,
            dctx,
            helper,
            spare: Vec::new(),
            failed: None,
            done: false,
        })
    }

    /// The snapshot's index and term.
    pub fn meta(&self) -> SnapshotMeta {
        self.header.meta
    }

    /// The payload length in bytes, as written.
    pub fn payload_len(&self) -> u64 {
        self.header.payload_len
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file (header and frames).
    pub fn stored_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Parses the next frame header, or `None` after the last frame.
    fn parse_next(&mut self) -> Result<Option<FrameRef>> {
        if self.next_frame == self.header.frame_count {
            return Ok(None);
        }
        let fr = parse_frame_header(
            &self.map,
            &self.header,
            self.next_frame,
            self.next_offset,
            &self.path,
        )?;
        self.next_frame += 1;
        self.next_offset = fr.end();
        Ok(Some(fr))
    }

    fn decode_here(&mut self, fr: FrameRef) -> Result<Decoded> {
        let mut out = self.spare.pop().unwrap_or_default();
        let piece = decode_frame(&mut self.dctx, &self.map, &fr, &mut out, &self.path)?;
        Ok(Decoded {
            index: fr.index,
            data: out,
            piece,
        })
    }

    fn dispatch(&mut self, fr: FrameRef) -> Result<()> {
        let out = self.spare.pop().unwrap_or_default();
        let helper = self.helper.as_mut().expect("dispatch needs the helper");
        debug_assert!(helper.in_flight < HELPER_WINDOW);
        let sent = helper
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job { frame: fr, out }).is_ok());
        if !sent {
            return Err(helper_gone(&self.path));
        }
        helper.in_flight += 1;
        Ok(())
    }

    /// The helper's oldest frame: waits for it if `wait`, else `None` if it is not done.
    fn collect(&mut self, wait: bool) -> Result<Option<Decoded>> {
        let helper = self.helper.as_mut().expect("collect needs the helper");
        debug_assert!(helper.in_flight > 0);
        let done = if wait {
            helper.done.recv().map_err(|_| helper_gone(&self.path))?
        } else {
            match helper.done.try_recv() {
                Ok(done) => done,
                Err(mpsc::TryRecvError::Empty) => return Ok(None),
                Err(mpsc::TryRecvError::Disconnected) => return Err(helper_gone(&self.path)),
            }
        };
        helper.in_flight -= 1;
        let piece = done.result?;
        Ok(Some(Decoded {
            index: done.frame.index,
            data: done.out,
            piece,
        }))
    }

    /// The next decoded frame in file order, or `None` after the last.
    ///
    /// With the helper: frames are handed out in order, the helper's queue is kept at
    /// [`HELPER_WINDOW`] frames, and while the frame wanted is still at the helper this
    /// thread decodes a later one (up to [`LOCAL_AHEAD`]) instead of waiting. A caller
    /// that is quick with each frame so gets both threads decoding; a caller that is
    /// slow (one that decodes records) finds each frame done and leaves all of the
    /// decompression to the helper.
    fn next_decoded(&mut self) -> Result<Option<Decoded>> {
        if self.helper.is_none() {
            return match self.parse_next()? {
                Some(fr) => self.decode_here(fr).map(Some),
                None => Ok(None),
            };
        }
        loop {
            while self
                .helper
                .as_ref()
                .is_some_and(|h| h.in_flight < HELPER_WINDOW)
            {
                match self.parse_next()? {
                    Some(fr) => self.dispatch(fr)?,
                    None => break,
                }
            }
            if let Some(d) = self.ready.remove(&self.next_serve) {
                self.next_serve += 1;
                return Ok(Some(d));
            }
            if self.next_serve == self.header.frame_count {
                return Ok(None);
            }
            // Every frame before the one wanted is served and it is not ready, so it is
            // the helper's oldest.
            debug_assert!(self.helper.as_ref().is_some_and(|h| h.in_flight > 0));
            let decoded = match self.collect(false)? {
                Some(d) => d,
                None if self.ready.len() < LOCAL_AHEAD => match self.parse_next()? {
                    Some(fr) => self.decode_here(fr)?,
                    None => self.collect(true)?.expect("collect waits"),
                },
                None => self.collect(true)?.expect("collect waits"),
            };
            self.ready.insert(decoded.index, decoded);
        }
    }

    /// Moves to the next frame. Returns false at the end of the payload, after checking
    /// the totals.
    fn advance(&mut self) -> Result<bool> {
        let next = self.next_decoded()?;
        let old = std::mem::take(&mut self.cur);
        if old.capacity() > 0 {
            self.spare.push(old);
        }
        self.cur_pos = 0;
        let Some(d) = next else {
            // Past the last frame (or a payload without frames): the totals must hold.
            self.finish_checks()?;
            return Ok(false);
        };
        self.body_crc.combine(&d.piece);
        self.delivered += d.data.len() as u64;
        self.cur = d.data;
        if d.index + 1 == self.header.frame_count {
            // Check the whole file before handing out its last bytes.
            self.finish_checks()?;
        }
        Ok(true)
    }

    fn finish_checks(&mut self) -> Result<()> {
        let file_len = self.map.len() as u64;
        if self.next_offset != file_len {
            return Err(StorageError::corrupt(
                "snapshot file",
                &self.path,
                self.next_offset,
                format!(
                    "{} bytes after the last frame",
                    file_len.saturating_sub(self.next_offset)
                ),
            ));
        }
        if self.delivered != self.header.payload_len {
            return Err(StorageError::corrupt(
                "snapshot file",
                &self.path,
                self.next_offset,
                format!(
                    "frames hold {} payload bytes, the header says {}",
                    self.delivered, self.header.payload_len
                ),
            ));
        }
        let crc = self.body_crc.clone().finalize();
        if crc != self.header.body_crc {
            return Err(StorageError::corrupt(
                "snapshot file",
                &self.path,
                super::format::OFF_BODY_CRC as u64,
                format!(
                    "file checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                    self.header.body_crc
                ),
            ));
        }
        Ok(())
    }
}

fn helper_gone(path: &Path) -> StorageError {
    StorageError::io(
        "decode snapshot frame on the helper thread",
        path,
        std::io::Error::other("the helper thread ended unexpectedly"),
    )
}

fn spawn_helper(map: Arc<Mmap>, path: PathBuf) -> Result<Helper> {
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let thread_path = path.clone();
    let handle = std::thread::Builder::new()
        .name("snapshot-decode".into())
        .spawn(move || {
            let mut dctx = zstd::bulk::Decompressor::new();
            for mut job in job_rx {
                let result = match &mut dctx {
                    Ok(d) => decode_frame(d, &map, &job.frame, &mut job.out, &thread_path),
                    Err(e) => Err(StorageError::io(
                        "create zstd decompressor",
                        &thread_path,
                        std::io::Error::new(e.kind(), e.to_string()),
                    )),
                };
                let done = Done {
                    frame: job.frame,
                    out: job.out,
                    result,
                };
                if done_tx.send(done).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| StorageError::io("spawn snapshot decode thread", &path, e))?;
    Ok(Helper {
        jobs: Some(job_tx),
        done: done_rx,
        handle: Some(handle),
        in_flight: 0,
    })
}

impl SnapshotFileReader {
    /// Makes `cur[cur_pos..]` non-empty; false at the end of the payload. After an
    /// error, every call fails.
    fn fill(&mut self) -> Result<bool> {
        loop {
            if let Some(cause) = &self.failed {
                return Err(StorageError::io(
                    "read snapshot",
                    &self.path,
                    std::io::Error::other(format!("the reader failed earlier: {cause}")),
                ));
            }
            if self.cur_pos < self.cur.len() {
                return Ok(true);
            }
            if self.done {
                return Ok(false);
            }
            match self.advance() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return Ok(false);
                }
                Err(e) => {
                    self.failed = Some(e.to_string());
                    // Stop the helper: nothing more will be read.
                    self.helper = None;
                    return Err(e);
                }
            }
        }
    }
}

impl Read for SnapshotFileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.cur.len() - self.cur_pos);
        buf[..n].copy_from_slice(&self.cur[self.cur_pos..self.cur_pos + n]);
        self.cur_pos += n;
        Ok(n)
    }
}

impl SnapshotReader for SnapshotFileReader {
    fn meta(&self) -> SnapshotMeta {
        self.header.meta
    }

    fn payload_len(&self) -> u64 {
        self.header.payload_len
    }

    /// Hands over each decoded frame itself (the rest of it, after reads).
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if !self.fill()? {
            return Ok(None);
        }
        let chunk = if self.cur_pos == 0 {
            std::mem::take(&mut self.cur)
        } else {
            let rest = self.cur[self.cur_pos..].to_vec();
            self.cur.clear();
            rest
        };
        self.cur_pos = 0;
        Ok(Some(chunk))
    }
}
