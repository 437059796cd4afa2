//! The sending end of a snapshot stream, on a connection of its own so that a big
//! snapshot never delays heartbeats: the handshake, `SnapshotBegin`, chunks, `SnapshotEnd`,
//! then the receiver's `SnapshotAck`. A blocking thread reads the payload in
//! [`SNAPSHOT_CHUNK_BYTES`] pieces into a channel of [`SNAPSHOT_WINDOW_CHUNKS`]; the
//! task writes them out as the socket accepts them.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use raftkv_storage::{NodeId, SnapshotMeta, SnapshotReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::conn::{FrameReader, connect, write_all_timed};
use super::handshake;
use super::shared::Shared;
use super::stats::{add, inc};
use crate::transport::frame::{
    FrameKind, SnapshotAck, SnapshotBegin, SnapshotEnd, decode_snapshot_ack_frame,
    encode_snapshot_begin_frame, encode_snapshot_chunk_frame, encode_snapshot_end_frame,
};
use crate::transport::{
    SNAPSHOT_CHUNK_BYTES, SNAPSHOT_WINDOW_CHUNKS, SnapshotDone, SnapshotStreamError,
};

/// One snapshot stream to send.
pub(super) struct Outgoing {
    pub(super) to: NodeId,
    pub(super) addr: SocketAddr,
    pub(super) term: u64,
    pub(super) meta: SnapshotMeta,
    pub(super) from: NodeId,
    pub(super) payload: Box<dyn SnapshotReader>,
}

/// Streams `out` and reports the outcome through `done` (exactly once: `done` is
/// consumed here, or reports `Abandoned` if this task is dropped).
pub(super) async fn run(shared: Arc<Shared>, out: Outgoing, done: SnapshotDone) {
    let (to, meta) = (out.to, out.meta);
    inc(&shared.counters.snapshots_sent);
    let mut shutdown = shared.shutdown_signal();
    let outcome = tokio::select! {
        r = stream(&shared, out) => r,
        () = shutdown.wait() => Err(SnapshotStreamError::Aborted {
            reason: "the transport shut down".to_owned(),
        }),
    };
    match &outcome {
        Ok(()) => {
            inc(&shared.counters.snapshots_installed);
            tracing::info!(
                node = shared.config.id,
                to,
                index = meta.index,
                "snapshot installed by the peer"
            );
        }
        Err(e) => {
            inc(&shared.counters.snapshots_failed);
            tracing::warn!(node = shared.config.id, to, index = meta.index, error = %e, "snapshot stream failed");
        }
    }
    done.finish(outcome);
}

async fn stream(shared: &Arc<Shared>, out: Outgoing) -> Result<(), SnapshotStreamError> {
    let config = &shared.config;
    let Outgoing {
        to,
        addr,
        term,
        meta,
        from,
        payload,
    } = out;
    let socket = connect(addr, config.connect_timeout).await.map_err(|e| {
        tracing::debug!(node = config.id, to, %addr, error = %e, "cannot connect for a snapshot stream");
        SnapshotStreamError::Unreachable { to }
    })?;
    let (rd, mut wr) = socket.into_split();
    let mut frames = FrameReader::new(rd, Arc::clone(shared));
    handshake::dial(shared, &mut frames, &mut wr, to)
        .await
        .map_err(|e| SnapshotStreamError::Aborted {
            reason: e.to_string(),
        })?;
    let payload_len = payload.payload_len();
    let mut buf = Vec::new();
    encode_snapshot_begin_frame(
        &SnapshotBegin {
            from,
            term,
            meta,
            payload_len,
        },
        &mut buf,
    )
    .map_err(|e| SnapshotStreamError::Aborted {
        reason: e.to_string(),
    })?;
    write_all_timed(&mut wr, &buf, config.snapshot_timeout, shared).await?;

    let (chunk_tx, chunk_rx) = mpsc::channel(SNAPSHOT_WINDOW_CHUNKS);
    // The thread ends when the payload is read, or when `chunk_rx` is dropped.
    drop(tokio::task::spawn_blocking(move || {
        read_source(payload, &chunk_tx)
    }));
    let ack = async {
        match frames.next().await {
            Ok(Some(f)) if f.kind == FrameKind::SnapshotAck => decode_snapshot_ack_frame(&f)
                .map_err(|e| SnapshotStreamError::Aborted {
                    reason: format!("bad outcome from node {to}: {e}"),
                }),
            Ok(Some(f)) => Err(SnapshotStreamError::Aborted {
                reason: format!(
                    "node {to} sent a {:?} frame instead of the stream's outcome",
                    f.kind
                ),
            }),
            Ok(None) => Err(SnapshotStreamError::Aborted {
                reason: format!("node {to} closed the stream without an outcome"),
            }),
            Err(e) => Err(SnapshotStreamError::Aborted {
                reason: format!("reading node {to}'s outcome: {e}"),
            }),
        }
    };
    tokio::pin!(ack);
    let result = tokio::select! {
        // The receiver may answer before the end (it declined the offer, or failed).
        a = &mut ack => a,
        sent = send_chunks(shared, &mut wr, chunk_rx) => match sent {
            Ok(()) => match tokio::time::timeout(config.snapshot_timeout, &mut ack).await {
                Ok(a) => a,
                Err(_) => Err(SnapshotStreamError::Timeout {
                    during: "waiting for the receiver's outcome",
                }),
            },
            Err(e) => Err(e),
        },
    };
    match result? {
        SnapshotAck::Installed => Ok(()),
        SnapshotAck::Rejected => Err(SnapshotStreamError::Rejected { meta }),
        SnapshotAck::NotRunning => Err(SnapshotStreamError::Stopped { id: to }),
        SnapshotAck::Failed { detail } => Err(SnapshotStreamError::Aborted {
            reason: format!("node {to}: {detail}"),
        }),
    }
}

/// Writes chunks as they come from the source thread, then the end mark.
async fn send_chunks(
    shared: &Shared,
    wr: &mut OwnedWriteHalf,
    mut chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
) -> Result<(), SnapshotStreamError> {
    let config = &shared.config;
    let mut buf = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES + 64);
    let mut sent = 0u64;
    loop {
        buf.clear();
        let failure = match chunks.recv().await {
            Some(Ok(chunk)) => {
                encode_snapshot_chunk_frame(&chunk, config.max_frame_bytes, &mut buf).map_err(
                    |e| SnapshotStreamError::Aborted {
                        reason: e.to_string(),
                    },
                )?;
                write_all_timed(wr, &buf, config.snapshot_timeout, shared).await?;
                sent += chunk.len() as u64;
                add(&shared.counters.snapshot_bytes_sent, chunk.len() as u64);
                continue;
            }
            Some(Err(e)) => Some(e),
            None => None,
        };
        let end = match &failure {
            None => SnapshotEnd::Complete { sent },
            Some(e) => SnapshotEnd::Aborted {
                sent,
                reason: format!("reading the snapshot failed: {e}"),
            },
        };
        encode_snapshot_end_frame(&end, &mut buf).map_err(|e| SnapshotStreamError::Aborted {
            reason: e.to_string(),
        })?;
        write_all_timed(wr, &buf, config.snapshot_timeout, shared).await?;
        return match failure {
            None => Ok(()),
            Some(e) => Err(SnapshotStreamError::Io(e)),
        };
    }
}

/// Reads the payload in chunks of at most [`SNAPSHOT_CHUNK_BYTES`] on a blocking
/// thread; stops at the end, on an error (sent along), or when the task is gone.
fn read_source(mut payload: Box<dyn SnapshotReader>, tx: &mpsc::Sender<io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        let mut filled = 0;
        while filled < chunk.len() {
            match payload.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        chunk.truncate(filled);
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}
