//! The one place that picks the binary encoding of structured values.
//!
//! Everything raftkv encodes with serde (Raft messages, KV snapshots, commands) goes
//! through these functions, so that the format can move to another encoder in one
//! change. Today it is bincode 2 through its serde API, with the standard config
//! (little-endian, variable-length integers) and a size limit on every decode.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
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

/// Decodes one value from the front of `bytes`, borrowing its byte strings (`&[u8]`
/// fields) from `bytes` instead of copying them; returns the value and how many bytes
/// it used, or `None` when `bytes` ends before the value does (a caller reading a
/// stream in pieces retries with more bytes, and a caller at the end of its input has
/// a truncated value). Allocation is bounded by [`DEFAULT_DECODE_LIMIT`] (and a
/// borrowed string by `bytes`).
pub fn decode_borrowed_prefix<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<Option<(T, usize)>, StorageError> {
    match bincode::serde::borrow_decode_from_slice(
        bytes,
        config().with_limit::<{ DEFAULT_DECODE_LIMIT }>(),
    ) {
        Ok(decoded) => Ok(Some(decoded)),
        Err(bincode::error::DecodeError::UnexpectedEnd { .. }) => Ok(None),
        Err(e) => Err(StorageError::Codec {
            op: "decode",
            detail: e.to_string(),
        }),
    }
}

/// A key record borrowed from the bytes it was decoded from: key, value, version.
pub type KeyRecordRef<'a> = (&'a [u8], &'a [u8], u64);

/// A `(bytes, bytes, u64)` at the front of `bytes` (a snapshot's key record: key, value,
/// version), decoded exactly as [`decode_borrowed_prefix`] decodes it but without
/// serde, for a restore's hot loop: bincode's varint integers (one byte below 251, else
/// a marker byte 251, 252 or 253 and a little-endian u16, u32 or u64) and byte strings
/// (a varint length, then the bytes). Returns the two strings as slices of `bytes`, the
/// integer and the bytes used; `None` when `bytes` ends first.
pub fn decode_key_record_prefix(
    bytes: &[u8],
) -> Result<Option<(KeyRecordRef<'_>, usize)>, StorageError> {
    let mut at = 0;
    let Some(key) = take_bytes(bytes, &mut at)? else {
        return Ok(None);
    };
    let Some(value) = take_bytes(bytes, &mut at)? else {
        return Ok(None);
    };
    let Some(version) = take_varint(bytes, &mut at)? else {
        return Ok(None);
    };
    Ok(Some(((key, value, version), at)))
}

fn take_varint(bytes: &[u8], at: &mut usize) -> Result<Option<u64>, StorageError> {
    let Some(&first) = bytes.get(*at) else {
        return Ok(None);
    };
    let width = match first {
        0..=250 => {
            *at += 1;
            return Ok(Some(u64::from(first)));
        }
        251 => 2,
        252 => 4,
        253 => 8,
        other => {
            return Err(StorageError::Codec {
                op: "decode",
                detail: format!("invalid integer marker {other} at byte {}", *at),
            });
        }
    };
    let Some(raw) = bytes.get(*at + 1..*at + 1 + width) else {
        return Ok(None);
    };
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(raw);
    *at += 1 + width;
    Ok(Some(u64::from_le_bytes(le)))
}

fn take_bytes<'a>(bytes: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, StorageError> {
    let start = *at;
    let Some(len) = take_varint(bytes, at)? else {
        return Ok(None);
    };
    if len > DEFAULT_DECODE_LIMIT as u64 {
        return Err(StorageError::Codec {
            op: "decode",
            detail: format!(
                "a byte string of {len} bytes at byte {start} exceeds the limit of \
                 {DEFAULT_DECODE_LIMIT}"
            ),
        });
    }
    // Within the limit, so it fits a usize.
    let len = len as usize;
    let Some(out) = bytes.get(*at..*at + len) else {
        return Ok(None);
    };
    *at += len;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, HardState};

    fn hello() -> Entry {
        Entry {
            index: 7,
            term: 3,
            data: b"hello".to_vec(),
        }
    }

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let e = hello();
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
    fn borrowed_prefix_decodes_in_place_and_reports_what_it_used() {
        let mut bytes = encode(&hello()).expect("encode");
        let len = bytes.len();
        bytes.extend_from_slice(b"next");
        let ((index, term, data), used): ((u64, u64, &[u8]), usize) =
            decode_borrowed_prefix(&bytes)
                .expect("decode")
                .expect("whole");
        assert_eq!((index, term, data, used), (7, 3, &b"hello"[..], len));
        assert!(
            std::ptr::eq(data.as_ptr(), bytes[len - 5..].as_ptr()),
            "borrowed"
        );
        for cut in 0..len {
            let short = decode_borrowed_prefix::<(u64, u64, &[u8])>(&bytes[..cut]);
            assert!(matches!(short, Ok(None)), "cut at {cut}: {short:?}");
        }
        // A length beyond the limit is an error at once, not a wait for more bytes.
        let mut huge = vec![253u8];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_borrowed_prefix::<&[u8]>(&huge).is_err());
    }

    proptest::proptest! {
        #[test]
        fn key_record_fast_path_agrees_with_bincode(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70_000),
            version in proptest::prelude::any::<u64>(),
            cut in 0.0f64..1.0,
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
        ) {
            let bytes = encode(&(
                serde_bytes::Bytes::new(&key),
                serde_bytes::Bytes::new(&value),
                version,
            ))
            .expect("encode");
            let fast = decode_key_record_prefix(&bytes).expect("fast");
            let slow: Option<(KeyRecordRef<'_>, usize)> =
                decode_borrowed_prefix(&bytes).expect("slow");
            proptest::prop_assert_eq!(fast, slow);
            proptest::prop_assert_eq!(fast, Some(((&key[..], &value[..], version), bytes.len())));
            let short = &bytes[..(bytes.len() as f64 * cut) as usize];
            proptest::prop_assert_eq!(decode_key_record_prefix(short).expect("short"), None);
            // Any bytes: both decoders agree on the value, on needing more, and on refusing.
            let fast = decode_key_record_prefix(&garbage);
            let slow = decode_borrowed_prefix::<(&[u8], &[u8], u64)>(&garbage);
            match (fast, slow) {
                (Ok(f), Ok(s)) => proptest::prop_assert_eq!(f, s),
                (Err(_), Err(_)) => {}
                (f, s) => proptest::prop_assert!(false, "fast {:?}, bincode {:?}", f, s),
            }
        }
    }

    #[test]
    fn key_record_fast_path_refuses_bad_markers_and_huge_lengths() {
        let e = decode_key_record_prefix(&[254]).expect_err("marker");
        assert!(
            e.to_string()
                .contains("invalid integer marker 254 at byte 0"),
            "{e}"
        );
        let mut huge = vec![0u8, 253];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        let e = decode_key_record_prefix(&huge).expect_err("huge");
        assert!(e.to_string().contains("at byte 1 exceeds the limit"), "{e}");
        // Non-canonical widths decode as bincode decodes them.
        let wide = [251, 1, 0, b'k', 252, 0, 0, 0, 0, 251, 7, 0];
        assert_eq!(
            decode_key_record_prefix(&wide).expect("wide"),
            Some(((&b"k"[..], &b""[..], 7), wide.len()))
        );
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
