//! Exact encodings and round trips of known values and requests.

use bytes::Bytes;

use super::{args, bulk, limits};
use crate::resp::encode::*;
use crate::resp::{ProtocolError, Value, parse_request, parse_value};

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

#[test]
fn encodes_every_reply_kind_exactly() {
    let cases: Vec<(Value, &[u8])> = vec![
        (Value::SimpleString(Bytes::from_static(b"OK")), b"+OK\r\n"),
        (Value::Error(Bytes::from_static(b"ERR no")), b"-ERR no\r\n"),
        (Value::Integer(-42), b":-42\r\n"),
        (Value::Integer(i64::MIN), b":-9223372036854775808\r\n"),
        (bulk("foo"), b"$3\r\nfoo\r\n"),
        (bulk(""), b"$0\r\n\r\n"),
        (Value::BulkString(None), b"$-1\r\n"),
        (Value::Array(None), b"*-1\r\n"),
        (Value::Array(Some(vec![])), b"*0\r\n"),
        (
            Value::Array(Some(vec![bulk("a"), Value::Integer(1)])),
            b"*2\r\n$1\r\na\r\n:1\r\n",
        ),
    ];
    for (value, bytes) in cases {
        assert_eq!(encoded(&value), bytes, "{value:?}");
        assert_eq!(
            parse_value(bytes, &limits()),
            Ok(Some((value, bytes.len())))
        );
    }
}

#[test]
fn encoder_replaces_line_breaks_in_simple_strings_and_errors() {
    let mut out = Vec::new();
    write_simple_string(&mut out, b"a\r\nb");
    write_error(&mut out, b"ERR x\ny");
    assert_eq!(out, b"+a  b\r\n-ERR x y\r\n");
}

#[test]
fn writes_protocol_error_reply() {
    let mut out = Vec::new();
    let err = ProtocolError::ExpectedBulk {
        got: b'x',
        offset: 4,
    };
    write_protocol_error(&mut out, &err);
    assert_eq!(
        out,
        b"-ERR Protocol error: expected '$', got 'x' at byte 4\r\n"
    );
}

#[test]
fn parses_multibulk_request_and_leaves_the_rest() {
    let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n";
    let (req, used) = parse_request(buf, &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!(req.args(), args(&["SET", "k", ""]).as_slice());
    assert_eq!(used, 26);
    let (req, used2) = parse_request(&buf[used..], &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!(req.into_args(), args(&["PING"]));
    assert_eq!(used + used2, buf.len());
}

#[test]
fn binary_safe_bulk_payload() {
    let buf = b"*1\r\n$4\r\n\r\n\0\xff\r\n";
    let (req, used) = parse_request(buf, &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!(req.args(), &[Bytes::from_static(b"\r\n\0\xff")]);
    assert_eq!(used, buf.len());
}

#[test]
fn empty_requests_are_returned_empty() {
    for buf in [&b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"   \n"] {
        let (req, used) = parse_request(buf, &limits())
            .expect("valid")
            .expect("complete");
        assert!(req.is_empty(), "{buf:?}");
        assert_eq!(used, buf.len());
    }
}

#[test]
fn parses_inline_commands_with_quotes() {
    let cases: &[(&[u8], &[&str])] = &[
        (b"PING\r\n", &["PING"]),
        (b"set  k\tv\n", &["set", "k", "v"]),
        (b"SET k \"a b\\n\\x41\"\r\n", &["SET", "k", "a b\nA"]),
        (b"SET k 'it\\'s'\r\n", &["SET", "k", "it's"]),
        (b"SET k \"\"\r\n", &["SET", "k", ""]),
    ];
    for (buf, want) in cases {
        let (req, used) = parse_request(buf, &limits())
            .expect("valid")
            .expect("complete");
        assert_eq!(req.args(), args(want).as_slice(), "{buf:?}");
        assert_eq!(used, buf.len());
    }
}

#[test]
fn nested_arrays_and_nulls_parse() {
    let buf = b"*3\r\n*1\r\n+OK\r\n$-1\r\n*-1\r\n";
    let want = Value::Array(Some(vec![
        Value::Array(Some(vec![Value::SimpleString(Bytes::from_static(b"OK"))])),
        Value::BulkString(None),
        Value::Array(None),
    ]));
    assert_eq!(parse_value(buf, &limits()), Ok(Some((want, buf.len()))));
}
