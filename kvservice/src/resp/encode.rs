//! Writing replies into a `Vec<u8>`.
//!
//! The `write_*` functions without a [`Protocol`] argument write types that RESP2 and
//! RESP3 share. Those with one write a RESP3 type to a RESP3 connection and its RESP2
//! stand-in to a RESP2 connection, as Redis 7 does:
//!
//! | reply | RESP3 | RESP2 |
//! |---|---|---|
//! | [`write_null`] | `_` | `$-1` (null bulk) |
//! | [`write_null_array`] | `_` | `*-1` (null array) |
//! | [`write_map_header`] of n pairs | `%n` | `*2n` (flat array) |
//! | [`write_set_header`] / [`write_push_header`] of n | `~n` / `>n` | `*n` |
//! | [`write_verbatim`] | `=len` `fmt:text` | bulk `text` |
//! | [`write_double`] | `,1.5` | bulk `1.5` |
//! | [`write_boolean`] | `#t` / `#f` | `:1` / `:0` |

use super::{Protocol, ProtocolError, Value};

/// Appends `value` in its own type (RESP3 types as RESP3), recursively.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::SimpleString(s) => write_simple_string(out, s),
        Value::Error(msg) => write_error(out, msg),
        Value::Integer(n) => write_integer(out, *n),
        Value::BulkString(Some(b)) => write_bulk(out, b),
        Value::BulkString(None) => write_null_bulk(out),
        Value::Array(Some(items)) => {
            write_array_header(out, items.len());
            for item in items {
                encode_value(item, out);
            }
        }
        Value::Array(None) => write_null_array(out, Protocol::Resp2),
        Value::Null => write_null(out, Protocol::Resp3),
        Value::Boolean(b) => write_boolean(out, Protocol::Resp3, *b),
        Value::Double(text) => write_line(out, b',', text),
        Value::BigNumber(digits) => write_line(out, b'(', digits),
        Value::BlobError(msg) => write_blob(out, b'!', msg),
        Value::Verbatim { format, text } => write_verbatim(out, Protocol::Resp3, format, text),
        Value::Map(pairs) => {
            write_map_header(out, Protocol::Resp3, pairs.len());
            for (k, v) in pairs {
                encode_value(k, out);
                encode_value(v, out);
            }
        }
        Value::Set(items) | Value::Push(items) => {
            let marker = if matches!(value, Value::Set(_)) {
                b'~'
            } else {
                b'>'
            };
            write_number(out, marker, &items.len().to_string());
            for item in items {
                encode_value(item, out);
            }
        }
    }
}

/// Appends `+{s}\r\n`. CR and LF in `s` are written as spaces, as Redis does, so the
/// reply stays one line.
pub fn write_simple_string(out: &mut Vec<u8>, s: &[u8]) {
    write_line(out, b'+', s);
}

/// Appends `-{msg}\r\n`, e.g. `msg = b"ERR unknown command"`. CR and LF in `msg` are
/// written as spaces.
pub fn write_error(out: &mut Vec<u8>, msg: &[u8]) {
    write_line(out, b'-', msg);
}

/// Appends `-ERR Protocol error: {err}\r\n`, Redis's reply before it closes a connection
/// that sent malformed input.
pub fn write_protocol_error(out: &mut Vec<u8>, err: &ProtocolError) {
    write_error(out, format!("ERR Protocol error: {err}").as_bytes());
}

/// Appends `:{n}\r\n`.
pub fn write_integer(out: &mut Vec<u8>, n: i64) {
    write_number(out, b':', &n.to_string());
}

/// Appends `${len}\r\n{payload}\r\n`.
pub fn write_bulk(out: &mut Vec<u8>, payload: &[u8]) {
    write_blob(out, b'$', payload);
}

/// Appends the null bulk string `$-1\r\n`.
pub fn write_null_bulk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends `*{len}\r\n`; the caller then appends `len` values.
pub fn write_array_header(out: &mut Vec<u8>, len: usize) {
    write_number(out, b'*', &len.to_string());
}

/// Appends the null reply: `_\r\n` in RESP3, the null bulk string `$-1\r\n` in RESP2
/// (Redis's `addReplyNull`).
pub fn write_null(out: &mut Vec<u8>, proto: Protocol) {
    match proto {
        Protocol::Resp2 => write_null_bulk(out),
        Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
    }
}

/// Appends the null array: `_\r\n` in RESP3, `*-1\r\n` in RESP2 (Redis's
/// `addReplyNullArray`).
pub fn write_null_array(out: &mut Vec<u8>, proto: Protocol) {
    match proto {
        Protocol::Resp2 => out.extend_from_slice(b"*-1\r\n"),
        Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
    }
}

/// Appends a map header for `pairs` key/value pairs: `%{pairs}` in RESP3, a flat
/// array `*{2 * pairs}` in RESP2. The caller then appends each key and its value.
pub fn write_map_header(out: &mut Vec<u8>, proto: Protocol, pairs: usize) {
    match proto {
        Protocol::Resp2 => write_array_header(out, pairs * 2),
        Protocol::Resp3 => write_number(out, b'%', &pairs.to_string()),
    }
}

/// Appends a set header: `~{len}` in RESP3, an array `*{len}` in RESP2.
pub fn write_set_header(out: &mut Vec<u8>, proto: Protocol, len: usize) {
    match proto {
        Protocol::Resp2 => write_array_header(out, len),
        Protocol::Resp3 => write_number(out, b'~', &len.to_string()),
    }
}

/// Appends a push header: `>{len}` in RESP3, an array `*{len}` in RESP2.
pub fn write_push_header(out: &mut Vec<u8>, proto: Protocol, len: usize) {
    match proto {
        Protocol::Resp2 => write_array_header(out, len),
        Protocol::Resp3 => write_number(out, b'>', &len.to_string()),
    }
}

/// Appends a verbatim string: `={len}\r\n{format}:{text}\r\n` in RESP3 (`len`
/// counts the four bytes of `fmt:`), a bulk string of `text` in RESP2.
pub fn write_verbatim(out: &mut Vec<u8>, proto: Protocol, format: &[u8; 3], text: &[u8]) {
    match proto {
        Protocol::Resp2 => write_bulk(out, text),
        Protocol::Resp3 => {
            write_number(out, b'=', &(text.len() + 4).to_string());
            out.extend_from_slice(format);
            out.push(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Appends a double: `,{n}\r\n` in RESP3, a bulk string in RESP2. It is written in
/// the shortest form that reads back as the same number (`1.5`, `3`, `1e-7`), with
/// `inf`, `-inf` and `nan` as Redis writes them.
pub fn write_double(out: &mut Vec<u8>, proto: Protocol, n: f64) {
    let text = if n.is_nan() {
        "nan".to_string()
    } else if n.is_infinite() {
        if n > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{n:?}").trim_end_matches(".0").to_string()
    };
    match proto {
        Protocol::Resp2 => write_bulk(out, text.as_bytes()),
        Protocol::Resp3 => write_number(out, b',', &text),
    }
}

/// Appends a boolean: `#t` / `#f` in RESP3, the integer `:1` / `:0` in RESP2.
pub fn write_boolean(out: &mut Vec<u8>, proto: Protocol, b: bool) {
    match proto {
        Protocol::Resp2 => write_integer(out, i64::from(b)),
        Protocol::Resp3 => out.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" }),
    }
}

/// `{type}{len}\r\n{payload}\r\n`: bulk strings and blob errors.
fn write_blob(out: &mut Vec<u8>, type_byte: u8, payload: &[u8]) {
    write_number(out, type_byte, &payload.len().to_string());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

fn write_number(out: &mut Vec<u8>, type_byte: u8, digits: &str) {
    out.push(type_byte);
    out.extend_from_slice(digits.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn write_line(out: &mut Vec<u8>, type_byte: u8, line: &[u8]) {
    out.push(type_byte);
    out.extend(
        line.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}
