//! The one place that picks the binary encoding of structured values.
//!
//! Everything raftkv encodes with serde (Raft messages, KV snapshots, commands) goes
//! through these functions, so that the format can move to another encoder in one
//! change. Today it is bincode 2 through its serde API, with the standard config
//! (little-endian, variable-length integers) and a size limit on every decode.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{Read, Write};

use crate::error::StorageError;

/// The bincode configuration: little-endian, varint, no limit (limits are set per call).
fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Default upper bound on the bytes one decoded value may claim (1 GiB).
pub const DEFAULT_DECODE_LIMIT: usize = 1 << 30;

/// Encodes `value` into a new buffer.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| StorageError::Codec {
        op: "encode",
        detail: e.to_string(),
    })
}

/// Encodes `value` into a writer, streaming.
pub fn encode_into<T: Serialize + ?Sized, W: Write>(
    value: &T,
    writer: &mut W,
) -> Result<usize, StorageError> {
    bincode::serde::encode_into_std_write(value, writer, config()).map_err(|e| match e {
        // The writer's own failure (a full disk, say), with what it named.
        bincode::error::EncodeError::Io { inner, .. } => StorageError::io("encode", "", inner),
        other => StorageError::Codec {
            op: "encode",
            detail: other.to_string(),
        },
    })
}

/// Decodes a value from `bytes`, which must hold exactly one value. Collections and
/// strings may not claim more than `limit` bytes in total, so a corrupt length field
/// cannot make the decoder allocate without bound.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, StorageError> {
    if bytes.len() > limit {
        return Err(StorageError::Codec {
            op: "decode",
            detail: format!("{} bytes exceed the limit of {limit}", bytes.len()),
        });
    }
    let (value, used): (T, usize) =
        bincode::serde::decode_from_slice(bytes, config().with_limit::<{ DEFAULT_DECODE_LIMIT }>())
            .map_err(|e| StorageError::Codec {
                op: "decode",
                detail: e.to_string(),
            })?;
    if used != bytes.len() {
        return Err(StorageError::Codec {
            op: "decode",
            detail: format!("{} trailing bytes after the value", bytes.len() - used),
        });
    }
    Ok(value)
}

/// Decodes one value from a reader, streaming. Allocation is bounded by
/// [`DEFAULT_DECODE_LIMIT`].
pub fn decode_from<T: DeserializeOwned, R: Read>(reader: &mut R) -> Result<T, StorageError> {
    bincode::serde::decode_from_std_read(reader, config().with_limit::<{ DEFAULT_DECODE_LIMIT }>())
        .map_err(|e| StorageError::Codec {
            op: "decode",
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, HardState};

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let e = Entry {
            index: 7,
            term: 3,
            data: b"hello".to_vec(),
        };
        let mut bytes = encode(&e).expect("encode");
        assert_eq!(decode::<Entry>(&bytes, 1024).expect("decode"), e);
        bytes.push(0);
        let err = decode::<Entry>(&bytes, 1024).expect_err("trailing byte");
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn huge_length_prefix_is_an_error_not_an_allocation() {
        // A Vec<u8> whose varint length claims u64::MAX bytes.
        let mut bytes = vec![1u8, 1]; // index, term (varints)
        bytes.push(253); // u64 marker in bincode's varint encoding
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Entry>(&bytes, 1024).is_err());
        assert!(decode_from::<Entry, _>(&mut bytes.as_slice()).is_err());
    }

    #[test]
    fn hard_state_round_trips_through_a_stream() {
        let hs = HardState {
            term: 9,
            voted_for: Some(2),
            commit: 40,
        };
        let mut buf = Vec::new();
        encode_into(&hs, &mut buf).expect("encode");
        assert_eq!(
            decode_from::<HardState, _>(&mut buf.as_slice()).expect("decode"),
            hs
        );
    }
}
