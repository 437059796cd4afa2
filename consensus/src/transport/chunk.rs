//! Snapshot payloads as a bounded stream of chunks.
//!
//! [`chunk_pipe`] makes a sender/reader pair joined by a channel of at most `window`
//! chunks. The sending side [`pump`]s a source reader into the [`ChunkSender`]; the
//! receiving side reads the [`ChunkReader`] like any `Read`, which blocks while no chunk
//! is available. The reader only reports end-of-stream after the sender said the
//! stream is complete *and* the byte count matches the announced length: a stream
//! that is cut off, aborted or stalls past its idle timeout is an IO error, never a
//! short payload that looks whole.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use super::SnapshotStreamError;

enum Frame {
    Data(Vec<u8>),
    End,
    Abort(String),
}

/// Makes a chunk pipe for a payload of `payload_len` bytes, holding at most `window`
/// chunks in flight. The reader fails with [`io::ErrorKind::TimedOut`] if no chunk
/// arrives for `idle_timeout`.
pub fn chunk_pipe(
    window: usize,
    payload_len: u64,
    idle_timeout: Duration,
) -> (ChunkSender, ChunkReader) {
    let (tx, rx) = sync_channel(window.max(1));
    (
        ChunkSender { tx },
        ChunkReader {
            rx,
            current: Vec::new(),
            pos: 0,
            tally: StreamTally::new(payload_len),
            finished: false,
            idle_timeout,
        },
    )
}

/// The sending end of a chunk pipe. Dropping it without [`finish`](Self::finish) makes
/// the reader fail with [`io::ErrorKind::UnexpectedEof`].
#[derive(Debug)]
pub struct ChunkSender {
    tx: SyncSender<Frame>,
}

/// The reader went away: the receiver stopped consuming the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the snapshot stream's receiver is gone")]
pub struct ReceiverGone;

impl ChunkSender {
    /// Sends one chunk, blocking while the window is full.
    pub fn send(&self, chunk: Vec<u8>) -> Result<(), ReceiverGone> {
        self.tx.send(Frame::Data(chunk)).map_err(|_| ReceiverGone)
    }

    /// Marks the stream complete.
    pub fn finish(self) -> Result<(), ReceiverGone> {
        self.tx.send(Frame::End).map_err(|_| ReceiverGone)
    }

    /// Breaks the stream off: the reader's next read fails with `reason`. Never blocks:
    /// if the window is full the abort is carried by dropping the sender instead.
    pub fn abort(self, reason: impl Into<String>) {
        match self.tx.try_send(Frame::Abort(reason.into())) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Counts a snapshot stream's payload bytes against the length its sender announced,
/// with the errors every stream reader gives: more than announced, an end mark before
/// all of it, or a stream cut off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamTally {
    received: u64,
    expected: u64,
}

impl StreamTally {
    /// A stream announced as `expected` bytes.
    pub(crate) fn new(expected: u64) -> Self {
        Self {
            received: 0,
            expected,
        }
    }

    /// The announced length.
    pub(crate) fn expected(&self) -> u64 {
        self.expected
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Counts a chunk of `len` bytes; an error if the stream now exceeds its length.
    pub(crate) fn data(&mut self, len: usize) -> io::Result<()> {
        self.received += len as u64;
        if self.received > self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot stream carries more than the announced {} bytes",
                    self.expected
                ),
            ));
        }
        Ok(())
    }

    /// The sender's end mark: an error unless every announced byte arrived.
    pub(crate) fn end(&self) -> io::Result<()> {
        if self.received != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "snapshot stream ended after {} of {} bytes",
                    self.received, self.expected
                ),
            ));
        }
        Ok(())
    }

    /// The error for a stream whose sender went away without an end mark.
    pub(crate) fn cut_off(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "snapshot stream cut off after {} of {} bytes",
                self.received, self.expected
            ),
        )
    }
}

/// The receiving end of a chunk pipe: a `Read` over the payload.
#[derive(Debug)]
pub struct ChunkReader {
    rx: Receiver<Frame>,
    current: Vec<u8>,
    pos: usize,
    tally: StreamTally,
    finished: bool,
    idle_timeout: Duration,
}

impl ChunkReader {
    /// The payload length the sender announced.
    pub fn payload_len(&self) -> u64 {
        self.tally.expected()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.len().min(self.current.len() - self.pos);
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.finished || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.recv_timeout(self.idle_timeout) {
                Ok(Frame::Data(chunk)) => {
                    self.tally.data(chunk.len())?;
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Frame::End) => {
                    self.tally.end()?;
                    self.finished = true;
                    self.current = Vec::new();
                    return Ok(0);
                }
                Ok(Frame::Abort(reason)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("snapshot stream aborted by the sender: {reason}"),
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no snapshot chunk for {:?} after {} of {} bytes",
                            self.idle_timeout,
                            self.tally.received(),
                            self.tally.expected()
                        ),
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.tally.cut_off());
                }
            }
        }
    }
}

/// Reads `source` in chunks of at most `chunk_bytes` and sends them, calling `check`
/// before each chunk (a transport uses it to stop a stream whose link went down).
/// Returns the bytes sent. On an error the sender is aborted; if the receiver went away
/// the pump stops with `Ok` and the receiver's own result tells why.
pub fn pump(
    source: &mut dyn Read,
    sender: ChunkSender,
    chunk_bytes: usize,
    mut check: impl FnMut() -> Result<(), SnapshotStreamError>,
) -> Result<u64, SnapshotStreamError> {
    let mut sent = 0u64;
    loop {
        if let Err(e) = check() {
            sender.abort(e.to_string());
            return Err(e);
        }
        let mut chunk = vec![0u8; chunk_bytes.max(1)];
        let mut filled = 0;
        while filled < chunk.len() {
            match source.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    sender.abort(format!("reading the snapshot failed: {e}"));
                    return Err(SnapshotStreamError::Io(e));
                }
            }
        }
        if filled == 0 {
            // A receiver that is gone already has its own result.
            let _ = sender.finish();
            return Ok(sent);
        }
        chunk.truncate(filled);
        if sender.send(chunk).is_err() {
            return Ok(sent);
        }
        sent += filled as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn streams_a_payload_across_threads_in_bounded_chunks() {
        let data = payload(5 * 1000 + 17);
        let (tx, mut rx) = chunk_pipe(2, data.len() as u64, Duration::from_secs(30));
        let src = data.clone();
        let pumper = thread::spawn(move || pump(&mut src.as_slice(), tx, 1000, || Ok(())));
        let mut got = Vec::new();
        rx.read_to_end(&mut got).expect("read");
        assert_eq!(
            pumper.join().expect("join").expect("pump"),
            data.len() as u64
        );
        assert_eq!(got, data);
    }

    #[test]
    fn window_bounds_chunks_in_flight() {
        let (tx, _rx) = chunk_pipe(2, 10, Duration::from_secs(30));
        tx.send(vec![1]).expect("first");
        tx.send(vec![2]).expect("second");
        // A third chunk would block: the window is full.
        assert!(matches!(
            tx.tx.try_send(Frame::Data(vec![3])),
            Err(TrySendError::Full(_))
        ));
    }

    #[test]
    fn short_cut_off_aborted_and_overlong_streams_are_errors() {
        let (tx, mut rx) = chunk_pipe(4, 10, Duration::from_secs(30));
        tx.send(vec![0; 4]).expect("send");
        tx.finish().expect("finish");
        let err = rx.read_to_end(&mut Vec::new()).expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let (tx, mut rx) = chunk_pipe(4, 10, Duration::from_secs(30));
        tx.send(vec![0; 4]).expect("send");
        drop(tx);
        let err = rx.read_to_end(&mut Vec::new()).expect_err("cut off");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let (tx, mut rx) = chunk_pipe(4, 10, Duration::from_secs(30));
        tx.abort("link down");
        let err = rx.read_to_end(&mut Vec::new()).expect_err("aborted");
        assert!(err.to_string().contains("link down"), "{err}");

        let (tx, mut rx) = chunk_pipe(4, 3, Duration::from_secs(30));
        tx.send(vec![0; 4]).expect("send");
        let err = rx.read_to_end(&mut Vec::new()).expect_err("too long");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_stalled_sender_times_out() {
        let (tx, mut rx) = chunk_pipe(4, 10, Duration::from_millis(20));
        let err = rx.read_to_end(&mut Vec::new()).expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(tx);
    }

    #[test]
    fn pump_stops_when_check_fails_and_the_reader_sees_the_abort() {
        let data = payload(10_000);
        let (tx, mut rx) = chunk_pipe(64, data.len() as u64, Duration::from_secs(30));
        let mut calls = 0;
        let r = pump(&mut data.as_slice(), tx, 1000, || {
            calls += 1;
            if calls > 3 {
                Err(SnapshotStreamError::Unreachable { to: 2 })
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(SnapshotStreamError::Unreachable { to: 2 })));
        let mut got = Vec::new();
        let err = rx.read_to_end(&mut got).expect_err("aborted");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(got.len(), 3000);
    }
}
