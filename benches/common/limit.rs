//! The physical limits a snapshot and a restart are compared with, measured in the
//! same run on the same payload:
//!
//! * snapshot: serializing the state and zstd-compressing it in frames of the same size
//!   at the same level on the same number of threads as the snapshot writer, with no
//!   checksum, no file and no fsync ([`serialize_compress`]);
//! * restart: reading a file of those compressed frames and decompressing them on the
//!   same number of threads as the snapshot reader, with no checksum and no
//!   deserialization ([`LimitFile::read_decompress`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use raftkv::kvservice::state_machine::KvStateMachine;
use raftkv::storage::{DEFAULT_SNAPSHOT_FRAME_BYTES, StorageConfig};

/// The zstd level a node uses by default.
pub fn level() -> i32 {
    StorageConfig::default().zstd_level
}

/// Uncompressed bytes per frame, as the snapshot writer cuts them.
pub const FRAME: usize = DEFAULT_SNAPSHOT_FRAME_BYTES as usize;

/// Threads the snapshot writer and reader use: two on a machine with two cores or more.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Serializes `sm` as a snapshot payload and compresses it frame by frame; with two
/// threads a helper compresses every other frame, as the snapshot writer does. Returns
/// (payload bytes, compressed bytes).
pub fn serialize_compress(sm: &KvStateMachine) -> (u64, u64) {
    let mut sink = FrameCompressor::new(threads());
    let payload = sm
        .snapshot_view()
        .write_snapshot(&mut sink)
        .expect("serialize");
    (payload, sink.finish())
}

/// Serializes `sm` as a snapshot payload into nothing: the serialization share of
/// [`serialize_compress`]. Returns the payload bytes.
pub fn serialize(sm: &KvStateMachine) -> u64 {
    sm.snapshot_view()
        .write_snapshot(io::sink())
        .expect("serialize")
}

/// A `Write` that compresses each full frame and keeps only the compressed size.
struct FrameCompressor {
    buf: Vec<u8>,
    cctx: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
    compressed: u64,
    helper: Option<Helper>,
    turn: u64,
}

struct Helper {
    jobs: mpsc::SyncSender<Vec<u8>>,
    spare: mpsc::Receiver<Vec<u8>>,
    handle: std::thread::JoinHandle<u64>,
}

impl FrameCompressor {
    fn new(threads: usize) -> Self {
        let helper = (threads >= 2).then(|| {
            let (jobs, rx) = mpsc::sync_channel::<Vec<u8>>(1);
            let (back, spare) = mpsc::channel();
            let handle = std::thread::spawn(move || {
                let mut cctx = zstd::bulk::Compressor::new(level()).expect("compressor");
                let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(FRAME));
                let mut total = 0u64;
                for mut frame in rx {
                    out.clear();
                    total += cctx.compress_to_buffer(&frame, &mut out).expect("compress") as u64;
                    frame.clear();
                    let _ = back.send(frame);
                }
                total
            });
            Helper {
                jobs,
                spare,
                handle,
            }
        });
        Self {
            buf: Vec::with_capacity(FRAME),
            cctx: zstd::bulk::Compressor::new(level()).expect("compressor"),
            out: Vec::with_capacity(zstd::zstd_safe::compress_bound(FRAME)),
            compressed: 0,
            helper,
            turn: 0,
        }
    }

    fn flush_frame(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        self.turn += 1;
        match &self.helper {
            Some(h) if self.turn % 2 == 0 => {
                let next = h
                    .spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(FRAME));
                let frame = std::mem::replace(&mut self.buf, next);
                h.jobs.send(frame).expect("helper");
            }
            _ => {
                self.out.clear();
                self.compressed += self
                    .cctx
                    .compress_to_buffer(&self.buf, &mut self.out)
                    .expect("compress") as u64;
                self.buf.clear();
            }
        }
    }

    fn finish(mut self) -> u64 {
        self.flush_frame();
        let mut total = self.compressed;
        if let Some(h) = self.helper.take() {
            drop(h.jobs);
            total += h.handle.join().expect("helper");
        }
        total
    }
}

impl Write for FrameCompressor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(FRAME - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == FRAME {
            self.flush_frame();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A file of independently compressed frames of a snapshot payload, with their lengths
/// kept beside it in memory (no header, no checksums).
pub struct LimitFile {
    pub path: PathBuf,
    frames: Vec<usize>,
    pub payload: u64,
}

impl LimitFile {
    /// Serializes and compresses `sm` into `dir/payload.zst` (untimed preparation).
    pub fn create(dir: &Path, sm: &KvStateMachine) -> LimitFile {
        let mut payload = Vec::new();
        sm.snapshot_view()
            .write_snapshot(&mut payload)
            .expect("serialize");
        let mut cctx = zstd::bulk::Compressor::new(level()).expect("compressor");
        let mut file = Vec::with_capacity(payload.len() / 2);
        let mut frames = Vec::new();
        for chunk in payload.chunks(FRAME) {
            let c = cctx.compress(chunk).expect("compress");
            frames.push(c.len());
            file.extend_from_slice(&c);
        }
        std::fs::create_dir_all(dir).expect("limit dir");
        let path = dir.join("payload.zst");
        let mut f = std::fs::File::create(&path).expect("create limit file");
        f.write_all(&file).expect("write limit file");
        f.sync_all().expect("sync limit file");
        LimitFile {
            path,
            frames,
            payload: payload.len() as u64,
        }
    }

    /// Bytes of the file.
    pub fn stored(&self) -> u64 {
        self.frames.iter().sum::<usize>() as u64
    }

    /// Reads the file and decompresses every frame (the second thread takes every other
    /// frame). Returns the decompressed bytes.
    pub fn read_decompress(&self) -> u64 {
        let data = std::fs::read(&self.path).expect("read limit file");
        let mut offsets = Vec::with_capacity(self.frames.len());
        let mut at = 0;
        for len in &self.frames {
            offsets.push((at, *len));
            at += len;
        }
        let decode = |parity: usize, step: usize| {
            let mut dctx = zstd::bulk::Decompressor::new().expect("decompressor");
            let mut out = vec![0u8; FRAME];
            let mut total = 0u64;
            for &(at, len) in offsets.iter().skip(parity).step_by(step) {
                total += dctx
                    .decompress_to_buffer(&data[at..at + len], &mut out[..])
                    .expect("decompress") as u64;
            }
            total
        };
        let total = if threads() >= 2 {
            std::thread::scope(|s| {
                let other = s.spawn(|| decode(1, 2));
                decode(0, 2) + other.join().expect("decoder")
            })
        } else {
            decode(0, 1)
        };
        assert_eq!(
            total, self.payload,
            "the limit file decompresses to the payload"
        );
        total
    }
}
