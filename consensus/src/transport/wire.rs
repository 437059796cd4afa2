//! Message bytes for transports that cross a process boundary.
//!
//! Everything goes through `raftkv_storage::codec`, the one place that picks the
//! encoding. A decoder never allocates more than its limit, whatever a corrupt or
//! hostile length field claims.

use raftkv_storage::codec;

use crate::Message;

/// Default upper bound on one encoded message: a full AppendEntries of the default
/// `max_append_bytes` (1 MiB) fits many times over.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Encodes a message.
pub fn encode_message(msg: &Message) -> Result<Vec<u8>, raftkv_storage::StorageError> {
    codec::encode(msg)
}

/// Decodes exactly one message from `bytes`, which may not exceed `limit` bytes.
pub fn decode_message(bytes: &[u8], limit: usize) -> Result<Message, raftkv_storage::StorageError> {
    codec::decode(bytes, limit)
}
