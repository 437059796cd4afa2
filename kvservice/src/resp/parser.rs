//! Parsing any RESP2 value.

use bytes::Bytes;

use super::cursor::{Cursor, Step, check_array_len, check_bulk_len, need};
use super::{Limits, ProtocolError, Value};

/// Smallest encoded value (`+\r\n`), used to bound array preallocation by bytes
/// actually received rather than by the declared count.
const MIN_VALUE_BYTES: usize = 3;

/// Parses one RESP2 value from the start of `buf`.
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

/// Reads one value; `depth` is the number of arrays enclosing it.
fn value_at(cur: &mut Cursor<'_>, limits: &Limits, depth: usize) -> Step<Value> {
    let offset = cur.pos();
    let Some(type_byte) = cur.next_byte() else {
        return Ok(None);
    };
    let value = match type_byte {
        b'+' => {
            let line = need!(cur.read_line(limits.max_inline_bytes, "simple string"));
            Value::SimpleString(Bytes::copy_from_slice(line))
        }
        b'-' => {
            let line = need!(cur.read_line(limits.max_inline_bytes, "error"));
            Value::Error(Bytes::copy_from_slice(line))
        }
        b':' => Value::Integer(need!(cur.read_number("integer", offset))),
        b'$' => Value::BulkString(need!(bulk_after_type(cur, limits, offset))),
        b'*' => {
            if depth >= limits.max_depth {
                return Err(ProtocolError::TooDeep {
                    max: limits.max_depth,
                    offset,
                });
            }
            let len = need!(cur.read_number("multibulk length", offset));
            let Some(len) = check_array_len(len, limits.max_array_len, offset)? else {
                return Ok(Some(Value::Array(None)));
            };
            let mut items = Vec::with_capacity(len.min(cur.remaining() / MIN_VALUE_BYTES));
            for _ in 0..len {
                items.push(need!(value_at(cur, limits, depth + 1)));
            }
            Value::Array(Some(items))
        }
        byte => return Err(ProtocolError::InvalidTypeByte { byte, offset }),
    };
    Ok(Some(value))
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
