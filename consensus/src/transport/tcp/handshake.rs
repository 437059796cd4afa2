//! The peer handshake: every connection proves, both ways, that its two ends share the
//! cluster secret, before any Raft message, request or snapshot crosses it.
//!
//! ```text
//!   dialer                                         acceptor
//!     ── Hello {cluster, from, to, nonce_d} ──────────▶  checks cluster, from, to
//!     ◀── Challenge {nonce_a, proof_a} ────────────────
//!   checks proof_a
//!     ── Proof {proof_d} ──────────────────────────────▶  checks proof_d
//!     ── the connection's frames ───────────────────────▶
//! ```
//!
//! `proof_a` and `proof_d` are HMAC-SHA256 tags under the [`ClusterSecret`] of a
//! transcript naming the cluster, both nodes and both nonces, each with its own side
//! label ([`Side`]): a proof is good for one connection only, a captured one cannot be
//! replayed (the other side's nonce is fresh), and neither side's proof can stand in
//! for the other's. The dialer sends nothing but its Hello before it has checked the
//! acceptor's proof, so a node that does not know the secret can neither inject
//! messages nor impersonate a member to a dialer (and learn what it would send). The
//! byte layout is in `storage/FORMAT.md`, "Raft wire frames (TCP transport)".

use std::sync::Arc;
use std::time::Duration;

use raftkv_storage::NodeId;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{FrameReader, ReadError, write_all_timed};
use super::secret::{PROOF_BYTES, Side, Transcript};
use super::shared::Shared;
use crate::transport::frame::{
    self, Frame, FrameError, FrameKind, Hello, NONCE_BYTES, encode_hello_frame,
};

/// Size of a [`FrameKind::Challenge`] payload: the acceptor's nonce, then its proof.
pub const CHALLENGE_PAYLOAD_BYTES: usize = NONCE_BYTES + PROOF_BYTES;

/// Why a handshake failed. The text names the peer and what was wrong.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    /// The socket failed or the stream lost its framing.
    #[error("handshake with {peer}: {source}")]
    Read {
        /// Who (a node id, or "an unnamed peer").
        peer: String,
        /// Why.
        source: ReadError,
    },
    /// The other side closed the connection during the handshake.
    #[error(
        "handshake with {peer}: closed by the other side (does it share this cluster's id and secret?)"
    )]
    Closed {
        /// Who.
        peer: String,
    },
    /// A write failed or stalled.
    #[error("handshake with {peer}: {source}")]
    Write {
        /// Who.
        peer: String,
        /// Why.
        source: std::io::Error,
    },
    /// No answer within the handshake timeout.
    #[error("handshake with {peer}: no {waiting_for} within {timeout:?}")]
    Timeout {
        /// Who.
        peer: String,
        /// The frame awaited.
        waiting_for: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// A frame that is not the expected one, or does not decode.
    #[error("handshake with {peer}: {detail}")]
    Protocol {
        /// Who.
        peer: String,
        /// What was wrong, with the stream offset.
        detail: String,
    },
    /// The other side does not know the cluster secret.
    #[error(
        "handshake with {peer}: its proof of the cluster secret is wrong (the members' \
         cluster_secret settings differ)"
    )]
    BadProof {
        /// Who.
        peer: String,
    },
}

fn fresh_nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::thread_rng().fill_bytes(&mut nonce);
    nonce
}

/// Reads the next frame, which must be of `kind`, within the handshake timeout.
async fn expect_frame<R: AsyncRead + Unpin>(
    shared: &Shared,
    frames: &mut FrameReader<R>,
    kind: FrameKind,
    peer: &str,
) -> Result<Frame, HandshakeError> {
    let timeout = shared.config.handshake_timeout;
    let frame = match tokio::time::timeout(timeout, frames.next()).await {
        Err(_) => {
            return Err(HandshakeError::Timeout {
                peer: peer.to_owned(),
                waiting_for: kind_name(kind),
                timeout,
            });
        }
        Ok(Err(source)) => {
            return Err(HandshakeError::Read {
                peer: peer.to_owned(),
                source,
            });
        }
        Ok(Ok(None)) => {
            return Err(HandshakeError::Closed {
                peer: peer.to_owned(),
            });
        }
        Ok(Ok(Some(f))) => f,
    };
    if frame.kind != kind {
        return Err(HandshakeError::Protocol {
            peer: peer.to_owned(),
            detail: format!(
                "expected a {} frame, got {:?} at stream offset {}",
                kind_name(kind),
                frame.kind,
                frame.offset
            ),
        });
    }
    Ok(frame)
}

fn kind_name(kind: FrameKind) -> &'static str {
    match kind {
        FrameKind::Hello => "Hello",
        FrameKind::Challenge => "Challenge",
        FrameKind::Proof => "Proof",
        _ => "handshake",
    }
}

/// Checks that `frame`'s payload is exactly `N` bytes.
fn fixed_payload<const N: usize>(frame: &Frame, peer: &str) -> Result<[u8; N], HandshakeError> {
    <[u8; N]>::try_from(&frame.payload[..]).map_err(|_| HandshakeError::Protocol {
        peer: peer.to_owned(),
        detail: FrameError::BadPayload {
            kind: frame.kind,
            offset: frame.offset,
            detail: format!("payload is {} bytes, expected {N}", frame.payload.len()),
        }
        .to_string(),
    })
}

async fn send<W: AsyncWrite + Unpin>(
    shared: &Shared,
    wr: &mut W,
    buf: &[u8],
    peer: &str,
) -> Result<(), HandshakeError> {
    write_all_timed(wr, buf, shared.config.write_timeout, shared)
        .await
        .map_err(|source| HandshakeError::Write {
            peer: peer.to_owned(),
            source,
        })
}

/// Encodes one frame of `kind` and sends it.
async fn send_frame<W: AsyncWrite + Unpin>(
    shared: &Shared,
    wr: &mut W,
    kind: FrameKind,
    payload: &[u8],
    peer: &str,
) -> Result<(), HandshakeError> {
    let mut buf = Vec::with_capacity(frame::FRAME_HEADER_BYTES + payload.len());
    frame::encode_frame(kind, payload, &mut buf).map_err(|e| HandshakeError::Protocol {
        peer: peer.to_owned(),
        detail: e.to_string(),
    })?;
    send(shared, wr, &buf, peer).await
}

/// The dialer's side, run on a fresh connection to node `to`: sends the Hello, checks
/// the acceptor's proof, sends its own. Returns once the connection may carry frames.
pub(super) async fn dial<R, W>(
    shared: &Arc<Shared>,
    frames: &mut FrameReader<R>,
    wr: &mut W,
    to: NodeId,
) -> Result<(), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    let peer = format!("node {to}");
    let hello = Hello {
        cluster_id: config.cluster_id,
        node_id: config.id,
        to,
        nonce: fresh_nonce(),
    };
    let mut buf = Vec::with_capacity(64);
    encode_hello_frame(&hello, &mut buf).map_err(|e| HandshakeError::Protocol {
        peer: peer.clone(),
        detail: e.to_string(),
    })?;
    send(shared, wr, &buf, &peer).await?;

    let challenge = expect_frame(shared, frames, FrameKind::Challenge, &peer).await?;
    let payload: [u8; CHALLENGE_PAYLOAD_BYTES] = fixed_payload(&challenge, &peer)?;
    let (nonce, proof) = payload.split_at(NONCE_BYTES);
    let mut acceptor_nonce = [0u8; NONCE_BYTES];
    acceptor_nonce.copy_from_slice(nonce);
    let transcript = Transcript {
        cluster_id: config.cluster_id,
        dialer: config.id,
        acceptor: to,
        dialer_nonce: hello.nonce,
        acceptor_nonce,
    };
    if !config.secret.verify(Side::Acceptor, &transcript, proof) {
        return Err(HandshakeError::BadProof { peer });
    }
    let ours = config.secret.prove(Side::Dialer, &transcript);
    send_frame(shared, wr, FrameKind::Proof, &ours, &peer).await
}

/// The acceptor's side, after it has checked `hello` (cluster, sender, addressee):
/// answers with its nonce and proof, then checks the dialer's proof.
pub(super) async fn accept<R, W>(
    shared: &Arc<Shared>,
    frames: &mut FrameReader<R>,
    wr: &mut W,
    hello: &Hello,
) -> Result<(), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    let peer = format!("node {}", hello.node_id);
    let transcript = Transcript {
        cluster_id: config.cluster_id,
        dialer: hello.node_id,
        acceptor: config.id,
        dialer_nonce: hello.nonce,
        acceptor_nonce: fresh_nonce(),
    };
    let mut payload = [0u8; CHALLENGE_PAYLOAD_BYTES];
    payload[..NONCE_BYTES].copy_from_slice(&transcript.acceptor_nonce);
    payload[NONCE_BYTES..].copy_from_slice(&config.secret.prove(Side::Acceptor, &transcript));
    send_frame(shared, wr, FrameKind::Challenge, &payload, &peer).await?;
    let proof = expect_frame(shared, frames, FrameKind::Proof, &peer).await?;
    let proof: [u8; PROOF_BYTES] = fixed_payload(&proof, &peer)?;
    if !config.secret.verify(Side::Dialer, &transcript, &proof) {
        return Err(HandshakeError::BadProof { peer });
    }
    Ok(())
}
