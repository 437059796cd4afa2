//! The receiving end of a snapshot stream: frames from the socket become chunks in a
//! bounded channel, read by [`ChunkStream`] (a `Read`) inside
//! [`NodeHandle::receive_snapshot`](crate::node::NodeHandle::receive_snapshot) on a
//! blocking thread. When the channel is full the task stops reading the socket, and
//! TCP flow control slows the sender down: memory stays bounded by the window.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use raftkv_storage::NodeId;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::conn::{FrameReader, write_all_timed};
use super::inbound::protocol_error;
use super::shared::{Shared, ShutdownSignal};
use super::stats::inc;
use crate::transport::chunk::StreamTally;
use crate::transport::frame::{
    Frame, FrameKind, SnapshotAck, SnapshotBegin, SnapshotEnd, decode_snapshot_begin_frame,
    decode_snapshot_chunk_frame, decode_snapshot_end_frame, encode_snapshot_ack_frame,
};
use crate::transport::{SNAPSHOT_WINDOW_CHUNKS, SnapshotStreamError};

/// What the socket task hands to the blocking reader.
enum Piece {
    Data(Bytes),
    End,
    Abort(String),
}

/// Serves a snapshot stream from `peer` whose first frame after the Hello is `first`
/// (a `SnapshotBegin`), then answers with a `SnapshotAck` and closes.
pub(super) async fn receive(
    shared: &Arc<Shared>,
    peer: NodeId,
    addr: SocketAddr,
    mut frames: FrameReader<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    first: &Frame,
    mut shutdown: ShutdownSignal,
) {
    let config = &shared.config;
    let begin = match decode_snapshot_begin_frame(first) {
        Ok(b) => b,
        Err(e) => return protocol_error(shared, peer, addr, &e),
    };
    if begin.from != peer {
        return protocol_error(
            shared,
            peer,
            addr,
            &format!(
                "snapshot stream from node {} on a connection from node {peer}",
                begin.from
            ),
        );
    }
    inc(&shared.counters.snapshots_received);
    tracing::info!(
        node = config.id,
        from = peer,
        index = begin.meta.index,
        bytes = begin.payload_len,
        "receiving a snapshot"
    );
    let ack = match shared.node() {
        None => SnapshotAck::NotRunning,
        Some(node) => {
            let (tx, rx) = mpsc::channel(SNAPSHOT_WINDOW_CHUNKS);
            let mut reader = ChunkStream::new(rx, begin.payload_len);
            let SnapshotBegin {
                from, term, meta, ..
            } = begin;
            let mut install = tokio::task::spawn_blocking(move || {
                node.receive_snapshot(from, term, meta, &mut reader)
            });
            let outcome = tokio::select! {
                r = &mut install => r,
                fed = feed(shared, &mut frames, tx, &begin) => {
                    if let Err(e) = fed {
                        tracing::warn!(node = config.id, from = peer, peer_addr = %addr, error = %e, "snapshot stream broke off");
                    }
                    install.await
                }
                () = shutdown.wait() => {
                    // The sender side of the chunk channel is gone with `feed`: the
                    // blocking reader fails and the receiver discards the stream.
                    return;
                }
            };
            match outcome {
                Ok(Ok(())) => SnapshotAck::Installed,
                Ok(Err(SnapshotStreamError::Rejected { .. })) => SnapshotAck::Rejected,
                Ok(Err(SnapshotStreamError::Stopped { .. })) => SnapshotAck::NotRunning,
                Ok(Err(e)) => SnapshotAck::Failed {
                    detail: e.to_string(),
                },
                Err(e) => SnapshotAck::Failed {
                    detail: format!("the receiving thread failed: {e}"),
                },
            }
        }
    };
    tracing::info!(node = config.id, from = peer, index = begin.meta.index, outcome = ?ack, "snapshot stream done");
    let mut buf = Vec::new();
    if encode_snapshot_ack_frame(&ack, &mut buf).is_err() {
        return;
    }
    if write_all_timed(&mut wr, &buf, config.write_timeout, shared)
        .await
        .is_err()
    {
        return;
    }
    let _ = wr.shutdown().await;
    // Let the sender read the outcome before the socket goes: closing with unread
    // chunks in the buffer would reset the connection. Discard until it closes.
    let _ = tokio::time::timeout(config.snapshot_timeout, async {
        while let Ok(Some(_)) = frames.next().await {}
    })
    .await;
}

/// Moves chunk frames into the channel until the stream's end. `Ok` also when the
/// reader went away (the install result says why).
async fn feed(
    shared: &Shared,
    frames: &mut FrameReader<OwnedReadHalf>,
    tx: mpsc::Sender<Piece>,
    begin: &SnapshotBegin,
) -> Result<(), String> {
    let idle = shared.config.snapshot_timeout;
    let mut received = 0u64;
    let result = loop {
        let f = match tokio::time::timeout(idle, frames.next()).await {
            Err(_) => break Err(format!("no snapshot frame for {idle:?}")),
            Ok(Err(e)) => break Err(e.to_string()),
            Ok(Ok(None)) => {
                break Err(format!(
                    "connection closed after {received} of {} bytes",
                    begin.payload_len
                ));
            }
            Ok(Ok(Some(f))) => f,
        };
        match f.kind {
            FrameKind::SnapshotChunk => {
                let chunk = decode_snapshot_chunk_frame(&f).map_err(|e| e.to_string())?;
                received += chunk.len() as u64;
                if tx.send(Piece::Data(chunk)).await.is_err() {
                    return Ok(());
                }
            }
            FrameKind::SnapshotEnd => match decode_snapshot_end_frame(&f) {
                Ok(SnapshotEnd::Complete { sent }) if sent == received => {
                    let _ = tx.send(Piece::End).await;
                    return Ok(());
                }
                Ok(SnapshotEnd::Complete { sent }) => {
                    break Err(format!(
                        "the sender reports {sent} bytes sent, {received} arrived"
                    ));
                }
                Ok(SnapshotEnd::Aborted { reason, .. }) => {
                    break Err(format!("aborted by the sender: {reason}"));
                }
                Err(e) => break Err(e.to_string()),
            },
            other => {
                break Err(format!(
                    "unexpected {other:?} frame at stream offset {} in a snapshot stream",
                    f.offset
                ));
            }
        }
    };
    if let Err(reason) = &result {
        // Never blocks; if the window is full, dropping `tx` cuts the stream off.
        let _ = tx.try_send(Piece::Abort(reason.clone()));
    }
    result
}

/// A `Read` over the chunks of one stream, for a blocking thread. Reports end of
/// stream only after the sender's end mark with exactly the announced length; a cut,
/// aborted or overlong stream is an IO error.
struct ChunkStream {
    rx: mpsc::Receiver<Piece>,
    current: Bytes,
    tally: StreamTally,
    finished: bool,
}

impl ChunkStream {
    fn new(rx: mpsc::Receiver<Piece>, expected: u64) -> Self {
        Self {
            rx,
            current: Bytes::new(),
            tally: StreamTally::new(expected),
            finished: false,
        }
    }
}

impl Read for ChunkStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.current.is_empty() {
                let n = buf.len().min(self.current.len());
                buf[..n].copy_from_slice(&self.current.split_to(n));
                return Ok(n);
            }
            if self.finished || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(chunk)) => {
                    self.tally.data(chunk.len())?;
                    self.current = chunk;
                }
                Some(Piece::End) => {
                    self.tally.end()?;
                    self.finished = true;
                    return Ok(0);
                }
                Some(Piece::Abort(reason)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("snapshot stream broke off: {reason}"),
                    ));
                }
                None => return Err(self.tally.cut_off()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_stream_checks_length_end_and_abort() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let run = |pieces: Vec<Piece>, expected: u64| {
            let (tx, rx) = mpsc::channel(16);
            rt.block_on(async {
                for p in pieces {
                    tx.send(p).await.expect("send");
                }
            });
            drop(tx);
            let mut out = Vec::new();
            let r = ChunkStream::new(rx, expected).read_to_end(&mut out);
            (r, out)
        };
        let (r, out) = run(
            vec![
                Piece::Data(Bytes::from_static(b"abc")),
                Piece::Data(Bytes::from_static(b"de")),
                Piece::End,
            ],
            5,
        );
        assert_eq!(r.expect("whole"), 5);
        assert_eq!(out, b"abcde");
        let (r, _) = run(vec![Piece::Data(Bytes::from_static(b"abc")), Piece::End], 5);
        assert_eq!(r.expect_err("short").kind(), io::ErrorKind::UnexpectedEof);
        let (r, _) = run(vec![Piece::Data(Bytes::from_static(b"abc"))], 3);
        assert_eq!(r.expect_err("cut").kind(), io::ErrorKind::UnexpectedEof);
        let (r, _) = run(vec![Piece::Data(Bytes::from_static(b"abcdef"))], 3);
        assert_eq!(r.expect_err("long").kind(), io::ErrorKind::InvalidData);
        let (r, _) = run(vec![Piece::Abort("gone".to_owned())], 3);
        let e = r.expect_err("aborted");
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
