//! Socket helpers shared by both sides: [`FrameReader`] (frames from a byte stream, in
//! bounded memory), timed connects and writes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::shared::Shared;
use super::stats::add;
use crate::transport::frame::{Frame, FrameDecoder, FrameError};

/// Bytes asked of the socket per read (the buffer grows beyond it only to hold one
/// frame, which the decoder has checked against the frame limit).
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a [`FrameReader`] stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The stream lost its framing (or is hostile); names the offset.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The peer closed the connection in the middle of a frame.
    #[error(
        "connection closed in the middle of a frame at stream offset {offset} ({buffered} bytes buffered)"
    )]
    Truncated {
        /// Stream offset of the incomplete frame.
        offset: u64,
        /// Its bytes received.
        buffered: usize,
    },
}

/// Reads frames from a byte stream.
pub(super) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    decoder: FrameDecoder,
    shared: Arc<Shared>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(super) fn new(io: R, shared: Arc<Shared>) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            decoder: FrameDecoder::new(shared.config.max_frame_bytes),
            shared,
        }
    }

    /// Changes the frame limit for the frames still to come.
    pub(super) fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.decoder.set_max_frame_bytes(max_frame_bytes);
    }

    /// The next frame; `Ok(None)` if the peer closed the connection between frames.
    /// Cancel safe: bytes read are kept in the buffer.
    pub(super) async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            self.buf.reserve(READ_CHUNK_BYTES);
            let n = self.io.read_buf(&mut self.buf).await?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(ReadError::Truncated {
                    offset: self.decoder.stream_offset(),
                    buffered: self.buf.len(),
                });
            }
            add(&self.shared.counters.bytes_received, n as u64);
        }
    }
}

/// Connects to `addr` within `timeout`, with `TCP_NODELAY` set.
pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            ));
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Writes all of `buf` unless the write stalls for `timeout`; counts the bytes.
pub(super) async fn write_all_timed<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    timeout: Duration,
    shared: &Shared,
) -> io::Result<()> {
    match tokio::time::timeout(timeout, w.write_all(buf)).await {
        Ok(Ok(())) => {
            add(&shared.counters.bytes_sent, buf.len() as u64);
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "a write of {} bytes stalled for {timeout:?} (the peer does not read)",
                buf.len()
            ),
        )),
    }
}
