//! Forwarding: a follower sends a batch of commands to the leader through a
//! [`Forwarder`] and the leader runs it with [`serve_forwarded`].
//!
//! # Format
//!
//! Both directions are encoded with [`raftkv_storage::codec`]:
//!
//! * request: [`ForwardRequest`] `{ format: u32 (= FORWARD_FORMAT), commands:
//!   Vec<Command> }`, the commands with the original client id and sequence numbers
//!   (reads carry seq 0), in the connection's order;
//! * reply: [`ForwardReply`] = `Result<Vec<Result<Reply, ExecError>>, String>`: one
//!   result per command, in order ([`execute_batch`]), or why the whole request was
//!   refused (undecodable, unknown format).

use std::future::Future;
use std::pin::Pin;

use raftkv_storage::{NodeId, codec};
use serde::{Deserialize, Serialize};

use super::exec::{ExecError, execute_batch};
use crate::command::{Command, Reply};
use crate::replica::Replica;

/// Carries a forwarded batch to another member and brings back its reply bytes.
pub trait Forwarder: Send + Sync + 'static {
    /// Sends `request` (an encoded [`ForwardRequest`]) to member `to`, which answers
    /// with [`serve_forwarded`]; resolves to the reply bytes, or why the call failed
    /// (the request may or may not have run there).
    fn call(
        &self,
        to: NodeId,
        request: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'static>>;
}

/// The version of the forwarding format this build speaks.
pub const FORWARD_FORMAT: u32 = 1;

/// A forwarded batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRequest {
    /// [`FORWARD_FORMAT`] of the sender.
    pub format: u32,
    /// The commands, in order.
    pub commands: Vec<Command>,
}

#[derive(Serialize)]
struct ForwardRequestRef<'a> {
    format: u32,
    commands: &'a [Command],
}

/// The answer to a forwarded batch: one result per command, or why the request was
/// refused as a whole.
pub type ForwardReply = Result<Vec<Result<Reply, ExecError>>, String>;

/// Encodes a forwarded batch of `commands`.
pub fn encode_forward_request(commands: &[Command]) -> Result<Vec<u8>, String> {
    codec::encode(&ForwardRequestRef {
        format: FORWARD_FORMAT,
        commands,
    })
    .map_err(|e| e.to_string())
}

/// Decodes a forwarded batch, checking its format version.
pub fn decode_forward_request(bytes: &[u8]) -> Result<ForwardRequest, String> {
    let request: ForwardRequest = codec::decode(bytes, codec::DEFAULT_DECODE_LIMIT)
        .map_err(|e| format!("undecodable forwarded request: {e}"))?;
    if request.format != FORWARD_FORMAT {
        return Err(format!(
            "forwarded request format {} (this member speaks {FORWARD_FORMAT})",
            request.format
        ));
    }
    Ok(request)
}

/// Decodes the reply to a forwarded batch of `expected` commands.
pub fn decode_forward_reply(
    bytes: &[u8],
    expected: usize,
) -> Result<Vec<Result<Reply, ExecError>>, String> {
    let reply: ForwardReply = codec::decode(bytes, codec::DEFAULT_DECODE_LIMIT)
        .map_err(|e| format!("undecodable forwarded reply: {e}"))?;
    let results = reply.map_err(|e| format!("the leader refused the request: {e}"))?;
    if results.len() != expected {
        return Err(format!(
            "forwarded reply has {} results for {expected} commands",
            results.len()
        ));
    }
    Ok(results)
}

/// The leader side: decodes a forwarded request, executes it on `replica` (blocking;
/// see [`execute_batch`]) and encodes the reply.
pub fn serve_forwarded(replica: &Replica, request: &[u8]) -> Vec<u8> {
    let reply: ForwardReply =
        decode_forward_request(request).map(|r| execute_batch(replica, &r.commands));
    match codec::encode(&reply) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a forwarded reply");
            let refused: ForwardReply = Err(format!("cannot encode the reply: {e}"));
            codec::encode(&refused).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::command::Op;

    #[test]
    fn request_and_reply_round_trip() {
        let commands = vec![
            Command {
                client_id: 7,
                seq: 3,
                ts_ms: 10,
                op: Op::Put {
                    key: Bytes::from_static(b"k"),
                    value: Bytes::from_static(b"v"),
                },
            },
            Command {
                client_id: 7,
                seq: 0,
                ts_ms: 11,
                op: Op::KeyCount,
            },
        ];
        let bytes = encode_forward_request(&commands).expect("encode");
        let back = decode_forward_request(&bytes).expect("decode");
        assert_eq!(back.commands, commands);
        assert_eq!(back.format, FORWARD_FORMAT);

        let reply: ForwardReply = Ok(vec![
            Ok(Reply::Written { version: 1 }),
            Err(ExecError::WrongLeader {
                leader_hint: Some(2),
            }),
        ]);
        let bytes = codec::encode(&reply).expect("encode");
        assert_eq!(decode_forward_reply(&bytes, 2), reply);
        assert!(decode_forward_reply(&bytes, 3).is_err());
        assert!(decode_forward_reply(&bytes[..bytes.len() - 1], 2).is_err());
    }

    #[test]
    fn unknown_format_is_refused() {
        let bytes = codec::encode(&ForwardRequest {
            format: FORWARD_FORMAT + 1,
            commands: Vec::new(),
        })
        .expect("encode");
        let e = decode_forward_request(&bytes).expect_err("format");
        assert!(e.contains("format"), "{e}");
        assert!(decode_forward_request(b"\xff\xff\xff").is_err());
    }
}
