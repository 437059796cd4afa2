//! Parsing any RESP value, RESP2 or RESP3 (except RESP3 attributes, `|`, which no
//! server sends unasked and which this parser refuses as an invalid type byte).

use bytes::Bytes;

use super::cursor::{Cursor, Step, check_array_len, check_bulk_len, need};
use super::{Limits, ProtocolError, Value};

/// Smallest encoded value (`+\r\n`), used to bound array preallocation by bytes
/// actually received rather than by the declared count.
const MIN_VALUE_BYTES: usize = 3;

/// Parses one RESP2 or RESP3 value from the start of `buf`.
///
/// Returns `Ok(None)` if `buf` holds an incomplete but so-far valid value, or the value
/// and the number of bytes it used (at most `buf.len()`).
///
/// # Errors
///
/// [`ProtocolError`] on malformed input or input over `limits`; lengths are checked as
/// soon as their header line is complete.
pub fn parse_value(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, ProtocolError> {
    let mut cur = Cursor::new(buf);
    Ok(value_at(&mut cur, limits, 0)?.map(|value| (value, cur.pos())))
}

/// Reads one value; `depth` is the number of aggregates (arrays, maps, sets, pushes)
/// enclosing it.
fn value_at(cur: &mut Cursor<'_>, limits: &Limits, depth: usize) -> Step<Value> {
    let offset = cur.pos();
    let Some(type_byte) = cur.next_byte() else {
        return Ok(None);
    };
    let value = match type_byte {
        b'+' | b'-' | b',' | b'(' => {
            let what = match type_byte {
                b'+' => "simple string",
                b'-' => "error",
                b',' => "double",
                _ => "big number",
            };
            let line = need!(cur.read_line(limits.max_inline_bytes, what));
            let line = Bytes::copy_from_slice(line);
            match type_byte {
                b'+' => Value::SimpleString(line),
                b'-' => Value::Error(line),
                b',' => Value::Double(line),
                _ => Value::BigNumber(line),
            }
        }
        b':' => Value::Integer(need!(cur.read_number("integer", offset))),
        b'$' => Value::BulkString(need!(bulk_after_type(cur, limits, offset))),
        b'*' => match need!(aggregate(cur, limits, depth, offset, 1)) {
            Some(items) => Value::Array(Some(items)),
            None => Value::Array(None),
        },
        b'~' | b'>' | b'%' => {
            let per_entry = if type_byte == b'%' { 2 } else { 1 };
            let Some(items) = need!(aggregate(cur, limits, depth, offset, per_entry)) else {
                return Err(ProtocolError::InvalidLength {
                    what: "multibulk length",
                    len: -1,
                    offset,
                });
            };
            match type_byte {
                b'~' => Value::Set(items),
                b'>' => Value::Push(items),
                _ => {
                    let mut items = items.into_iter();
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    while let (Some(k), Some(v)) = (items.next(), items.next()) {
                        pairs.push((k, v));
                    }
                    Value::Map(pairs)
                }
            }
        }
        b'_' => {
            let line = need!(cur.read_line(0, "null"));
            debug_assert!(line.is_empty(), "a line of at most 0 bytes");
            Value::Null
        }
        b'#' => match need!(cur.read_line(1, "boolean")) {
            b"t" => Value::Boolean(true),
            b"f" => Value::Boolean(false),
            _ => {
                return Err(ProtocolError::InvalidNumber {
                    what: "boolean",
                    offset,
                });
            }
        },
        b'!' => match need!(bulk_after_type(cur, limits, offset)) {
            Some(msg) => Value::BlobError(msg),
            None => {
                return Err(ProtocolError::InvalidLength {
                    what: "bulk length",
                    len: -1,
                    offset,
                });
            }
        },
        b'=' => match need!(bulk_after_type(cur, limits, offset)) {
            Some(body) if body.len() >= 4 && body[3] == b':' => Value::Verbatim {
                format: [body[0], body[1], body[2]],
                text: body.slice(4..),
            },
            Some(body) => {
                return Err(ProtocolError::InvalidLength {
                    what: "verbatim string",
                    len: body.len() as i64,
                    offset,
                });
            }
            None => {
                return Err(ProtocolError::InvalidLength {
                    what: "bulk length",
                    len: -1,
                    offset,
                });
            }
        },
        byte => return Err(ProtocolError::InvalidTypeByte { byte, offset }),
    };
    Ok(Some(value))
}

/// Reads the elements of an aggregate whose type byte at `offset` was consumed:
/// `per_entry` values for each of its declared entries (2 for a map). `Some(None)` is
/// the RESP2 null array `*-1`.
fn aggregate(
    cur: &mut Cursor<'_>,
    limits: &Limits,
    depth: usize,
    offset: usize,
    per_entry: usize,
) -> Step<Option<Vec<Value>>> {
    if depth >= limits.max_depth {
        return Err(ProtocolError::TooDeep {
            max: limits.max_depth,
            offset,
        });
    }
    let len = need!(cur.read_number("multibulk length", offset));
    let Some(len) = check_array_len(len, limits.max_array_len / per_entry, offset)? else {
        return Ok(Some(None));
    };
    let count = len * per_entry;
    let mut items = Vec::with_capacity(count.min(cur.remaining() / MIN_VALUE_BYTES));
    for _ in 0..count {
        items.push(need!(value_at(cur, limits, depth + 1)));
    }
    Ok(Some(Some(items)))
}

/// Reads a bulk string whose `$` at `offset` was consumed: `Some(None)` is the null
/// bulk string. The length is checked before any payload is waited for.
pub(crate) fn bulk_after_type(
    cur: &mut Cursor<'_>,
    limits: &Limits,
    offset: usize,
) -> Step<Option<Bytes>> {
    let len = need!(cur.read_number("bulk length", offset));
    let Some(len) = check_bulk_len(len, limits.max_bulk_bytes, offset)? else {
        return Ok(Some(None));
    };
    let payload = need!(cur.read_payload(len));
    Ok(Some(Some(Bytes::copy_from_slice(payload))))
}
