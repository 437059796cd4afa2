//! Writing RESP2 replies into a `Vec<u8>`.

use super::{ProtocolError, Value};

/// Appends `value`, recursively.
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
        Value::Array(None) => write_null_array(out),
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
    write_number(out, b'$', &payload.len().to_string());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Appends the null bulk string `$-1\r\n`.
pub fn write_null_bulk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends `*{len}\r\n`; the caller then appends `len` values.
pub fn write_array_header(out: &mut Vec<u8>, len: usize) {
    write_number(out, b'*', &len.to_string());
}

/// Appends the null array `*-1\r\n`.
pub fn write_null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
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
